//! Cold start: from exec of a release binary to its first `GET
//! /2018-06-01/runtime/invocation/next` on a runtime-API stub, for every function and for
//! `hello-lambda` (lambda_runtime's hello world, same profile); binary sizes too.
//!
//! A function reads its config before that first poll and builds its clients and fetches the
//! signing secret once the poll is out (`latchkey::app::Warm`), so the poll alone would hide
//! that work: HTTP functions are therefore also handed one probe request, and its answer is
//! timed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use latchkey_local::stack::prepare;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::ctx::Ctx;

const HELLO: &str = "hello-lambda";
const TARGET_RATIO: f64 = 1.3;

struct Binary {
    name: String,
    env: Vec<(String, String)>,
    size: u64,
    /// The first event it is given: HTTP functions (and the hello world) get [`PROBE_EVENT`].
    event: Option<&'static str>,
    polls: Vec<Duration>,
    answers: Vec<Duration>,
    /// Minor page faults the process had taken when it first polled.
    faults: Vec<u64>,
}

pub async fn run(ctx: &Ctx) -> Result<String> {
    let runs: usize = crate::load::env_number("BENCH_COLD_RUNS", 25)?;
    // The environment the local stack gives every function: table, secret ARN, endpoints.
    let prepared = prepare(
        &ctx.aws,
        &ctx.endpoints,
        &ctx.template,
        &format!("cold-{:08x}", rand::random::<u32>()),
        &[(
            "PUBLIC_BASE_URL".to_owned(),
            "http://127.0.0.1:9000".to_owned(),
        )],
    )
    .await?;
    let mut binaries = vec![Binary {
        name: HELLO.to_owned(),
        env: Vec::new(),
        size: size(&ctx.bin_dir.join(HELLO))?,
        event: Some(PROBE_EVENT),
        polls: Vec::new(),
        answers: Vec::new(),
        faults: Vec::new(),
    }];
    let mut missing = Vec::new();
    for function in &ctx.template.functions {
        // A binary not built is reported, not fatal: the others still compare.
        if !ctx.bin_dir.join(&function.binary).is_file() {
            missing.push(function.binary.clone());
            continue;
        }
        let mut env = function.environment.clone();
        env.extend(prepared.env.iter().cloned());
        binaries.push(Binary {
            name: function.binary.clone(),
            size: size(&ctx.bin_dir.join(&function.binary))?,
            env,
            event: (!function.routes.is_empty()).then_some(PROBE_EVENT),
            polls: Vec::new(),
            answers: Vec::new(),
            faults: Vec::new(),
        });
    }
    // One warm-up exec each (page cache, moto's first answer), then rounds over all
    // binaries, so drift on this shared machine hits them alike.
    for binary in &binaries {
        cold_start(
            &ctx.bin_dir.join(&binary.name),
            &binary.name,
            &binary.env,
            binary.event,
        )
        .await?;
    }
    for _ in 0..runs {
        for binary in &mut binaries {
            let start = cold_start(
                &ctx.bin_dir.join(&binary.name),
                &binary.name,
                &binary.env,
                binary.event,
            )
            .await?;
            binary.polls.push(start.poll);
            binary.answers.extend(start.answer);
            binary.faults.extend(start.faults);
        }
    }
    let hello = median(&mut binaries[0].polls.clone());
    let hello_answer = median(&mut binaries[0].answers.clone());
    let hello_size = binaries[0].size;
    let hello_faults = median_count(&binaries[0].faults);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Time from exec to the first `GET /2018-06-01/runtime/invocation/next` (first poll), \
         median of {runs} cold starts per binary (after one warm-up exec), binaries from `{}` \
         (`cargo build --release`: the workspace's release profile, thin LTO, one codegen \
         unit, stripped). The runtime API is a stub on loopback. `hello-lambda` is \
         lambda_runtime's echo function. The functions get the environment the local stack \
         gives them; they read and check their config before the first poll, and build their \
         SDK clients and fetch the signing secret (from Secrets Manager on moto) on a task of \
         their own once the poll is out (`latchkey::app::Warm`). So the table also times the first \
         answer: each HTTP function (and the hello world) is handed one unauthenticated \
         `GET` as its first event, which it can only answer once that init is done. Page \
         faults are the minor faults (`minflt` of `/proc/<pid>/stat`, all threads) the process \
         had taken when the stub saw its first poll. Target: first poll at most \
         {TARGET_RATIO}× the hello world.\n",
        ctx.bin_dir.display()
    );
    out.push_str(
        "| binary | first poll, median | p90 | min | × hello | first answer, median | × hello | size | × hello size | page faults by first poll | more than hello |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut worst: Option<(String, f64)> = None;
    let mut within = 0;
    for binary in &binaries {
        let mut times = binary.polls.clone();
        let med = median(&mut times);
        let ratio = med.as_secs_f64() / hello.as_secs_f64();
        if binary.name != HELLO {
            if ratio <= TARGET_RATIO {
                within += 1;
            }
            if worst.as_ref().is_none_or(|(_, r)| ratio > *r) {
                worst = Some((binary.name.clone(), ratio));
            }
        }
        let answer = if binary.answers.is_empty() {
            "— | —".to_owned()
        } else {
            let answer = median(&mut binary.answers.clone());
            format!(
                "{} | {:.2}×",
                ms(answer),
                answer.as_secs_f64() / hello_answer.as_secs_f64()
            )
        };
        let faults = match (median_count(&binary.faults), hello_faults) {
            (Some(faults), Some(hello)) => {
                format!("{faults} | {:+}", i128::from(faults) - i128::from(hello))
            }
            (Some(faults), None) => format!("{faults} | —"),
            (None, _) => "— | —".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {:.2}× | {answer} | {:.1} MiB | {:.2}× | {faults} |",
            binary.name,
            ms(med),
            ms(percentile(&times, 0.9)),
            ms(times[0]),
            ratio,
            binary.size as f64 / (1024.0 * 1024.0),
            binary.size as f64 / hello_size as f64
        );
    }
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "\nNot built in {}, so not measured: {}.",
            ctx.bin_dir.display(),
            missing.join(", ")
        );
    }
    let functions = binaries.len() - 1;
    if let Some((name, ratio)) = worst {
        let _ = writeln!(
            out,
            "\n{within} of {functions} functions start within {TARGET_RATIO}× the hello world; \
             the slowest, `{name}`, takes {ratio:.2}×. Functions without routes get no \
             first event (—): their events do real work."
        );
    }
    Ok(out)
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{} (build with --release first)", path.display()))?
        .len())
}

/// The probe each HTTP function answers first: no credentials, so any function can answer it
/// (401 or 404) without touching the table, but only once its init is done.
const PROBE_EVENT: &str = r#"{"version":"2.0","routeKey":"$default","rawPath":"/v1/cold-start-probe",
"rawQueryString":"","headers":{"host":"127.0.0.1:9000","accept":"application/json"},
"requestContext":{"accountId":"000000000000","apiId":"bench","domainName":"127.0.0.1",
"domainPrefix":"bench","http":{"method":"GET","path":"/v1/cold-start-probe","protocol":"HTTP/1.1",
"sourceIp":"127.0.0.1","userAgent":"latchkey-bench"},"requestId":"cold-start-probe",
"routeKey":"$default","stage":"$default","time":"01/Jan/2026:00:00:00 +0000","timeEpoch":0},
"isBase64Encoded":false}"#;

/// One cold start: when the instance first polled, and when it answered its first event
/// (`None` when no event was given).
struct ColdStart {
    poll: Duration,
    answer: Option<Duration>,
    /// `None` when the process polled before its pid was known, or `/proc` was unreadable.
    faults: Option<u64>,
}

#[derive(Default)]
struct Seen {
    poll: Option<Duration>,
    faults: Option<u64>,
    answer: Option<Result<Duration, String>>,
}

#[derive(Clone)]
struct Stub {
    started: Instant,
    /// The child's pid, once `spawn` has returned.
    pid: Arc<Mutex<Option<u32>>>,
    event: Option<&'static str>,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
}

impl Stub {
    fn note(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_one();
    }
}

/// The runtime API, as far as a first invocation needs: the first `next` gets `event` (or
/// nothing, ever), and the answer is timed.
fn stub_api(stub: Stub) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(stub_next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(stub_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(stub_error),
        )
        .route("/2018-06-01/runtime/init/error", post(stub_error))
        .with_state(stub)
}

async fn stub_next(State(stub): State<Stub>) -> Response {
    let elapsed = stub.started.elapsed();
    let pid = *stub.pid.lock().unwrap_or_else(|e| e.into_inner());
    let mut first = false;
    stub.note(|seen| {
        first = seen.poll.is_none();
        if first {
            seen.poll = Some(elapsed);
            seen.faults = pid.and_then(minor_faults);
        }
    });
    match stub.event {
        Some(event) if first => {
            let deadline = SystemTime::now() + Duration::from_secs(30);
            let deadline_ms = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                .to_string();
            (
                [
                    ("content-type", "application/json".to_owned()),
                    ("lambda-runtime-aws-request-id", "cold-start-1".to_owned()),
                    ("lambda-runtime-deadline-ms", deadline_ms),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:000000000000:function:bench".to_owned(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000".to_owned(),
                    ),
                ],
                event,
            )
                .into_response()
        }
        // No (further) work: hold the poll open, as Lambda does, until the process is killed.
        _ => std::future::pending().await,
    }
}

async fn stub_response(State(stub): State<Stub>) -> StatusCode {
    let elapsed = stub.started.elapsed();
    stub.note(|seen| {
        seen.answer.get_or_insert(Ok(elapsed));
    });
    StatusCode::ACCEPTED
}

async fn stub_error(State(stub): State<Stub>, body: String) -> StatusCode {
    stub.note(|seen| {
        seen.answer.get_or_insert(Err(body));
    });
    StatusCode::ACCEPTED
}

/// Execs `path` against a fresh runtime-API stub; times its first poll and, with `event`,
/// its answer to that event.
async fn cold_start(
    path: &Path,
    name: &str,
    env: &[(String, String)],
    event: Option<&'static str>,
) -> Result<ColdStart> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mut cmd = tokio::process::Command::new(path);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let stub = Stub {
        started: Instant::now(),
        pid: Arc::default(),
        event,
        seen: Arc::default(),
        changed: Arc::default(),
    };
    let server = tokio::spawn(axum::serve(listener, stub_api(stub.clone())).into_future());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    *stub.pid.lock().unwrap_or_else(|e| e.into_inner()) = child.id();
    // The stub's clock started a moment before the exec; take that moment off.
    let offset = started.duration_since(stub.started);
    let done = async {
        loop {
            let changed = stub.changed.notified();
            {
                let seen = stub.seen.lock().unwrap_or_else(|e| e.into_inner());
                let finished = match event {
                    Some(_) => seen.answer.is_some(),
                    None => seen.poll.is_some(),
                };
                if finished {
                    return (seen.poll, seen.faults, seen.answer.clone());
                }
            }
            changed.await;
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), done).await;
    let _ = child.kill().await;
    server.abort();
    let Ok((poll, faults, answer)) = outcome else {
        bail!("{name} did not finish its cold start within 30 s");
    };
    let answer = match answer {
        None => None,
        Some(Ok(at)) => Some(at - offset),
        Some(Err(body)) => bail!("{name} reported an error to the runtime API: {body}"),
    };
    let Some(poll) = poll else {
        bail!("{name} answered without polling");
    };
    Ok(ColdStart {
        poll: poll - offset,
        answer,
        faults,
    })
}

/// The minor page faults process `pid` has taken so far, all threads counted: field 10 of
/// `/proc/<pid>/stat`, counted after the parenthesised command name (which may hold spaces).
fn minor_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_minor_faults(&stat)
}

fn parse_minor_faults(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name come field 3 (state) onwards; minflt is field 10.
    after_name.split_whitespace().nth(7)?.parse().ok()
}

fn median_count(counts: &[u64]) -> Option<u64> {
    (!counts.is_empty()).then(|| median(&mut counts.to_vec()))
}

fn median<T: Ord + Copy>(values: &mut [T]) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

/// `times` must be sorted.
fn percentile(times: &[Duration], q: f64) -> Duration {
    let i = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
    times[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_faults_are_read_after_a_command_name_holding_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt ...
        let cases = [
            (
                "4242 (invite) S 1 4242 4242 0 -1 4194560 279 0 0 0",
                Some(279),
            ),
            (
                "4242 (a b) c)) R 1 4242 4242 0 -1 4194560 31 7 0 0",
                Some(31),
            ),
            ("4242 (invite) S 1 4242", None),
            ("no parenthesis at all", None),
        ];
        for (stat, expected) in cases {
            assert_eq!(parse_minor_faults(stat), expected, "{stat}");
        }
    }

    #[test]
    fn this_process_can_read_its_own_minor_faults() {
        assert!(minor_faults(std::process::id()).is_some_and(|n| n > 0));
    }
}
