//! `latchkey-bench`: the figures behind Latchkey's claims, measured in one run on this
//! machine and written to `BENCHMARKS.md` (see the README, "Benchmarks").
//!
//! Each benchmark is one subcommand and one section of the report, so a benchmark can be
//! added (a module with `run(&Ctx) -> Result<String>` and a line in [`BENCHMARKS`]) or
//! re-run alone without touching the others' figures. Benchmarks print figures; they never
//! fail because the machine is slow, only when something answers wrongly.

mod argon2_share;
mod client;
mod cold_start;
mod csv_import;
mod ctx;
mod load;
mod report;
mod requests;

use std::process::ExitCode;

use anyhow::Result;

use crate::ctx::Ctx;

/// Every benchmark: subcommand (and section id), title.
pub const BENCHMARKS: &[(&str, &str)] = &[
    ("requests", "AWS requests per operation"),
    ("cold-start", "Cold start"),
    ("argon2", "Sign-in: argon2's share of the CPU"),
    ("load", "Throughput under load"),
    ("csv-import", "CSV import at scale"),
];

async fn run_one(name: &str, ctx: &Ctx, sink: &report::Sink<'_>) -> Result<String> {
    match name {
        "requests" => requests::run(ctx).await,
        "cold-start" => cold_start::run(ctx).await,
        "argon2" => argon2_share::run(ctx).await,
        "load" => load::run(ctx).await,
        "csv-import" => csv_import::run(ctx, sink).await,
        other => anyhow::bail!("no benchmark named {other:?}"),
    }
}

const USAGE: &str = "\
usage: latchkey-bench [BENCHMARK...] [--out FILE]

Runs the named benchmarks (default: all) against emulators it starts itself, prints the
figures and writes each one's section of FILE (default BENCHMARKS.md at the workspace root);
sections of benchmarks not run are kept.

benchmarks: requests, cold-start, argon2, load, csv-import

environment:
  BENCH_COLD_RUNS         cold starts per binary (default 25)
  BENCH_SIGNINS           sign-ins timed for the argon2 share (default 200)
  BENCH_LOAD_N            invites and sign-ins under load (default 200 each)
  BENCH_LOAD_CONCURRENCY  requests in flight under load (default 4, at most 10)
  BENCH_CSV_ROWS          rows per imported file, comma-separated (default 100000,1000000)
  BENCH_CSV_SDK_ROWS      largest file the bare SDK loop also writes (default: every file)
  BENCH_COMMAND           the command recorded in the report (make bench sets it)
  LATCHKEY_BIN_DIR        the release binaries (default: this binary's folder)";

fn main() -> ExitCode {
    tracing_subscriber_init();
    let mut names = Vec::new();
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--out" => match args.next() {
                Some(path) => out = Some(path.into()),
                None => {
                    eprintln!("--out needs a file\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "all" => names.extend(BENCHMARKS.iter().map(|(n, _)| (*n).to_owned())),
            name if BENCHMARKS.iter().any(|(n, _)| *n == name) => names.push(name.to_owned()),
            other => {
                eprintln!("unknown argument {other:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if names.is_empty() {
        names.extend(BENCHMARKS.iter().map(|(n, _)| (*n).to_owned()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(names, out)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("latchkey-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The local stack logs through `tracing`, at `warn` unless LATCHKEY_LOCAL_LOG says
/// otherwise: the figures are what this prints, on stdout; its warnings go to stderr.
fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOCAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs `names` in order; true if every one succeeded.
async fn run(names: Vec<String>, out: Option<std::path::PathBuf>) -> Result<bool> {
    let ctx = Ctx::start().await?;
    let out = out.unwrap_or_else(|| ctx.paths.root.join("BENCHMARKS.md"));
    let header = report::header(&ctx.paths.root);
    let source = report::Source::capture(&ctx.paths.root);
    println!("{header}");
    let mut all_ok = true;
    for name in &names {
        let title = BENCHMARKS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .unwrap_or(name.as_str());
        println!("== {title} ({name})");
        let started = std::time::Instant::now();
        let sink = report::Sink {
            out: &out,
            header: &header,
            source: &source,
            root: &ctx.paths.root,
            bin_dir: &ctx.bin_dir,
            name,
            title,
        };
        match run_one(name, &ctx, &sink).await {
            Ok(body) => {
                println!("{body}");
                println!(
                    "== {name}: done in {:.1} s\n",
                    started.elapsed().as_secs_f64()
                );
                sink.write(&body)?;
            }
            Err(e) => {
                all_ok = false;
                eprintln!("== {name} FAILED: {e:#}\n");
            }
        }
    }
    ctx.stop().await;
    println!("figures written to {}", out.display());
    Ok(all_ok)
}
