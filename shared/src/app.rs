//! What a function builds once per instance: typed config, AWS clients, keys.
//!
//! Config is read before the runtime starts, so a missing variable still fails the cold
//! start with its name. The rest (SDK set-up, the Secrets Manager round trip) runs in a
//! [`Warm`] cell beside the runtime's first poll instead of before it: the instance is ready
//! to be handed its first event sooner, and the first event waits only for what is left.
//!
//! The functions run on Tokio's current-thread runtime. A Lambda instance handles one event
//! at a time on a share of one vCPU, so a second worker thread buys no parallelism there; it
//! costs a cross-thread wake for every socket event instead (about a sixth of sign-in's CPU
//! outside argon2, see BENCHMARKS.md). On one thread, "beside the first poll" means the init
//! task first lets the poll go out (`FIRST_POLL_TURNS`), then does its CPU work while the
//! poll waits for an event.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_types::SdkConfig;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::config::{Config, ConfigError};
use crate::events::{EventBridgePublisher, EventPublisher, NoEvents};
use crate::mail::{Mailer, NoMail, SesMailer};
use crate::secrets::{Keys, SecretError};
use crate::store::Store;

pub struct App<M: Mailer = SesMailer> {
    pub config: Config,
    pub store: Store,
    pub mailer: M,
    pub keys: Keys,
    /// Lifecycle events (best effort: see [`crate::events::emit`]).
    pub events: Box<dyn EventPublisher>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("signing key: {0}")]
    Secret(#[from] SecretError),
    /// The last attempt failed less than [`RETRY_PAUSE`] ago; this caller did not try again.
    #[error("the last init attempt failed moments ago; not retried yet")]
    RecentlyFailed,
}

/// How long after a failed build callers are refused at once instead of building again:
/// while Secrets Manager is down, an instance asks it at most once per pause, not once per
/// request, and logs one error per attempt. Shorter than the 503's Retry-After, so a client
/// that waits as told always gets a fresh attempt.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A client a function may hold besides the table and the signing secret, built from the
/// SDK configuration once per instance. Each function's `main` names the ones its IAM role
/// allows (`infra/template.yaml`): a client it may not use is not built, and so not linked.
pub trait Connect: Sized {
    fn connect(config: &Config, sdk: &SdkConfig) -> Self;
}

impl Connect for SesMailer {
    fn connect(config: &Config, sdk: &SdkConfig) -> Self {
        SesMailer::new(aws_sdk_sesv2::Client::new(sdk), config.sender_email.clone())
            .with_configuration_set(config.ses_configuration_set.clone())
    }
}

impl Connect for NoMail {
    fn connect(_: &Config, _: &SdkConfig) -> Self {
        NoMail
    }
}

impl Connect for EventBridgePublisher {
    fn connect(config: &Config, sdk: &SdkConfig) -> Self {
        EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(sdk),
            config.event_bus.clone(),
        )
    }
}

impl Connect for NoEvents {
    fn connect(_: &Config, _: &SdkConfig) -> Self {
        NoEvents
    }
}

impl<M: Mailer + Connect> App<M> {
    /// Builds the table client, mail through `M` and events through `E`, and fetches the
    /// signing secret: one network round trip.
    pub async fn connect<E>(config: Config, sdk: &SdkConfig) -> Result<Self, InitError>
    where
        E: EventPublisher + Connect + 'static,
    {
        let keys = Keys::fetch(
            &aws_sdk_secretsmanager::Client::new(sdk),
            &config.jwt_secret_arn,
            config.keyring_refresh,
        )
        .await?;
        let store = Store::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.table_name.clone(),
        );
        Ok(Self {
            mailer: M::connect(&config, sdk),
            events: Box::new(E::connect(&config, sdk)),
            config,
            store,
            keys,
        })
    }

    /// [`Self::connect`] with the SDK configuration of the environment.
    pub async fn build<E>(config: Config) -> Result<Self, InitError>
    where
        E: EventPublisher + Connect + 'static,
    {
        let sdk = config.aws.sdk_config();
        Self::connect::<E>(config, &sdk).await
    }
}

/// Scheduler turns a [`Warm`] build lets pass before it starts, so that on a current-thread
/// runtime the runtime's first poll goes out before the build's CPU work. That poll takes
/// three turns (connect, the connection's task, the write: lambda_runtime 1.5 over
/// hyper-util 0.1, traced with strace); the rest is margin. An idle turn is one
/// `epoll_wait` that does not block, so the margin costs microseconds, and too few turns
/// would only make the poll wait for the build again, as the cold-start bench would show.
const FIRST_POLL_TURNS: usize = 8;

type InitFuture<T> = Pin<Box<dyn Future<Output = Result<T, InitError>> + Send>>;

/// A value built once per instance, starting at cold start on its own task.
///
/// [`Warm::start`] spawns the build and returns at once; [`Warm::get`] waits for it. Callers
/// arriving while it runs share the one build. If it fails (Secrets Manager throttled, say),
/// the error is logged, the caller gets it, and the first `get` after [`RETRY_PAUSE`] builds
/// again: one bad moment at cold start does not poison the instance for its whole life.
pub struct Warm<T> {
    inner: Arc<WarmInner<T>>,
}

struct WarmInner<T> {
    cell: OnceCell<T>,
    build: Box<dyn Fn() -> InitFuture<T> + Send + Sync>,
    retry_pause: Duration,
    failed_at: Mutex<Option<Instant>>,
}

impl<T> WarmInner<T> {
    fn failed_recently(&self) -> bool {
        let failed_at = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        failed_at.is_some_and(|at| at.elapsed() < self.retry_pause)
    }

    fn record_failure(&self) {
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }
}

impl<T> Clone for Warm<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Send + Sync + 'static> Warm<T> {
    /// Starts `build` now, on a task of the current Tokio runtime.
    pub fn start<F, Fut>(build: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, InitError>> + Send + 'static,
    {
        Self::start_with_retry_pause(RETRY_PAUSE, build)
    }

    /// [`Self::start`] with another pause between failed attempts (tests use short ones).
    pub fn start_with_retry_pause<F, Fut>(retry_pause: Duration, build: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, InitError>> + Send + 'static,
    {
        let warm = Self {
            inner: Arc::new(WarmInner {
                cell: OnceCell::new(),
                build: Box::new(move || Box::pin(build())),
                retry_pause,
                failed_at: Mutex::new(None),
            }),
        };
        let early = warm.clone();
        tokio::spawn(async move {
            for _ in 0..FIRST_POLL_TURNS {
                tokio::task::yield_now().await;
            }
            // A failure is logged by `get` and retried by the first event's `get`.
            let _ = early.get().await;
        });
        warm
    }

    /// The built value, waiting for the build in flight or starting a new one (unless the
    /// last one failed less than the retry pause ago).
    pub async fn get(&self) -> Result<&T, InitError> {
        let inner = &*self.inner;
        inner
            .cell
            .get_or_try_init(|| async {
                // Checked here, under the cell's lock, so that callers queued behind a build
                // that fails do not each retry it.
                if inner.failed_recently() {
                    return Err(InitError::RecentlyFailed);
                }
                let built = (inner.build)()
                    .instrument(tracing::info_span!("init"))
                    .await;
                if let Err(err) = &built {
                    tracing::error!(error = %err, "init failed; an event after the retry pause retries it");
                    inner.record_failure();
                }
                built
            })
            .await
    }

    /// For HTTP functions: the built value, or the 503 the caller gets while it cannot be
    /// built (the detail names no dependency; the log does).
    pub async fn get_or_unavailable(&self) -> Result<&T, lambda_http::Response<lambda_http::Body>> {
        self.get()
            .await
            .map_err(|_| crate::http::problem(&crate::problem::Problem::unavailable()))
    }
}

/// What an HTTP function does with a request once its instance is built.
pub type HttpHandler<T> = for<'a> fn(
    &'a T,
    lambda_http::Request,
) -> Pin<
    Box<dyn Future<Output = lambda_http::Response<lambda_http::Body>> + Send + 'a>,
>;

/// Runs an HTTP function: each request waits for the instance's [`Warm`] value and goes to
/// `handle`, or gets a 503 while that value cannot be built.
pub async fn serve_http<T: Send + Sync + 'static>(
    warm: Warm<T>,
    handle: HttpHandler<T>,
) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(move |req| {
        let warm = warm.clone();
        async move {
            Ok::<_, std::convert::Infallible>(match warm.get_or_unavailable().await {
                Ok(built) => handle(built, req).await,
                Err(unavailable) => unavailable,
            })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counting(
        failures: usize,
    ) -> (
        Arc<AtomicUsize>,
        impl Fn() -> InitFuture<usize> + Send + Sync + 'static,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let build = move || -> InitFuture<usize> {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                if n <= failures {
                    Err(InitError::Secret(SecretError::Empty("test".into())))
                } else {
                    Ok(n)
                }
            })
        };
        (calls, build)
    }

    #[tokio::test]
    async fn the_build_starts_before_anyone_asks_for_it() {
        let (calls, build) = counting(0);
        let _warm = Warm::start(build);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn callers_arriving_during_the_build_share_it() {
        let (calls, build) = counting(0);
        let warm = Warm::start(build);
        let (a, b, c) = tokio::join!(warm.get(), warm.get(), warm.get());
        assert_eq!((*a.unwrap(), *b.unwrap(), *c.unwrap()), (1, 1, 1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_build_is_retried_by_a_caller_after_the_pause() {
        let pause = Duration::from_millis(30);
        let (calls, build) = counting(1);
        let warm = Warm::start_with_retry_pause(pause, build);
        assert!(warm.get().await.is_err(), "the cold-start build fails");

        tokio::time::sleep(pause * 2).await;
        assert_eq!(*warm.get().await.expect("the retry succeeds"), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(*warm.get().await.unwrap(), 2, "built once, kept");
    }

    #[tokio::test]
    async fn callers_within_the_pause_after_a_failure_are_refused_without_a_new_attempt() {
        let (calls, build) = counting(usize::MAX);
        let warm = Warm::start_with_retry_pause(Duration::from_secs(600), build);
        assert!(warm.get().await.is_err());

        let (a, b) = tokio::join!(warm.get(), warm.get());
        assert!(matches!(a, Err(InitError::RecentlyFailed)), "{a:?}");
        assert!(matches!(b, Err(InitError::RecentlyFailed)), "{b:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one attempt, not three");
    }

    #[tokio::test]
    async fn an_unavailable_build_answers_a_503_problem() {
        let (_, build) = counting(usize::MAX);
        let warm = Warm::start(build);
        let response = warm.get_or_unavailable().await.err().unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
}
