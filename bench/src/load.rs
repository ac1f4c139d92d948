//! Throughput under load: N invitations (one row each) and N sign-ins through the local API
//! at a fixed concurrency, against the function binaries with as many instances per function
//! as requests in flight (as Lambda would scale). Latency is the client's, through the
//! local API gateway; errors are answers other than the expected 200.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::client::{Client, unique_email};
use crate::ctx::Ctx;

/// A positive number from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{name}={v:?} is not a positive number")),
        _ => Ok(default),
    }
}

struct Outcome {
    name: &'static str,
    wall: Duration,
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

pub async fn run(ctx: &Ctx) -> Result<String> {
    let n = env_number("BENCH_LOAD_N", 200)?;
    let concurrency = env_number("BENCH_LOAD_CONCURRENCY", 4)?;
    // The sign-ins are all the bootstrap admin's, and sign-in holds a place in the address's
    // failure window while it checks the password: past that many in flight, it answers 429.
    let most = latchkey::ops::sessions::MAX_FAILURES as usize;
    anyhow::ensure!(
        concurrency <= most,
        "BENCH_LOAD_CONCURRENCY={concurrency}: the load signs in as one address, and at most \
         {most} sign-ins of one address are checked at once"
    );
    let stack = ctx
        .stack()
        .instances(concurrency)
        // The hourly mail budget per tenant would answer 429 long before N invitations.
        .env("INVITE_MAIL_PER_HOUR", "100000000")
        .start()
        .await?;
    let result = load(&stack, n, concurrency).await;
    stack.shutdown().await?;
    let outcomes = result?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{n} requests of each kind, {concurrency} in flight at a time, through the local API \
         gateway to the function binaries ({concurrency} instances per function), DynamoDB \
         Local and SES on moto, all on this machine. Invitations have one row each and send \
         mail; sign-ins are of one admin with the right password (one argon2 verification \
         each). Latency is measured by the client, gateway included.\n"
    );
    out.push_str(
        "| requests | count | in flight | wall | throughput | p50 | p99 | max | errors |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for o in &outcomes {
        let mut l = o.latencies.clone();
        l.sort();
        let _ = writeln!(
            out,
            "| {} | {} | {concurrency} | {:.1} s | {:.1} /s | {} | {} | {} | {} |",
            o.name,
            l.len(),
            o.wall.as_secs_f64(),
            l.len() as f64 / o.wall.as_secs_f64(),
            ms(percentile(&l, 0.50)),
            ms(percentile(&l, 0.99)),
            ms(*l.last().unwrap_or(&Duration::ZERO)),
            o.errors
        );
    }
    for o in &outcomes {
        if let Some(e) = &o.first_error {
            let _ = writeln!(out, "\nFirst error of {}: `{e}`", o.name);
        }
    }
    Ok(out)
}

async fn load(
    stack: &latchkey_local::TestStack,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Outcome>> {
    let api = Client::new(stack.url());
    let (email, password) = (
        stack.admin_email().to_owned(),
        stack.admin_password().to_owned(),
    );
    let admin = api.admin_token(stack).await?;
    let tenant = api.create_tenant(&admin, "Load").await?;
    let path = format!("/v1/tenants/{tenant}/invitations");
    let invites = drive("invitations (1 row each)", n, concurrency, {
        let api = api.clone();
        move |_| {
            let (api, path, admin) = (api.clone(), path.clone(), admin.clone());
            async move {
                let body = json!({"invitations": [{"email": unique_email("load"), "role": "member"}], "send_email": true});
                let resp = api.post(&path, Some(&admin), &body).await?;
                let row = &resp.json["results"][0];
                anyhow::ensure!(
                    resp.status == 200 && row["status"] == "invited" && row["email_sent"] == true,
                    "{}: {}",
                    resp.status,
                    resp.json
                );
                Ok(())
            }
        }
    })
    .await;
    let sign_ins = drive("sign-ins", n, concurrency, {
        let api = api.clone();
        move |_| {
            let (api, email, password) = (api.clone(), email.clone(), password.clone());
            async move {
                let resp = api.sign_in("admin", &email, &password).await?;
                anyhow::ensure!(resp.status == 200, "{}: {}", resp.status, resp.json);
                Ok(())
            }
        }
    })
    .await;
    Ok(vec![invites, sign_ins])
}

/// Runs `n` requests made by `request`, `concurrency` at a time.
async fn drive<F, Fut>(name: &'static str, n: usize, concurrency: usize, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, request) = (Arc::clone(&next), Arc::clone(&request));
        workers.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                let result = request(i).await;
                seen.push((t.elapsed(), result.err().map(|e| format!("{e:#}"))));
            }
            seen
        });
    }
    let mut outcome = Outcome {
        name,
        wall: Duration::ZERO,
        latencies: Vec::with_capacity(n),
        errors: 0,
        first_error: None,
    };
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(seen) => {
                for (latency, error) in seen {
                    outcome.latencies.push(latency);
                    if let Some(e) = error {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert(e);
                    }
                }
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(e.to_string());
            }
        }
    }
    outcome.wall = started.elapsed();
    println!(
        "  {name}: {} in {:.1} s, {} errors",
        outcome.latencies.len(),
        outcome.wall.as_secs_f64(),
        outcome.errors
    );
    outcome
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
