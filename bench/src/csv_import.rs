//! The CSV import at scale: files of N rows (100,000 and 1,000,000 by default) uploaded to the
//! presigned URL, imported by the `csv-import` binary through the local S3 relay; rows per
//! second from upload to `completed`, and the peak resident memory of the function's process
//! (its `VmHWM`), which must stay flat as N grows tenfold. Beside it, the same writes (each
//! row's three items in one transaction) done by a bare SDK loop at the same concurrency, on
//! the same DynamoDB Local, in the same run: the import's overhead over the floor of its writes.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use futures::StreamExt;
use latchkey::ops::csv_import::CONCURRENCY;
use serde_json::json;

use crate::client::{Client, unique};
use crate::ctx::Ctx;
use crate::report::Sink;

struct Figures {
    rows: usize,
    bytes: usize,
    import: Duration,
    peak_kib: u64,
    sdk: Sdk,
}

/// The bare SDK loop's part in one file's figures.
enum Sdk {
    /// The file was larger than `BENCH_CSV_SDK_ROWS`.
    Skipped,
    /// Still to run when the section was written.
    Pending,
    Done(Duration),
}

pub async fn run(ctx: &Ctx, sink: &Sink<'_>) -> Result<String> {
    let sizes: Vec<usize> = std::env::var("BENCH_CSV_ROWS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("BENCH_CSV_ROWS is a list of row counts")
        })
        .collect::<Result<_>>()?;
    // The bare loop is bound by DynamoDB Local as much as the import is, so it doubles a
    // run's length; on a slow machine a run may compare the two on the smaller files only.
    let sdk_max: usize = match std::env::var("BENCH_CSV_SDK_ROWS") {
        Ok(v) => v
            .trim()
            .parse()
            .context("BENCH_CSV_SDK_ROWS is a row count")?,
        Err(_) => usize::MAX,
    };
    let mut figures: Vec<Figures> = Vec::new();
    for (i, &rows) in sizes.iter().enumerate() {
        // Each file gets a fresh table; its loop runs on that table after its import.
        let stack = ctx
            .stack()
            .instances(1)
            .env("IMPORT_MAX_BYTES", "1000000000")
            .start()
            .await?;
        let measured = async {
            let mut f = import(ctx, &stack, rows).await?;
            f.sdk = if rows <= sdk_max {
                Sdk::Pending
            } else {
                Sdk::Skipped
            };
            figures.push(f);
            // Written at once, here and after the loop: a run cut short (a 1,000,000-row
            // file takes hours on DynamoDB Local) keeps what it finished.
            sink.write(&render(&figures, &sizes[i + 1..]))?;
            if rows <= sdk_max {
                let sdk = bare_sdk_loop(&stack.dynamodb_client(), stack.table_name(), rows).await?;
                if let Some(f) = figures.last_mut() {
                    f.sdk = Sdk::Done(sdk);
                }
                sink.write(&render(&figures, &sizes[i + 1..]))?;
            }
            anyhow::Ok(())
        }
        .await;
        stack.shutdown().await?;
        measured?;
        if let Some(f) = figures.last() {
            println!(
                "  {rows} rows: import {:.1} s, peak {:.1} MiB, bare SDK loop {}",
                f.import.as_secs_f64(),
                f.peak_kib as f64 / 1024.0,
                match f.sdk {
                    Sdk::Done(d) => format!("{:.1} s", d.as_secs_f64()),
                    _ => "not run".to_owned(),
                }
            );
        }
    }
    Ok(render(&figures, &[]))
}

/// The section's figures so far; `pending`: files not yet imported.
fn render(figures: &[Figures], pending: &[usize]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Each file is `email,role` with N distinct addresses, uploaded with `send_email: false` \
         (mail is bounded by SES's sending quota, not by the import). One `csv-import` instance \
         (so its peak memory is one process's), {CONCURRENCY} rows written at a time; the SDK \
         loop writes the same three items per row (user, email claim, row marker) as one \
         transaction each, {CONCURRENCY} at a time, with no parsing, checks or checkpoints.\n"
    );
    out.push_str("| rows | file | import | import rows/s | peak memory (csv-import) | bare SDK loop | SDK rows/s | import ÷ SDK |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for f in figures {
        let import_rate = f.rows as f64 / f.import.as_secs_f64();
        let sdk = match f.sdk {
            Sdk::Done(sdk) => {
                let sdk_rate = f.rows as f64 / sdk.as_secs_f64();
                format!(
                    "{:.1} s | {sdk_rate:.0} | {:.2}",
                    sdk.as_secs_f64(),
                    import_rate / sdk_rate
                )
            }
            Sdk::Pending => "running when this was written | — | —".to_owned(),
            Sdk::Skipped => "not run (`BENCH_CSV_SDK_ROWS`) | — | —".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.1} MiB | {:.1} s | {:.0} | {:.1} MiB | {sdk} |",
            f.rows,
            f.bytes as f64 / 1048576.0,
            f.import.as_secs_f64(),
            import_rate,
            f.peak_kib as f64 / 1024.0,
        );
    }
    let unfinished = figures.iter().any(|f| matches!(f.sdk, Sdk::Pending));
    if unfinished || !pending.is_empty() {
        let rest: Vec<String> = pending.iter().map(|n| format!("{n} rows")).collect();
        let _ = writeln!(
            out,
            "\n_Written while the run went on{}{}; the run rewrites this section when it ends, \
             so a section that still says this is from a run that was stopped._",
            if unfinished {
                ", before the last bare loop finished"
            } else {
                ""
            },
            if rest.is_empty() {
                String::new()
            } else {
                format!(", with files still to import: {}", rest.join(", "))
            }
        );
    }
    out
}

async fn import(ctx: &Ctx, stack: &latchkey_local::TestStack, rows: usize) -> Result<Figures> {
    let api = Client::new(stack.url());
    let mut admin = api.admin_token(stack).await?;
    let tenant = api.create_tenant(&admin, "Bulk").await?;
    let run = unique("r");
    let mut file = String::with_capacity(rows * 40 + 16);
    file.push_str("email,role\n");
    for i in 0..rows {
        let _ = writeln!(file, "p{i}-{run}@bulk.example.test,member");
    }
    let bytes = file.len();
    let created = api
        .post(
            &format!("/v1/tenants/{tenant}/imports"),
            Some(&admin),
            &json!({"send_email": false}),
        )
        .await?
        .expect(201, "start import")?;
    let id = created.str("/import_id")?;
    let url = created.str("/upload_url")?;

    let started = Instant::now();
    let put = reqwest::Client::new().put(&url).body(file).send().await?;
    if !put.status().is_success() {
        bail!("upload answered {}", put.status());
    }
    let pid = loop {
        if let Some(pid) = function_pid(&ctx.bin_dir.join("csv-import"), stack.table_name()) {
            break pid;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no csv-import process found");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut resp = api.get(&format!("/v1/imports/{id}"), Some(&admin)).await?;
        if resp.status == 401 {
            // A large import outlasts the admin's session (SESSION_TTL_SECONDS, an hour by
            // default): sign in again, as the admin watching it would.
            admin = api.admin_token(stack).await?;
            resp = api.get(&format!("/v1/imports/{id}"), Some(&admin)).await?;
        }
        let status = resp
            .str("/status")
            .with_context(|| format!("polling the import of {rows} rows"))?;
        if status == "completed" || status == "failed" {
            break resp;
        }
        if started.elapsed() > Duration::from_secs(4 * 3600) {
            bail!("the import of {rows} rows did not finish in 4 hours");
        }
    };
    let import = started.elapsed();
    if status.str("/status")? != "completed" || status.json["invited"] != json!(rows) {
        bail!("the import did not invite every row: {}", status.json);
    }
    let peak_kib = peak_kib(pid).context("reading the csv-import process's peak memory")?;
    Ok(Figures {
        rows,
        bytes,
        import,
        peak_kib,
        sdk: Sdk::Skipped,
    })
}

/// The process running `exe` for the stack whose table is `table`.
fn function_pid(exe: &Path, table: &str) -> Option<u32> {
    let exe = exe.canonicalize().ok()?;
    let wanted = format!("TABLE_NAME={table}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path();
            if std::fs::read_link(path.join("exe")).ok()? != exe {
                return None;
            }
            let environ = std::fs::read(path.join("environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
                .then_some(pid)
        })
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `rows` transactions of three Puts each, `CONCURRENCY` in flight.
async fn bare_sdk_loop(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    rows: usize,
) -> Result<Duration> {
    let run = unique("sdk");
    let put = |pk: String, sk: &str| -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(table)
            .item("PK", AttributeValue::S(pk))
            .item("SK", AttributeValue::S(sk.to_owned()))
            .item("data", AttributeValue::S("x".repeat(120)))
            .condition_expression("attribute_not_exists(PK)")
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    };
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..rows)
        .map(|i| {
            let items = [
                put(format!("SDKROW#{run}"), &format!("ROW#{i:012}")),
                put(format!("SDKEMAIL#{run}-{i}"), "EMAIL"),
                put(format!("SDKUSER#{run}-{i}"), "PROFILE"),
            ];
            async move {
                let items = items.into_iter().collect::<Result<Vec<_>>>()?;
                client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        bail!("{failed} of the bare SDK loop's transactions failed");
    }
    Ok(elapsed)
}
