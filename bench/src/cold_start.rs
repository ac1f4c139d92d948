//! Cold start: from exec of a release binary to its first `GET
//! /2018-06-01/runtime/invocation/next` on a runtime-API stub, for every function and for
//! `hello-lambda` (lambda_runtime's hello world, same profile); binary sizes too.
//!
//! A function's init is what Lambda bills as init: it reads its config, builds the SDK
//! clients and fetches the signing secret from Secrets Manager (moto here, on loopback), so
//! that fetch is inside the figure, as it is in AWS.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latchkey_local::stack::prepare;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

use crate::ctx::Ctx;

const HELLO: &str = "hello-lambda";
const TARGET_RATIO: f64 = 1.3;

struct Binary {
    name: String,
    env: Vec<(String, String)>,
    size: u64,
    times: Vec<Duration>,
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
        times: Vec::new(),
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
            times: Vec::new(),
        });
    }
    // One warm-up exec each (page cache, moto's first answer), then rounds over all
    // binaries, so drift on this shared machine hits them alike.
    for binary in &binaries {
        time_to_first_poll(&ctx.bin_dir.join(&binary.name), &binary.name, &binary.env).await?;
    }
    for _ in 0..runs {
        for binary in &mut binaries {
            let t = time_to_first_poll(&ctx.bin_dir.join(&binary.name), &binary.name, &binary.env)
                .await?;
            binary.times.push(t);
        }
    }
    let hello = median(&mut binaries[0].times.clone());
    let hello_size = binaries[0].size;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Time from exec to the first `GET /2018-06-01/runtime/invocation/next`, median of \
         {runs} cold starts per binary (after one warm-up exec), binaries from `{}` \
         (`cargo build --release`: the workspace's release profile, thin LTO, one codegen \
         unit, stripped). The runtime API is a stub that notes the first request and \
         kills the process. The functions get the environment the local stack gives them \
         and fetch the signing secret from Secrets Manager on moto during init; \
         `hello-lambda` is lambda_runtime's echo function. Target: at most {TARGET_RATIO}× \
         the hello world.\n",
        ctx.bin_dir.display()
    );
    out.push_str("| binary | median | p90 | min | × hello | size | × hello size |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    let mut worst: Option<(String, f64)> = None;
    let mut within = 0;
    for binary in &binaries {
        let mut times = binary.times.clone();
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
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {:.2}× | {:.1} MiB | {:.2}× |",
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
             the slowest, `{name}`, takes {ratio:.2}×."
        );
    }
    Ok(out)
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{} (build with --release first)", path.display()))?
        .len())
}

/// Execs `path` against a fresh runtime-API stub and times its first request.
async fn time_to_first_poll(path: &Path, name: &str, env: &[(String, String)]) -> Result<Duration> {
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
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let first = async {
        let (stream, _) = listener.accept().await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        Ok::<_, std::io::Error>((started.elapsed(), line))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), first).await;
    let _ = child.kill().await;
    let (elapsed, line) = match outcome {
        Ok(result) => result.with_context(|| format!("{name}: reading its first request"))?,
        Err(_) => bail!("{name} made no runtime API request within 30 s"),
    };
    if !line.starts_with("GET /2018-06-01/runtime/invocation/next") {
        bail!("{name}'s first runtime API request was {line:?} (an init error?)");
    }
    Ok(elapsed)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `times` must be sorted.
fn percentile(times: &[Duration], q: f64) -> Duration {
    let i = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
    times[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
