//! The public side of the local stack: one HTTP port that behaves like the deployed HTTP API
//! (routes from the template, payload format 2.0, API Gateway's own error answers), plus the
//! Lambda Invoke API (for `cargo lambda invoke` and the test harness) and a mailbox page for
//! developers. Functions run as real processes through [`crate::runtime`].

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::apigw::{self, ACCOUNT_ID, MAX_REQUEST_BODY, Origin};
use crate::mailbox;
use crate::process::LogSink;
use crate::router::RouteTable;
use crate::runtime::{
    FunctionPool, InvokeRequest, MAX_PAYLOAD, Outcome, SlotStatus, SpawnConfig, WaitError,
    request_id,
};
use crate::s3_relay::{self, S3Relay};
use crate::template::Template;

/// How long API Gateway waits for an integration before answering 503.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything [`Gateway::start`] needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The SAM template (routes, functions, timeouts).
    pub template: PathBuf,
    /// Folder holding one executable per function, named after its `Binary`.
    pub bin_dir: PathBuf,
    /// Public address; port 0 picks a free one (see [`Gateway::url`]).
    pub addr: SocketAddr,
    /// Processes per function.
    pub instances: usize,
    /// Added to this process's environment for every function (later entries win).
    pub env: Vec<(String, String)>,
    /// If set, every function also gets this variable set to [`Gateway::url`] (e.g.
    /// `PUBLIC_BASE_URL`), which is unknown before binding when the port is 0.
    pub url_env: Option<String>,
    /// Base URL of moto, for the `/_local/mail` mailbox and the S3 event relay.
    pub moto_url: Option<String>,
    /// The upload bucket whose notifications invoke the template's `S3` events (with
    /// `moto_url`); see [`crate::s3_relay`].
    pub upload_bucket: Option<String>,
    /// Function output goes here instead of this process's stderr.
    pub log_file: Option<PathBuf>,
    /// Function output is also kept here, line by line (test stacks).
    pub kept_output: Option<Arc<Mutex<Vec<String>>>>,
    /// How long every instance may take to come up.
    pub startup_timeout: Duration,
}

impl GatewayConfig {
    /// Defaults: 127.0.0.1 on a free port, 2 instances, no extra env, output to stderr.
    pub fn new(template: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> Self {
        Self {
            template: template.into(),
            bin_dir: bin_dir.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            instances: 2,
            env: Vec::new(),
            url_env: None,
            moto_url: None,
            upload_bucket: None,
            log_file: None,
            kept_output: None,
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// A running local API: stops its servers and kills its function processes on drop.
pub struct Gateway {
    addr: SocketAddr,
    state: Arc<GatewayState>,
    servers: Tasks,
    supervisors: Tasks,
    _relay: Option<S3Relay>,
}

struct GatewayState {
    routes: RouteTable,
    functions: HashMap<String, Arc<FunctionPool>>,
    moto_url: Option<String>,
    http: reqwest::Client,
}

impl Gateway {
    /// Starts every function of the template and serves the API. Returns once each instance
    /// has polled for its first invocation; fails naming the function if one cannot start.
    pub async fn start(config: GatewayConfig) -> Result<Self> {
        let template = Template::load(&config.template)?;
        for function in &template.functions {
            let path = config.bin_dir.join(&function.binary);
            if !path.is_file() {
                bail!(
                    "function {}: binary {} not found (build the functions first, e.g. `cargo build --workspace`)",
                    function.binary,
                    path.display()
                );
            }
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding the gateway on {}", config.addr))?;
        let addr = listener
            .local_addr()
            .context("reading the gateway address")?;

        let mut env = config.env.clone();
        if let Some(name) = &config.url_env {
            env.push((name.clone(), format!("http://{addr}")));
        }
        // The gateway serves the Lambda Invoke API: a function that invokes another (or
        // itself) reaches it here.
        env.push((
            "AWS_ENDPOINT_URL_LAMBDA".to_owned(),
            format!("http://{addr}"),
        ));
        let log = match &config.log_file {
            Some(path) => LogSink::file(path)?,
            None => LogSink::Stderr,
        };
        let log = match &config.kept_output {
            Some(lines) => LogSink::Kept(Box::new(log), Arc::clone(lines)),
            None => log,
        };
        let spawn = Arc::new(SpawnConfig {
            bin_dir: config.bin_dir.clone(),
            env,
            log,
        });

        let mut servers = Tasks::default();
        let mut supervisors = Tasks::default();
        let mut functions = HashMap::new();
        let mut waits = Vec::new();
        for function in &template.functions {
            let started =
                FunctionPool::start(function, config.instances, Arc::clone(&spawn)).await?;
            servers.0.extend(started.servers);
            supervisors.0.extend(started.supervisors);
            waits.push((function.binary.clone(), started.pool.statuses()));
            functions.insert(function.binary.clone(), started.pool);
        }
        let relay = match (&config.moto_url, &config.upload_bucket) {
            (Some(moto), Some(bucket)) => {
                let targets = template
                    .functions
                    .iter()
                    .flat_map(|f| f.s3_events.iter().map(move |e| (f, e)))
                    .filter_map(|(f, e)| Some((Arc::clone(functions.get(&f.binary)?), e.clone())))
                    .collect();
                s3_relay::start(moto, bucket, targets).await?
            }
            _ => None,
        };
        let state = Arc::new(GatewayState {
            routes: RouteTable::from_template(&template),
            functions,
            moto_url: config.moto_url,
            http: reqwest::Client::new(),
        });

        wait_ready(waits, config.startup_timeout).await?;

        let app = router(Arc::clone(&state));
        servers.0.push(tokio::spawn(serve(listener, app.clone())));
        // `cargo lambda invoke` talks to [::1] by default: answer there too when on loopback.
        if addr.ip().is_loopback() && addr.is_ipv4() {
            match TcpListener::bind((Ipv6Addr::LOCALHOST, addr.port())).await {
                Ok(v6) => servers.0.push(tokio::spawn(serve(v6, app))),
                Err(e) => debug!("not serving on [::1]:{}: {e}", addr.port()),
            }
        }
        info!(
            "gateway listening on http://{addr} with {} functions",
            template.functions.len()
        );
        Ok(Self {
            addr,
            state,
            servers,
            supervisors,
            _relay: relay,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills the processes of function `name` as a crash would (see [`FunctionPool::crash`]).
    pub fn crash(&self, name: &str) -> Result<()> {
        self.state
            .functions
            .get(name)
            .with_context(|| format!("no function named {name:?} in the template"))?
            .crash();
        Ok(())
    }

    /// Binary names of the functions served.
    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state.functions.keys().cloned().collect();
        names.sort();
        names
    }

    /// Invokes a function directly with a JSON event; a function error is an `Err` carrying
    /// the error JSON.
    pub async fn invoke(&self, name: &str, payload: Value) -> Result<Value> {
        let pool = self
            .state
            .functions
            .get(name)
            .with_context(|| format!("no function named {name:?} in the template"))?;
        let request = InvokeRequest {
            payload: Bytes::from(payload.to_string()),
            ..InvokeRequest::default()
        };
        let wait = pool.timeout() + Duration::from_secs(60);
        match pool
            .invoke(request, wait)
            .await
            .with_context(|| format!("invoking {name}"))?
        {
            Outcome::Response(body) => serde_json::from_slice(&body).with_context(|| {
                format!(
                    "{name} returned non-JSON: {}",
                    String::from_utf8_lossy(&body)
                )
            }),
            Outcome::Error(body) => {
                bail!("function {name} failed: {}", String::from_utf8_lossy(&body))
            }
        }
    }

    /// Stops the servers and the function processes, waiting (up to 5 s) for them to end.
    pub async fn shutdown(mut self) {
        drop(std::mem::take(&mut self.servers));
        for pool in self.state.functions.values() {
            pool.stop();
        }
        let mut supervisors = std::mem::take(&mut self.supervisors);
        let all = async {
            for task in &mut supervisors.0 {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            warn!("some function processes did not stop within 5 s; killing them");
        }
    }
}

fn router(state: Arc<GatewayState>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
        .route("/_local/mail", get(mail_page))
        .route("/_local/mail.json", get(mail_json))
        .fallback(http_api)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
/// Both ends of a client connection: the peer is `sourceIp`, the local port `x-forwarded-port`.
#[derive(Debug, Clone, Copy)]
struct Conn {
    peer: SocketAddr,
    local: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let peer = *stream.remote_addr();
        Self {
            peer,
            local: stream.io().local_addr().unwrap_or(peer),
        }
    }
}

/// Tasks aborted on drop, so an early return or a dropped gateway leaves nothing running.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, app: Router) {
    let service = app.into_make_service_with_connect_info::<Conn>();
    if let Err(e) = axum::serve(listener, service).await {
        warn!("gateway server stopped: {e}");
    }
}

/// Waits until every instance polled once, or one failed, or the time is up.
async fn wait_ready(
    waits: Vec<(String, Vec<watch::Receiver<SlotStatus>>)>,
    limit: Duration,
) -> Result<()> {
    let all = async {
        for (name, receivers) in &waits {
            for (index, receiver) in receivers.iter().enumerate() {
                let mut receiver = receiver.clone();
                let status = receiver
                    .wait_for(|s| *s != SlotStatus::Starting)
                    .await
                    .map(|s| s.clone())
                    .map_err(|_| {
                        anyhow::anyhow!("function {name}: instance {index} went away during start")
                    })?;
                if let SlotStatus::Failed(why) = status {
                    bail!("function {name} failed to start: {why}");
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limit, all).await {
        Ok(result) => result,
        Err(_) => {
            let late: Vec<&str> = waits
                .iter()
                .filter(|(_, receivers)| receivers.iter().any(|r| *r.borrow() != SlotStatus::Ready))
                .map(|(name, _)| name.as_str())
                .collect();
            bail!(
                "functions {} did not poll for an invocation within {} s",
                late.join(", "),
                limit.as_secs()
            )
        }
    }
}

/// Every request that is not local tooling: routed like the HTTP API.
async fn http_api(
    State(state): State<Arc<GatewayState>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    request: Request,
) -> Response {
    let request_id = apigw_request_id();
    let (parts, body) = request.into_parts();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_REQUEST_BODY) {
        return apigw::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Entity Too Large",
            &request_id,
        );
    }
    let Ok(body) = to_bytes(body, MAX_REQUEST_BODY).await else {
        return apigw::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Entity Too Large",
            &request_id,
        );
    };
    let Some(route) = state.routes.find(parts.method.as_str(), parts.uri.path()) else {
        return apigw::error_response(StatusCode::NOT_FOUND, "Not Found", &request_id);
    };
    let Some(pool) = state.functions.get(&route.function) else {
        return apigw::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            &request_id,
        );
    };
    let origin = Origin {
        peer: conn.peer,
        local: conn.local,
        request_id: request_id.clone(),
        now: chrono::Utc::now(),
    };
    let event = apigw::build_event(&parts, &body, &origin, &route);
    let request = InvokeRequest {
        payload: Bytes::from(event.to_string()),
        ..InvokeRequest::default()
    };
    match pool.invoke(request, INTEGRATION_TIMEOUT).await {
        Ok(Outcome::Response(payload)) => {
            match apigw::into_response(&payload, &parts.method, &request_id) {
                Ok(response) => response,
                Err(why) => {
                    warn!(
                        "{} {}: {} returned an invalid response ({why}): {}",
                        parts.method,
                        parts.uri.path(),
                        route.function,
                        preview(&payload)
                    );
                    apigw::error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                        &request_id,
                    )
                }
            }
        }
        Ok(Outcome::Error(error)) => {
            warn!(
                "{} {}: {} failed: {}",
                parts.method,
                parts.uri.path(),
                route.function,
                preview(&error)
            );
            apigw::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                &request_id,
            )
        }
        Err(WaitError::TimedOut) => {
            warn!(
                "{} {}: {} did not answer within {} s",
                parts.method,
                parts.uri.path(),
                route.function,
                INTEGRATION_TIMEOUT.as_secs()
            );
            apigw::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                &request_id,
            )
        }
        Err(WaitError::Stopped) => apigw::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            &request_id,
        ),
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`: the Lambda Invoke API.
async fn invoke_api(
    State(state): State<Arc<GatewayState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = function_name(&name);
    let Some(pool) = state.functions.get(&name).cloned() else {
        let arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{name}");
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {arn}"),
        );
    };
    let Ok(payload) = to_bytes(body, MAX_PAYLOAD).await else {
        let message = format!(
            "Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation"
        );
        return lambda_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &message,
        );
    };
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json",
        );
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // The real API takes X-Amz-Client-Context as base64; cargo lambda sends the runtime header.
    let client_context = text("x-amz-client-context")
        .and_then(|b64| BASE64.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .or_else(|| text("lambda-runtime-client-context"));
    let request = InvokeRequest {
        payload,
        client_context,
        cognito_identity: text("lambda-runtime-cognito-identity"),
    };
    let wait = pool.timeout() + Duration::from_secs(60);
    match text("x-amz-invocation-type").as_deref() {
        Some("DryRun") => return StatusCode::NO_CONTENT.into_response(),
        Some("Event") => {
            tokio::spawn(async move {
                if let Ok(Outcome::Error(error)) = pool.invoke(request, wait).await {
                    warn!(
                        "asynchronous invocation of {} failed: {}",
                        pool.name(),
                        preview(&error)
                    );
                }
            });
            return StatusCode::ACCEPTED.into_response();
        }
        _ => {}
    }
    let (body, function_error) = match pool.invoke(request, wait).await {
        Ok(Outcome::Response(body)) => (body, false),
        Ok(Outcome::Error(body)) => (body, true),
        Err(e) => {
            return lambda_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                &e.to_string(),
            );
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    if function_error {
        headers.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    response
}

/// `my-fn`, `my-fn:$LATEST` or a full ARN → `my-fn`.
fn function_name(raw: &str) -> String {
    let raw = raw.rsplit_once("function:").map_or(raw, |(_, name)| name);
    raw.split(':').next().unwrap_or(raw).to_owned()
}

fn lambda_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "Type": "User", "message": message })),
    )
        .into_response();
    if let Ok(kind) = HeaderValue::from_str(kind) {
        response.headers_mut().insert("x-amzn-errortype", kind);
    }
    response
}

async fn mail_page(State(state): State<Arc<GatewayState>>) -> Response {
    let Some(moto) = &state.moto_url else {
        return (
            StatusCode::NOT_FOUND,
            "no mailbox: this gateway was started without moto",
        )
            .into_response();
    };
    match mailbox::fetch(&state.http, moto).await {
        Ok(mails) => Html(mailbox::render_page(&mails, moto)).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("could not read mail from moto: {e:#}"),
        )
            .into_response(),
    }
}

async fn mail_json(State(state): State<Arc<GatewayState>>) -> Response {
    let Some(moto) = &state.moto_url else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "no mailbox: this gateway was started without moto" })),
        )
            .into_response();
    };
    match mailbox::fetch(&state.http, moto).await {
        Ok(mails) => axum::Json(mails).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({ "message": format!("{e:#}") })),
        )
            .into_response(),
    }
}

/// API Gateway's request ids look like `JKJaXmPLvHcESHA=`.
fn apigw_request_id() -> String {
    BASE64.encode(rand::random::<[u8; 10]>())
}

fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 2000;
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_from_arns_and_qualifiers() {
        assert_eq!(function_name("invite"), "invite");
        assert_eq!(function_name("invite:$LATEST"), "invite");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:invite"),
            "invite"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:invite:7"),
            "invite"
        );
    }
}
