//! Runs a function the way Lambda does: a pool of instances of the real binary, each talking
//! to its own emulation of the Lambda Runtime API, so the unchanged `lambda_runtime` client
//! (long-poll `/next`, then `/response` or `/error`) works here as in AWS.
//!
//! Each instance handles one invocation at a time; queued invocations go to whichever
//! instance polls next. Every instance slot has its own Runtime API port, so the emulator
//! always knows which process holds an invocation: when a process exits, its in-flight
//! invocation fails with `Runtime.ExitError` and a replacement starts. Like Lambda, an
//! invocation past the function's timeout fails with `Sandbox.Timedout` and its instance is
//! replaced.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{debug, info, warn};

use crate::apigw::ACCOUNT_ID;
use crate::process::{self, LogSink, Tail, lock};
use crate::template::FunctionSpec;

/// Largest response or event a synchronous invocation may carry (Lambda's limit).
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// How the function processes of every pool are started.
#[derive(Debug)]
pub struct SpawnConfig {
    pub bin_dir: PathBuf,
    /// Added to this process's environment (later entries win).
    pub env: Vec<(String, String)>,
    pub log: LogSink,
}

/// How an invocation ended, as Lambda reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function's response payload.
    Response(Bytes),
    /// A function error: JSON with `errorType` and `errorMessage`.
    Error(Bytes),
}

/// The caller stopped waiting or the pool is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    TimedOut,
    Stopped,
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TimedOut => "timed out waiting for the function",
            Self::Stopped => "the function pool stopped",
        })
    }
}

impl std::error::Error for WaitError {}

/// One event for a function, with the optional context headers of the Invoke API.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub payload: Bytes,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

struct Invocation {
    id: String,
    request: InvokeRequest,
    reply: oneshot::Sender<Outcome>,
}

struct InFlight {
    slot: usize,
    generation: u64,
    reply: oneshot::Sender<Outcome>,
    watchdog: AbortHandle,
}

/// Whether an instance slot has come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotStatus {
    Starting,
    /// Its process has polled `/next` at least once.
    Ready,
    /// Its process ended before its first poll; the text says why.
    Failed(String),
}

struct Slot {
    index: usize,
    port: u16,
    state: Mutex<SlotState>,
    status: watch::Sender<SlotStatus>,
    kill: Notify,
    tail: Arc<Tail>,
}

#[derive(Default)]
struct SlotState {
    /// Bumped each time the slot's process ends; stale `/next` polls compare against it.
    generation: u64,
    polled: bool,
    kill_generation: Option<u64>,
    stopping: bool,
    init_error: Option<String>,
}

/// FIFO of invocations waiting for an instance; cancel-safe to pop.
struct Queue {
    items: Mutex<VecDeque<Invocation>>,
    available: Semaphore,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            available: Semaphore::new(0),
        }
    }
}

impl Queue {
    fn push_back(&self, invocation: Invocation) {
        lock(&self.items).push_back(invocation);
        self.available.add_permits(1);
    }

    fn push_front(&self, invocation: Invocation) {
        lock(&self.items).push_front(invocation);
        self.available.add_permits(1);
    }

    async fn pop(&self) -> Option<Invocation> {
        loop {
            self.available.acquire().await.ok()?.forget();
            if let Some(invocation) = lock(&self.items).pop_front() {
                return Some(invocation);
            }
        }
    }
}

/// A started pool and the tasks that serve and supervise its instances.
pub struct StartedPool {
    pub pool: Arc<FunctionPool>,
    pub servers: Vec<JoinHandle<()>>,
    pub supervisors: Vec<JoinHandle<()>>,
}

/// The instances of one function and their shared queue.
pub struct FunctionPool {
    name: String,
    timeout: Duration,
    /// The template's literal variables, used where neither this process nor the config sets them.
    template_env: Vec<(String, String)>,
    queue: Queue,
    inflight: Mutex<HashMap<String, InFlight>>,
    slots: Vec<Arc<Slot>>,
    spawn: Arc<SpawnConfig>,
}

impl FunctionPool {
    /// Binds one Runtime API port per instance and starts the instances. The supervisor tasks
    /// own the processes: aborting them kills the processes.
    pub async fn start(
        spec: &FunctionSpec,
        instances: usize,
        spawn: Arc<SpawnConfig>,
    ) -> Result<StartedPool> {
        let name = spec.binary.clone();
        let mut listeners = Vec::with_capacity(instances);
        let mut slots = Vec::with_capacity(instances);
        for index in 0..instances.max(1) {
            let listener = TcpListener::bind(("127.0.0.1", 0))
                .await
                .with_context(|| format!("binding a Runtime API port for {name}"))?;
            let port = listener
                .local_addr()
                .context("reading the Runtime API port")?
                .port();
            listeners.push(listener);
            slots.push(Arc::new(Slot {
                index,
                port,
                state: Mutex::new(SlotState::default()),
                status: watch::Sender::new(SlotStatus::Starting),
                kill: Notify::new(),
                tail: Arc::new(Tail::default()),
            }));
        }
        let pool = Arc::new(Self {
            name,
            timeout: spec.timeout,
            template_env: spec.environment.clone(),
            queue: Queue::default(),
            inflight: Mutex::new(HashMap::new()),
            slots,
            spawn,
        });
        let mut servers = Vec::new();
        let mut supervisors = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let app = runtime_api(SlotCtx {
                pool: Arc::clone(&pool),
                slot: index,
            });
            let label = pool.label(index);
            servers.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    warn!("Runtime API server of {label} stopped: {e}");
                }
            }));
            supervisors.push(tokio::spawn(supervise(
                Arc::clone(&pool),
                Arc::clone(&pool.slots[index]),
            )));
        }
        Ok(StartedPool {
            pool,
            servers,
            supervisors,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Watches of every slot's status, for readiness checks.
    pub fn statuses(&self) -> Vec<watch::Receiver<SlotStatus>> {
        self.slots.iter().map(|s| s.status.subscribe()).collect()
    }

    /// Runs one invocation, waiting at most `wait` for its outcome (queueing included).
    pub async fn invoke(
        &self,
        request: InvokeRequest,
        wait: Duration,
    ) -> Result<Outcome, WaitError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.push_back(Invocation {
            id: request_id(),
            request,
            reply,
        });
        match tokio::time::timeout(wait, outcome).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(WaitError::Stopped),
            Err(_) => Err(WaitError::TimedOut),
        }
    }

    /// Stops every instance for good; the supervisor tasks end once their process is gone.
    pub fn stop(&self) {
        for slot in &self.slots {
            lock(&slot.state).stopping = true;
            slot.kill.notify_one();
        }
    }

    /// Kills every instance's process at once, as a crash would (for tests); each is
    /// replaced, and what they were running fails with `Runtime.ExitError`.
    pub fn crash(&self) {
        for slot in &self.slots {
            {
                let mut state = lock(&slot.state);
                state.kill_generation = Some(state.generation);
            }
            slot.kill.notify_one();
        }
    }

    fn label(&self, slot: usize) -> String {
        format!("{}#{slot}", self.name)
    }

    /// Finishes an in-flight invocation; false if it is unknown (or already finished).
    fn complete(&self, id: &str, outcome: Outcome) -> bool {
        let Some(entry) = lock(&self.inflight).remove(id) else {
            return false;
        };
        entry.watchdog.abort();
        let _ = entry.reply.send(outcome);
        true
    }

    /// Fails what the ended process `generation` of `slot` was running.
    fn fail_inflight(&self, slot: usize, generation: u64, exit: &str) {
        let ended: Vec<(String, InFlight)> = {
            let mut inflight = lock(&self.inflight);
            let ids: Vec<String> = inflight
                .iter()
                .filter(|(_, e)| e.slot == slot && e.generation == generation)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| inflight.remove(&id).map(|e| (id, e)))
                .collect()
        };
        for (id, entry) in ended {
            warn!(
                "{}: invocation {id} failed: the instance exited ({exit})",
                self.label(slot)
            );
            entry.watchdog.abort();
            let message = format!("RequestId: {id} Error: Runtime exited with error: {exit}");
            let _ = entry
                .reply
                .send(Outcome::Error(error_json("Runtime.ExitError", &message)));
        }
    }

    /// Fails an invocation that ran past the timeout and replaces its instance, as Lambda does.
    fn time_out(&self, id: &str) {
        let Some(entry) = lock(&self.inflight).remove(id) else {
            return;
        };
        let seconds = self.timeout.as_secs_f64();
        warn!(
            "{}: invocation {id} timed out after {seconds:.2} s; replacing the instance",
            self.label(entry.slot)
        );
        let message = format!("RequestId: {id} Error: Task timed out after {seconds:.2} seconds");
        let _ = entry
            .reply
            .send(Outcome::Error(error_json("Sandbox.Timedout", &message)));
        let slot = &self.slots[entry.slot];
        {
            let mut state = lock(&slot.state);
            if state.generation == entry.generation {
                state.kill_generation = Some(entry.generation);
            }
        }
        slot.kill.notify_one();
    }

    /// Runs one process in `slot` until it exits or is killed; says how it ended.
    async fn run_instance(&self, slot: &Arc<Slot>, generation: u64) -> String {
        let path = self.spawn.bin_dir.join(&self.name);
        let label = self.label(slot.index);
        let mut cmd = process::command(&path);
        for (name, value) in &self.template_env {
            let configured = self.spawn.env.iter().any(|(n, _)| n == name);
            if !configured && std::env::var_os(name).is_none() {
                cmd.env(name, value);
            }
        }
        cmd.envs(self.spawn.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", slot.port))
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name())
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("TZ", ":UTC");
        slot.tail.clear();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return format!("could not start {}: {e}", path.display()),
        };
        debug!("{label}: started {} (pid {:?})", path.display(), child.id());
        let mut forwarders = Vec::new();
        if let Some(out) = child.stdout.take() {
            forwarders.push(process::forward(
                out,
                label.clone(),
                self.spawn.log.clone(),
                Arc::clone(&slot.tail),
            ));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(process::forward(
                err,
                label.clone(),
                self.spawn.log.clone(),
                Arc::clone(&slot.tail),
            ));
        }
        let status = tokio::select! {
            status = child.wait() => status,
            () = kill_requested(slot, generation) => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        // Let the forwarders catch the last lines (an init error, a panic message).
        for forwarder in forwarders {
            let _ = tokio::time::timeout(Duration::from_secs(1), forwarder).await;
        }
        match status {
            Ok(status) => status.to_string(),
            Err(e) => format!("lost track of the process: {e}"),
        }
    }
}

/// Resolves once the slot's process `generation` should die (timeout or shutdown).
async fn kill_requested(slot: &Slot, generation: u64) {
    loop {
        {
            let state = lock(&slot.state);
            if state.stopping || state.kill_generation == Some(generation) {
                return;
            }
        }
        slot.kill.notified().await;
    }
}

/// Keeps one process running in `slot`: restarts it whenever it ends, until the pool stops.
async fn supervise(pool: Arc<FunctionPool>, slot: Arc<Slot>) {
    let mut quick_failures = 0u32;
    loop {
        let generation = {
            let state = lock(&slot.state);
            if state.stopping {
                return;
            }
            state.generation
        };
        let started = Instant::now();
        let exit = pool.run_instance(&slot, generation).await;
        let (was_ready, stopping, init_error) = {
            let mut state = lock(&slot.state);
            state.generation += 1;
            state.kill_generation = None;
            (
                std::mem::take(&mut state.polled),
                state.stopping,
                state.init_error.take(),
            )
        };
        pool.fail_inflight(slot.index, generation, &exit);
        if stopping {
            debug!("{} stopped", pool.label(slot.index));
            return;
        }
        if was_ready {
            warn!(
                "{} exited ({exit}); starting a replacement",
                pool.label(slot.index)
            );
        } else {
            let mut detail = format!("the process ended before its first /next poll ({exit})");
            if let Some(init_error) = init_error {
                detail.push_str(&format!("; init error: {init_error}"));
            }
            let output = slot.tail.text();
            if !output.is_empty() {
                detail.push_str(&format!("; last output:\n{output}"));
            }
            warn!("{} failed during init: {detail}", pool.label(slot.index));
            slot.status.send_replace(SlotStatus::Failed(detail));
        }
        quick_failures = if started.elapsed() < Duration::from_secs(10) {
            quick_failures + 1
        } else {
            0
        };
        let backoff =
            Duration::from_millis(100 << quick_failures.min(7)).min(Duration::from_secs(10));
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = async { while !lock(&slot.state).stopping { slot.kill.notified().await } } => {}
        }
    }
}

#[derive(Clone)]
struct SlotCtx {
    pool: Arc<FunctionPool>,
    slot: usize,
}

fn runtime_api(ctx: SlotCtx) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::disable())
        .with_state(ctx)
}

/// `GET /next`: blocks until an invocation is queued, then hands it to this instance.
async fn next_invocation(State(ctx): State<SlotCtx>) -> Response {
    let pool = &ctx.pool;
    let slot = &pool.slots[ctx.slot];
    let (generation, first) = {
        let mut state = lock(&slot.state);
        let first = !state.polled;
        state.polled = true;
        (state.generation, first)
    };
    if first {
        debug!("{} is ready", pool.label(ctx.slot));
        slot.status.send_replace(SlotStatus::Ready);
    }
    loop {
        let Some(invocation) = pool.queue.pop().await else {
            return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
        };
        if invocation.reply.is_closed() {
            continue; // nobody waits for it any more
        }
        let deadline = SystemTime::now() + pool.timeout;
        let Invocation { id, request, reply } = invocation;
        {
            let state = lock(&slot.state);
            if state.generation != generation {
                // This poll came from a process that has since died: give the work back.
                drop(state);
                pool.queue.push_front(Invocation { id, request, reply });
                return StatusCode::GONE.into_response();
            }
            let watchdog = tokio::spawn({
                let pool = Arc::clone(pool);
                let id = id.clone();
                // A little slack so an instance finishing right at its deadline still wins.
                let limit = pool.timeout + Duration::from_millis(250);
                async move {
                    tokio::time::sleep(limit).await;
                    pool.time_out(&id);
                }
            });
            let entry = InFlight {
                slot: ctx.slot,
                generation,
                reply,
                watchdog: watchdog.abort_handle(),
            };
            lock(&pool.inflight).insert(id.clone(), entry);
        }
        debug!("{}: invocation {id}", pool.label(ctx.slot));
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut headers = HeaderMap::new();
        let arn = format!(
            "arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{}",
            pool.name
        );
        let trace = format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
            now_secs(),
            rand::random::<u128>() >> 32,
            rand::random::<u64>()
        );
        for (name, value) in [
            ("lambda-runtime-aws-request-id", Some(id)),
            ("lambda-runtime-deadline-ms", Some(deadline_ms.to_string())),
            ("lambda-runtime-invoked-function-arn", Some(arn)),
            ("lambda-runtime-trace-id", Some(trace)),
            ("lambda-runtime-client-context", request.client_context),
            ("lambda-runtime-cognito-identity", request.cognito_identity),
            ("content-type", Some("application/json".to_owned())),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        return (StatusCode::OK, headers, request.payload).into_response();
    }
}

/// `POST /invocation/{id}/response`.
async fn invocation_response(
    State(ctx): State<SlotCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let too_large = || {
        Outcome::Error(error_json(
            "Function.ResponseSizeTooLarge",
            &format!(
                "Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."
            ),
        ))
    };
    let announced = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let outcome = if announced.is_some_and(|n| n > MAX_PAYLOAD) {
        too_large()
    } else {
        match to_bytes(body, MAX_PAYLOAD).await {
            Ok(bytes) => Outcome::Response(bytes),
            Err(_) => too_large(),
        }
    };
    accept(&ctx, &id, outcome)
}

/// `POST /invocation/{id}/error`: the function (or the runtime) reports a failure.
async fn invocation_error(
    State(ctx): State<SlotCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = to_bytes(body, MAX_PAYLOAD).await.unwrap_or_default();
    let error = diagnostic(&headers, &body);
    debug!(
        "{}: invocation {id} reported an error: {}",
        ctx.pool.label(ctx.slot),
        String::from_utf8_lossy(&error)
    );
    accept(&ctx, &id, Outcome::Error(error))
}

fn accept(ctx: &SlotCtx, id: &str, outcome: Outcome) -> Response {
    if ctx.pool.complete(id, outcome) {
        (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
    } else {
        let body = json!({ "errorType": "InvalidRequestID", "errorMessage": format!("no invocation {id} is in flight (finished, timed out or unknown)") });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

/// `POST /init/error`: kept and shown if the instance then dies before serving.
async fn init_error(State(ctx): State<SlotCtx>, headers: HeaderMap, body: Body) -> Response {
    let body = to_bytes(body, MAX_PAYLOAD).await.unwrap_or_default();
    let report = String::from_utf8_lossy(&diagnostic(&headers, &body)).into_owned();
    info!(
        "{} reported an init error: {report}",
        ctx.pool.label(ctx.slot)
    );
    lock(&ctx.pool.slots[ctx.slot].state).init_error = Some(report);
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

/// The error JSON a runtime posted, or one made from its text and error-type header.
fn diagnostic(headers: &HeaderMap, body: &[u8]) -> Bytes {
    if serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_object()) {
        return Bytes::copy_from_slice(body);
    }
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled");
    error_json(error_type, &String::from_utf8_lossy(body))
}

pub fn error_json(error_type: &str, message: &str) -> Bytes {
    Bytes::from(json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

/// A random UUID (v4), the form of Lambda request ids.
pub fn request_id() -> String {
    let bits = (rand::random::<u128>() & !(0xf000 << 64) & !(0xc000 << 48))
        | (0x4000 << 64)
        | (0x8000 << 48);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn log_stream_name() -> String {
    format!(
        "{}/[$LATEST]{:032x}",
        chrono::Utc::now().format("%Y/%m/%d"),
        rand::random::<u128>()
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn diagnostics_keep_json_and_wrap_text() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            diagnostic(&headers, br#"{"errorType":"X","errorMessage":"m"}"#),
            Bytes::from_static(br#"{"errorType":"X","errorMessage":"m"}"#)
        );
        headers.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Runtime.Bad"),
        );
        let wrapped: Value = serde_json::from_slice(&diagnostic(&headers, b"boom")).expect("json");
        assert_eq!(
            wrapped,
            json!({"errorType": "Runtime.Bad", "errorMessage": "boom"})
        );
    }

    #[tokio::test]
    async fn queue_hands_out_in_order_and_front_first() {
        let queue = Queue::default();
        let make = |id: &str| Invocation {
            id: id.into(),
            request: InvokeRequest::default(),
            reply: oneshot::channel().0,
        };
        queue.push_back(make("a"));
        queue.push_back(make("b"));
        queue.push_front(make("c"));
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(queue.pop().await.expect("item").id);
        }
        assert_eq!(order, ["c", "a", "b"]);
    }
}
