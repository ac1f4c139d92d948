//! Sign-in: argon2's share of the CPU. The CPU time (user + system, every thread) that the
//! `sessions` process spends on N successful sign-ins, from `/proc/<pid>/stat`, against the
//! CPU time argon2 took in those sign-ins, which `sessions` logs itself (`hash_cpu_us`,
//! measured with `CLOCK_THREAD_CPUTIME_ID` around `latchkey::password::verify`): both in one
//! process under one load, so contention on a shared machine weighs on both alike.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latchkey::password::{self, Password};

use crate::client::Client;
use crate::ctx::Ctx;

const TARGET_SHARE: f64 = 0.90;
/// Sign-ins before measuring: the first one in a process also hashes the timing dummy.
const WARM_UP: usize = 3;

pub async fn run(ctx: &Ctx) -> Result<String> {
    // 200 sign-ins are about 4 s of CPU, so the counter's 10 ms ticks move the share by
    // at most 0.25 %; 40 (the old default) let them move it by 1.2 %, as much as its margin.
    let n: usize = crate::load::env_number("BENCH_SIGNINS", 200)?;
    let log = std::env::var_os("LATCHKEY_LOG_FILE")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .context("LATCHKEY_LOG_FILE must name the functions' log (make bench sets it)")?;
    // One sessions process, so its CPU counter holds every sign-in.
    let stack = ctx.stack().instances(1).start().await?;
    let result = measure(&stack, n, &log).await;
    stack.shutdown().await?;
    let m = result?;

    let password = argon2_fixture()?;
    let quiet = verify_cpu(&password, n)?;
    let per = |d: Duration| d.as_secs_f64() / n as f64;
    let (per_signin, per_hash, per_quiet) = (per(m.cpu), per(m.hash_cpu), per(quiet));
    let share = per_hash / per_signin;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{n} successful sign-ins, one after another, into one warm `sessions` process \
         (after {WARM_UP} warm-up sign-ins). The process's CPU time is read from \
         `/proc/<pid>/stat` (utime + stime, all threads; the kernel counts in {} ms ticks). \
         argon2's CPU time is what `sessions` itself logs for each of those sign-ins \
         (`hash_cpu_us`: the thread CPU time of `latchkey::password::verify`, argon2id, \
         m=19456 KiB, t=2, p=1), so both are measured in the same process under the same \
         load. For comparison, the same verification {n} times on an idle thread of the bench \
         after the stack has stopped. Target: argon2 ≥ {:.0} % of sign-in's CPU.\n",
        1000 / clock_ticks(),
        TARGET_SHARE * 100.0
    );
    out.push_str("| figure | value |\n|---|---|\n");
    let _ = writeln!(
        out,
        "| `sessions` CPU per sign-in | {:.1} ms |",
        per_signin * 1e3
    );
    let _ = writeln!(
        out,
        "| argon2 CPU per sign-in, inside `sessions` | {:.1} ms |",
        per_hash * 1e3
    );
    let _ = writeln!(
        out,
        "| **argon2's share of sign-in CPU** | **{:.1} %** (target ≥ {:.0} %) |",
        share * 100.0,
        TARGET_SHARE * 100.0
    );
    let _ = writeln!(
        out,
        "| everything else per sign-in (JSON, JWT, SDK calls, logging, runtime) | {:.1} ms |",
        (per_signin - per_hash) * 1e3
    );
    let _ = writeln!(
        out,
        "| argon2 verify alone, per call, on an idle bench thread | {:.1} ms |",
        per_quiet * 1e3
    );
    let _ = writeln!(
        out,
        "| sign-in wall time, median (through the local gateway) | {:.1} ms |",
        m.wall_median.as_secs_f64() * 1e3
    );
    Ok(out)
}

struct Measured {
    cpu: Duration,
    hash_cpu: Duration,
    wall_median: Duration,
}

async fn measure(stack: &latchkey_local::TestStack, n: usize, log: &Path) -> Result<Measured> {
    let api = Client::new(stack.url());
    let sign_in = || api.sign_in("admin", stack.admin_email(), stack.admin_password());
    for _ in 0..WARM_UP {
        sign_in().await?.expect(200, "sign-in")?;
    }
    let pid = child_named("sessions")?;
    let log_from = std::fs::metadata(log).map_or(0, |m| m.len());
    let before = process_cpu(pid)?;
    let mut walls = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        sign_in().await?.expect(200, "sign-in")?;
        walls.push(started.elapsed());
    }
    let after = process_cpu(pid)?;
    walls.sort();
    Ok(Measured {
        cpu: after.saturating_sub(before),
        hash_cpu: logged_hash_cpu(log, log_from, n).await?,
        wall_median: walls[walls.len() / 2],
    })
}

/// The sum of `hash_cpu_us` over the `n` "signed in" lines `sessions` logged after byte
/// `from` of the functions' log (the gateway copies function output there as it comes).
async fn logged_hash_cpu(log: &Path, from: u64, n: usize) -> Result<Duration> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
        let tail = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
        let micros: Vec<u64> = tail
            .lines()
            .filter_map(|line| line.strip_prefix("[sessions#")?.split_once("] "))
            .filter_map(|(_, json)| serde_json::from_str::<serde_json::Value>(json).ok())
            .filter(|entry| entry["message"] == "signed in")
            .filter_map(|entry| entry["hash_cpu_us"].as_u64())
            .collect();
        if micros.len() >= n {
            return Ok(Duration::from_micros(micros.iter().sum()));
        }
        if Instant::now() > deadline {
            bail!(
                "{} logged {} of {n} sign-ins with hash_cpu_us",
                log.display(),
                micros.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PHC string of the sign-in parameters, made by the code that makes stored hashes.
fn argon2_fixture() -> Result<(String, String)> {
    let raw = "bench passphrase for argon2".to_owned();
    let parsed = Password::parse(&raw, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let phc = password::hash(&parsed)?;
    Ok((raw, phc))
}

/// CPU time of `n` verifications on a fresh thread (so nothing else runs on its clock).
fn verify_cpu((raw, phc): &(String, String), n: usize) -> Result<Duration> {
    let (raw, phc) = (raw.clone(), phc.clone());
    std::thread::spawn(move || {
        // The first call also hashes the timing dummy: keep it out of the figure.
        if !password::verify(&raw, Some(&phc)) {
            bail!("the password does not verify");
        }
        let before = thread_cpu();
        for _ in 0..n {
            std::hint::black_box(password::verify(&raw, Some(&phc)));
        }
        Ok(thread_cpu().saturating_sub(before))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the verify thread panicked"))?
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The pid of this process's child named `name` (the gateway spawns function instances
/// from this process).
fn child_named(name: &str) -> Result<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((comm, rest)) = parse_stat(&stat) else {
            continue;
        };
        if comm == name && rest.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(*pid),
        [] => bail!("no {name} process is a child of this one"),
        _ => bail!("{} {name} processes, expected one", found.len()),
    }
}

/// (comm, fields after comm: state, ppid, ...).
fn parse_stat(stat: &str) -> Option<(&str, Vec<&str>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    Some((comm, stat[close + 1..].split_whitespace().collect()))
}

/// utime + stime of `pid`, all threads.
fn process_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (_, fields) = parse_stat(&stat).context("unreadable /proc stat")?;
    // Fields 14 and 15 of stat(5); 3 is the first after comm.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .context("no utime/stime in /proc stat")
    };
    let ticks = tick(14)? + tick(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}
