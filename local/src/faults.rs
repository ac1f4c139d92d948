//! A fault-injecting reverse proxy for DynamoDB, on loopback, for resilience tests.
//!
//! [`FaultProxy`] forwards every request to the real endpoint (DynamoDB Local) unchanged,
//! unless its current [`FaultPlan`] says otherwise for the request's operation (the
//! `x-amz-target` header, e.g. `DynamoDB_20120810.TransactWriteItems`). A fault is a
//! DynamoDB error answer (throttling, a 500), a connection closed without an answer (before
//! or after the request reached DynamoDB), or added latency; each applies to the next N
//! matching requests, to every one, or with a probability drawn from a seeded RNG so that
//! a run can be repeated. The proxy counts requests per operation, so a test can see that
//! the SDK retried. Requests without `x-amz-target` (REST services such as SES v2, when the
//! proxy sits in front of moto) are also counted per method and path, so the benchmarks can
//! count mail sends the same way they count DynamoDB operations.
//!
//! Errors have the shape DynamoDB gives them (awsJson 1.0): the SDK reads the code from
//! `__type` after its last `#` and classifies `ThrottlingException` and
//! `ProvisionedThroughputExceededException` as throttling, any 5xx as transient.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

/// The header naming a DynamoDB operation.
pub const TARGET_HEADER: &str = "x-amz-target";

/// What the proxy does instead of (or on top of) forwarding a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 400 `ThrottlingException`.
    Throttling,
    /// HTTP 400 `ProvisionedThroughputExceededException` (what on-demand tables answer).
    ProvisionedThroughputExceeded,
    /// HTTP 500 `InternalServerError`.
    InternalServerError,
    /// HTTP 429 `TooManyRequestsException`, as SES v2 (REST JSON) throttles a send: for a
    /// proxy in front of moto's SES (`TestStackBuilder::sesv2_through`).
    TooManyRequests,
    /// Closes the connection without answering; the request never reaches DynamoDB.
    Drop,
    /// Forwards the request (DynamoDB applies it), then closes the connection without
    /// passing the answer on: the caller cannot know whether its write happened.
    LoseResponse,
    /// Waits this long before handling the request (adds to any other fault).
    Latency(Duration),
}

/// When a rule applies to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// To the next N matching requests, then never.
    Next(u64),
    /// To each matching request with this probability (0 to 1), from the plan's seeded RNG.
    Probability(f64),
    /// To every matching request.
    Always,
}

/// One line of a [`FaultPlan`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Operation name (`TransactWriteItems` or the full `DynamoDB_20120810.TransactWriteItems`);
    /// `None` matches every request.
    pub operation: Option<String>,
    pub fault: Fault,
    pub trigger: Trigger,
}

impl Rule {
    fn matches(&self, target: &str) -> bool {
        match &self.operation {
            None => true,
            Some(op) => operation_name(op) == operation_name(target),
        }
    }
}

/// `DynamoDB_20120810.GetItem` and `GetItem` both name `GetItem`.
fn operation_name(target: &str) -> &str {
    target.rsplit('.').next().unwrap_or(target)
}

/// The faults to inject, in order: per request, every firing [`Fault::Latency`] rule adds
/// its delay, and the first other rule that matches and fires decides the answer (later
/// ones are not consulted, so their `Next` budgets are kept). No rule firing: forwarded.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub rules: Vec<Rule>,
    /// Seed of the RNG behind [`Trigger::Probability`].
    pub seed: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultPlan {
    /// No faults (seed 0).
    pub fn new() -> Self {
        Self {
            rules: Vec::new(),
            seed: 0,
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a rule. `operation`: `Some("GetItem")`, or `None` for every operation.
    pub fn rule(mut self, operation: Option<&str>, fault: Fault, trigger: Trigger) -> Self {
        self.rules.push(Rule {
            operation: operation.map(str::to_owned),
            fault,
            trigger,
        });
        self
    }

    /// `fault` on the next `n` requests for `operation`.
    pub fn next(self, operation: &str, fault: Fault, n: u64) -> Self {
        self.rule(Some(operation), fault, Trigger::Next(n))
    }

    /// `fault` on every request for `operation`.
    pub fn always(self, operation: &str, fault: Fault) -> Self {
        self.rule(Some(operation), fault, Trigger::Always)
    }

    /// `fault` on each request for `operation` with probability `p`.
    pub fn sometimes(self, operation: &str, fault: Fault, p: f64) -> Self {
        self.rule(Some(operation), fault, Trigger::Probability(p))
    }

    /// `fault` on every request, whatever its operation.
    pub fn always_any(self, fault: Fault) -> Self {
        self.rule(None, fault, Trigger::Always)
    }
}

#[derive(Debug)]
struct State {
    rules: Vec<Rule>,
    rng: StdRng,
    counts: BTreeMap<String, u64>,
    injected: BTreeMap<String, u64>,
    /// Requests without `x-amz-target`, per `METHOD /path`.
    untargeted: BTreeMap<String, u64>,
    /// Requests being handled now, and the most there have been at once, per target.
    in_flight: BTreeMap<String, u64>,
    peak_in_flight: BTreeMap<String, u64>,
    /// The same, whatever the operation.
    all_in_flight: u64,
    peak_all_in_flight: u64,
}

impl State {
    fn new(plan: FaultPlan) -> Self {
        Self {
            rng: StdRng::seed_from_u64(plan.seed),
            rules: plan.rules,
            counts: BTreeMap::new(),
            injected: BTreeMap::new(),
            untargeted: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            peak_in_flight: BTreeMap::new(),
            all_in_flight: 0,
            peak_all_in_flight: 0,
        }
    }

    /// Counts the request and decides what happens to it: (delay, fault other than latency).
    fn decide(&mut self, target: &str) -> (Duration, Option<Fault>) {
        *self.counts.entry(target.to_owned()).or_default() += 1;
        let now = self.in_flight.entry(target.to_owned()).or_default();
        *now += 1;
        let now = *now;
        let peak = self.peak_in_flight.entry(target.to_owned()).or_default();
        *peak = (*peak).max(now);
        self.all_in_flight += 1;
        self.peak_all_in_flight = self.peak_all_in_flight.max(self.all_in_flight);
        let mut delay = Duration::ZERO;
        let mut decided: Option<Fault> = None;
        for rule in &mut self.rules {
            let is_latency = matches!(rule.fault, Fault::Latency(_));
            if !rule.matches(target) || (decided.is_some() && !is_latency) {
                continue;
            }
            let fires = match &mut rule.trigger {
                Trigger::Next(0) => false,
                Trigger::Next(n) => {
                    *n -= 1;
                    true
                }
                Trigger::Probability(p) => self.rng.gen_bool(p.clamp(0.0, 1.0)),
                Trigger::Always => true,
            };
            if !fires {
                continue;
            }
            match &rule.fault {
                Fault::Latency(d) => delay += *d,
                other => decided = Some(other.clone()),
            }
        }
        if decided.is_some() {
            *self.injected.entry(target.to_owned()).or_default() += 1;
        }
        (delay, decided)
    }
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends a request's count in flight when its handling ends, however it ends (answered,
/// dropped, or its connection closed mid-way).
struct InFlight<'a> {
    shared: &'a Shared,
    target: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if let Some(n) = state.in_flight.get_mut(&self.target) {
            *n = n.saturating_sub(1);
        }
        state.all_in_flight = state.all_in_flight.saturating_sub(1);
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault plan")
    }
}

impl std::error::Error for Dropped {}

/// A running proxy; dropping it stops it (and closes its connections).
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    _stop: watch::Sender<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`
    /// (e.g. `http://127.0.0.1:8000`), with no faults.
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the fault proxy")?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("the fault proxy's HTTP client")?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            state: Mutex::new(State::new(FaultPlan::new())),
        });
        let (stop, stopped) = watch::channel(());
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            accept,
            _stop: stop,
        })
    }

    /// Where to point `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL_SESV2`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Replaces the plan (and reseeds the RNG); counts are kept.
    pub fn set(&self, plan: FaultPlan) {
        let mut state = self.shared.state();
        state.rng = StdRng::seed_from_u64(plan.seed);
        state.rules = plan.rules;
    }

    /// No more faults: every request is forwarded.
    pub fn clear(&self) {
        self.set(FaultPlan::new());
    }

    /// Requests received per `x-amz-target` (faulted ones included; `""` when absent).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.state().counts.clone()
    }

    /// Requests received for one operation (`GetItem` or `DynamoDB_20120810.GetItem`).
    pub fn count(&self, operation: &str) -> u64 {
        of_operation(&self.shared.state().counts, operation).sum()
    }

    /// Requests answered by a fault (not latency) per `x-amz-target`.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.shared.state().injected.clone()
    }

    /// Requests without `x-amz-target` per `METHOD /path` (e.g.
    /// `POST /v2/email/outbound-emails`, an SES v2 SendEmail), faulted ones included.
    pub fn counts_by_path(&self) -> BTreeMap<String, u64> {
        self.shared.state().untargeted.clone()
    }

    /// The most requests of one operation (`GetItem` or `DynamoDB_20120810.GetItem`) that
    /// the proxy was handling at the same moment: 1 when a caller sends them one by one.
    pub fn peak_in_flight(&self, operation: &str) -> u64 {
        of_operation(&self.shared.state().peak_in_flight, operation)
            .max()
            .unwrap_or(0)
    }

    /// The most requests, of any operations, that the proxy was handling at the same moment.
    pub fn peak_in_flight_all(&self) -> u64 {
        self.shared.state().peak_all_in_flight
    }

    /// Starts counting (requests, injected faults, the peak in flight) from zero.
    pub fn reset_counts(&self) {
        let mut state = self.shared.state();
        state.counts.clear();
        state.injected.clear();
        state.untargeted.clear();
        state.peak_in_flight.clear();
        state.peak_all_in_flight = 0;
    }
}

/// The figures of `per_target` (keyed by `x-amz-target`) for one operation, however named.
fn of_operation<'a>(
    per_target: &'a BTreeMap<String, u64>,
    operation: &str,
) -> impl Iterator<Item = u64> + 'a {
    let name = operation_name(operation).to_owned();
    per_target
        .iter()
        .filter(move |(target, _)| operation_name(target) == name)
        .map(|(_, n)| *n)
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stopped: watch::Receiver<()>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                debug!(error = %err, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { handle(&shared, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = conn => {
                    if let Err(err) = result {
                        debug!(error = %err, "fault proxy: connection ended");
                    }
                }
                // The proxy was dropped: close the connection.
                _ = stopped.changed() => {}
            }
        });
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let target = req
        .headers()
        .get(TARGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (delay, fault) = {
        let mut state = shared.state();
        if target.is_empty() {
            let key = format!("{} {}", req.method(), req.uri().path());
            *state.untargeted.entry(key).or_default() += 1;
        }
        state.decide(&target)
    };
    let _in_flight = InFlight {
        shared,
        target: target.clone(),
    };
    let (parts, body) = req.into_parts();
    // Read the whole request first: the caller has sent it by the time anything fails.
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        None => Ok(forward(shared, &parts, body).await),
        Some(Fault::Throttling) => Ok(dynamodb_error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )),
        Some(Fault::ProvisionedThroughputExceeded) => Ok(dynamodb_error(
            StatusCode::BAD_REQUEST,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        )),
        Some(Fault::InternalServerError) => Ok(dynamodb_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal server error",
        )),
        Some(Fault::TooManyRequests) => Ok(rest_json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
        )),
        Some(Fault::Drop) => Err(Dropped),
        Some(Fault::LoseResponse) => {
            let _ = forward(shared, &parts, body).await;
            Err(Dropped)
        }
        Some(Fault::Latency(_)) => unreachable!("latency is never the decided fault"),
    }
}

/// Hop-by-hop headers, and those the client or server sets again.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}

async fn forward(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> Response<Body> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut req = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream));
    for (name, value) in parts.headers.iter().filter(|(n, _)| passes(n)) {
        req = req.header(name, value);
    }
    let upstream = async {
        let resp = req.body(body).send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    };
    match upstream.await {
        Ok((status, headers, bytes)) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            for (name, value) in headers.iter().filter(|(n, _)| passes(n)) {
                resp.headers_mut().append(name, value.clone());
            }
            resp
        }
        Err(err) => {
            debug!(error = %err, "fault proxy: upstream failed");
            let mut resp = Response::new(Body::from(format!("upstream failed: {err}")));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    }
}

/// An error answer exactly as DynamoDB (awsJson 1.0) gives it.
fn dynamodb_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
        "message": message,
    })
    .to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(id) = HeaderValue::from_str(&format!("FAULT{:016X}", rand::random::<u64>())) {
        headers.insert("x-amzn-requestid", id);
    }
    resp
}

/// An error answer as a REST JSON service (SES v2) gives it: the SDK reads the code from
/// `x-amzn-errortype`.
fn rest_json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(code) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-errortype", code);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_fires_n_times_and_only_on_its_operation() {
        let mut state = State::new(FaultPlan::new().next("TransactWriteItems", Fault::Drop, 2));
        let target = "DynamoDB_20120810.TransactWriteItems";
        assert_eq!(state.decide("DynamoDB_20120810.GetItem").1, None);
        assert_eq!(state.decide(target).1, Some(Fault::Drop));
        assert_eq!(state.decide(target).1, Some(Fault::Drop));
        assert_eq!(state.decide(target).1, None);
        assert_eq!(state.counts[target], 3);
        assert_eq!(state.injected[target], 2);
    }

    #[test]
    fn latency_adds_up_and_the_first_other_fault_wins() {
        let plan = FaultPlan::new()
            .always_any(Fault::Latency(Duration::from_millis(5)))
            .next("GetItem", Fault::Throttling, 1)
            .next("GetItem", Fault::InternalServerError, 1)
            .always_any(Fault::Latency(Duration::from_millis(7)));
        let mut state = State::new(plan);
        let (delay, fault) = state.decide("DynamoDB_20120810.GetItem");
        assert_eq!(delay, Duration::from_millis(12));
        assert_eq!(fault, Some(Fault::Throttling));
        // The second rule kept its budget for the next request.
        assert_eq!(state.decide("GetItem").1, Some(Fault::InternalServerError));
        assert_eq!(state.decide("GetItem").1, None);
    }

    #[test]
    fn probabilities_repeat_with_the_seed() {
        let run = |seed| {
            let mut state = State::new(FaultPlan::new().seed(seed).sometimes(
                "Query",
                Fault::Drop,
                0.5,
            ));
            (0..64)
                .map(|_| state.decide("Query").1.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let hits = run(7).iter().filter(|h| **h).count();
        assert!((10..54).contains(&hits), "{hits} of 64");
    }
}
