//! AWS requests per operation: every route and trigger once, in the order a person meets
//! them, with the DynamoDB operations and SES sends each one made, beside the floor.
//!
//! The issue asks for an interceptor on the SDK clients. Every SDK request of the functions
//! goes over HTTP to a loopback endpoint (`AWS_ENDPOINT_URL_DYNAMODB`, `_SESV2`), so a
//! counting proxy there sees exactly what an interceptor would (retries included) and needs
//! no change to the functions: `latchkey_local::faults::FaultProxy`, with no faults.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, Resp, mailed_token, unique, unique_email};
use crate::ctx::{Counter, Counts, Ctx};

/// Rows in the "invite N" request.
const INVITE_N: u64 = 10;
/// Invitations left to expire for the sweep.
const EXPIRED_N: u64 = 3;
const PASSWORD: &str = "bench passphrase one two";

/// The least an operation can cost, from issue 7.
#[derive(Clone, Copy)]
struct Floor {
    reads: u64,
    writes: u64,
    ses: u64,
}

impl Floor {
    const fn new(reads: u64, writes: u64, ses: u64) -> Self {
        Self { reads, writes, ses }
    }
}

/// One request of the script: what it is, the status it must answer, and what to compare
/// its cost with.
struct Step {
    operation: String,
    route: &'static str,
    status: u16,
    floor: Option<Floor>,
    per: u64,
}

impl Step {
    fn new(operation: impl Into<String>, route: &'static str, status: u16) -> Self {
        Self {
            operation: operation.into(),
            route,
            status,
            floor: None,
            per: 1,
        }
    }

    fn floor(self, floor: Floor) -> Self {
        Self {
            floor: Some(floor),
            ..self
        }
    }

    /// The request had `n` invitees: the table adds per-invitee figures.
    fn per(self, n: u64) -> Self {
        Self { per: n, ..self }
    }
}

struct Row {
    operation: String,
    route: &'static str,
    status: u16,
    counts: Counts,
    floor: Option<Floor>,
    /// How many invitees the request had (per-invitee figures when > 1).
    per: u64,
}

struct Recorder<'a> {
    counter: &'a Counter,
    rows: Vec<Row>,
}

impl Recorder<'_> {
    /// Awaits the request of `step`, checks that it answered the status the step expects and
    /// records what it cost.
    async fn step(
        &mut self,
        step: Step,
        request: impl Future<Output = Result<Resp>>,
    ) -> Result<Resp> {
        let resp = request.await?.expect(step.status, &step.operation)?;
        self.record_with(
            step.operation,
            step.route,
            resp.status,
            step.floor,
            step.per,
        );
        Ok(resp)
    }

    fn record_with(
        &mut self,
        operation: impl Into<String>,
        route: &'static str,
        status: u16,
        floor: Option<Floor>,
        per: u64,
    ) {
        let row = Row {
            operation: operation.into(),
            route,
            status,
            counts: self.counter.take(),
            floor,
            per,
        };
        println!(
            "  {:<42} {:>3}  {:<60} SES {}",
            row.operation,
            row.status,
            row.counts.operations(),
            row.counts.ses_sends
        );
        self.rows.push(row);
    }

    /// Drops what was counted since the last record (set-up requests of the bench itself).
    fn skip(&self) {
        self.counter.take();
    }
}

pub async fn run(ctx: &Ctx) -> Result<String> {
    // One instance per function: every request of a step reaches the same warm process.
    let (stack, counter) = ctx.counted_stack(ctx.stack().instances(1)).await?;
    let mut rec = Recorder {
        counter: &counter,
        rows: Vec::new(),
    };
    rec.record_with("bootstrap (run once at deploy)", "invoke", 200, None, 1);
    let api = Client::new(stack.url());
    let moto = stack.moto_url().to_owned();
    let result = flows(&mut rec, &api, &moto, &stack).await;
    stack.shutdown().await?;
    result?;

    // The sweep needs invitations past their expiry: a stack whose invitations last 1 s.
    let (stack, counter) = ctx
        .counted_stack(ctx.stack().instances(1).env("INVITE_TTL_SECONDS", "1"))
        .await?;
    rec.counter = &counter;
    counter.take();
    let result = sweep(&mut rec, ctx, &stack).await;
    stack.shutdown().await?;
    result?;
    Ok(render(&rec.rows))
}

async fn flows(
    rec: &mut Recorder<'_>,
    api: &Client,
    moto: &str,
    stack: &latchkey_local::TestStack,
) -> Result<()> {
    let signed_in = rec
        .step(
            Step::new("sign-in", "POST /v1/sessions", 200).floor(Floor::new(1, 0, 0)),
            api.sign_in("admin", stack.admin_email(), stack.admin_password()),
        )
        .await?;
    let admin = signed_in.str("/token")?;
    let admin = admin.as_str();
    let auth = Some(admin);
    rec.step(
        Step::new("sign-in, wrong password", "POST /v1/sessions", 401),
        api.sign_in("admin", stack.admin_email(), "not the password at all"),
    )
    .await?;

    let subdomain = unique("acme");
    let resp = rec
        .step(
            Step::new("create tenant", "POST /v1/tenants", 201),
            api.post(
                "/v1/tenants",
                auth,
                &json!({"name": "Acme", "subdomain": subdomain}),
            ),
        )
        .await?;
    let tenant = resp.str("/id")?;
    rec.step(
        Step::new("list tenants", "GET /v1/tenants", 200),
        api.get("/v1/tenants", auth),
    )
    .await?;

    const INVITE: &str = "POST /v1/tenants/{tenant}/invitations";
    let invitations = format!("/v1/tenants/{tenant}/invitations");
    let ada = unique_email("ada");
    let resp = rec
        .step(
            Step::new("invite, 1 row", INVITE, 200).floor(Floor::new(0, 1, 1)),
            api.post(
                &invitations,
                auth,
                &json!({"invitations": [{"email": ada, "role": "admin"}], "send_email": true}),
            ),
        )
        .await?;
    let ada_id = invited_ids(&resp)?.remove(0);
    let rows: Vec<Value> = (0..INVITE_N)
        .map(|_| json!({"email": unique_email("member"), "role": "member"}))
        .collect();
    let emails: Vec<String> = rows
        .iter()
        .map(|r| r["email"].as_str().unwrap_or_default().to_owned())
        .collect();
    let resp = rec
        .step(
            Step::new(format!("invite, {INVITE_N} rows"), INVITE, 200)
                .floor(Floor::new(0, INVITE_N, INVITE_N))
                .per(INVITE_N),
            api.post(
                &invitations,
                auth,
                &json!({"invitations": rows, "send_email": true}),
            ),
        )
        .await?;
    let ids = invited_ids(&resp)?;
    let (grace_id, grace) = (ids[0].clone(), emails[0].clone());
    let gone_id = ids[1].clone();

    rec.step(
        Step::new(
            format!("list users ({} users)", INVITE_N + 1),
            "GET /v1/tenants/{tenant}/users",
            200,
        ),
        api.get(&format!("/v1/tenants/{tenant}/users"), auth),
    )
    .await?;
    let user = |id: &str| format!("/v1/users/{id}");
    rec.step(
        Step::new("get user", "GET /v1/users/{id}", 200),
        api.get(&user(&ada_id), auth),
    )
    .await?;
    rec.step(
        Step::new(
            "resend invitation",
            "POST /v1/users/{id}/resend-invitation",
            200,
        ),
        api.post(
            &format!("{}/resend-invitation", user(&ada_id)),
            auth,
            &json!({}),
        ),
    )
    .await?;
    // The members other than grace and the one deleted below, mailed again at once.
    let chased: Vec<&String> = ids[2..].iter().collect();
    let many = chased.len() as u64;
    rec.step(
        Step::new(
            format!("resend invitations, {many} users"),
            "POST /v1/tenants/{tenant}/invitations/resend",
            200,
        )
        .per(many),
        api.post(
            &format!("/v1/tenants/{tenant}/invitations/resend"),
            auth,
            &json!({ "user_ids": chased }),
        ),
    )
    .await?;
    // The same people, invited by mistake after all.
    rec.step(
        Step::new(
            format!("cancel invitations, {many} users"),
            "POST /v1/tenants/{tenant}/invitations/cancel",
            200,
        )
        .per(many),
        api.post(
            &format!("/v1/tenants/{tenant}/invitations/cancel"),
            auth,
            &json!({ "user_ids": chased }),
        ),
    )
    .await?;
    const ACCESS_LINK: &str = "POST /v1/users/{id}/access-link";
    let resp = rec
        .step(
            Step::new("access link, invited user", ACCESS_LINK, 200),
            api.post(
                &format!("{}/access-link", user(&grace_id)),
                auth,
                &json!({}),
            ),
        )
        .await?;
    let grace_token = token_of(&resp.str("/url")?)?;

    const ACCEPT: &str = "POST /v1/invitations/accept";
    let ada_token = mailed_token(moto, &ada, "accept-invite").await?;
    rec.skip();
    rec.step(
        Step::new("accept (mailed link)", ACCEPT, 200).floor(Floor::new(1, 1, 0)),
        api.post(
            "/v1/invitations/accept",
            None,
            &json!({"token": ada_token, "password": PASSWORD}),
        ),
    )
    .await?;
    // Accepted through a handed-over link, the address is not verified yet.
    rec.step(
        Step::new("accept (handed-over link)", ACCEPT, 200).floor(Floor::new(1, 1, 0)),
        api.post(
            "/v1/invitations/accept",
            None,
            &json!({"token": grace_token, "password": PASSWORD}),
        ),
    )
    .await?;

    rec.step(
        Step::new("role change", "PATCH /v1/users/{id}", 200),
        api.json(
            Method::PATCH,
            &user(&ada_id),
            auth,
            &json!({"role": "member"}),
        ),
    )
    .await?;
    rec.step(
        Step::new(
            "admin reset (mails a link)",
            "POST /v1/users/{id}/password-reset",
            202,
        ),
        api.post(
            &format!("{}/password-reset", user(&ada_id)),
            auth,
            &json!({}),
        ),
    )
    .await?;
    let token = mailed_token(moto, &ada, "reset-password").await?;
    rec.skip();
    rec.step(
        Step::new("reset (spend the link)", "POST /v1/password/reset", 200),
        api.post(
            "/v1/password/reset",
            None,
            &json!({"token": token, "password": "another bench passphrase"}),
        ),
    )
    .await?;
    const FORGOT: &str = "POST /v1/password/forgot";
    rec.step(
        Step::new("forgot password, known address", FORGOT, 202),
        api.post(
            "/v1/password/forgot",
            None,
            &json!({"tenant": tenant, "email": ada}),
        ),
    )
    .await?;
    rec.step(
        Step::new("forgot password, unknown address", FORGOT, 202),
        api.post(
            "/v1/password/forgot",
            None,
            &json!({"tenant": tenant, "email": unique_email("nobody")}),
        ),
    )
    .await?;

    rec.step(
        Step::new(
            "resend verification",
            "POST /v1/users/{id}/resend-verification",
            202,
        ),
        api.post(
            &format!("{}/resend-verification", user(&grace_id)),
            auth,
            &json!({}),
        ),
    )
    .await?;
    const VERIFY: &str = "POST /v1/email/verify";
    let token = mailed_token(moto, &grace, "verify-email").await?;
    rec.skip();
    rec.step(
        Step::new("verify address", VERIFY, 200),
        api.post("/v1/email/verify", None, &json!({"token": token})),
    )
    .await?;
    let ada_new = unique_email("ada-new");
    rec.step(
        Step::new("email change", "POST /v1/users/{id}/email-change", 202),
        api.post(
            &format!("{}/email-change", user(&ada_id)),
            auth,
            &json!({"new_email": ada_new}),
        ),
    )
    .await?;
    let token = mailed_token(moto, &ada_new, "verify-email").await?;
    rec.skip();
    rec.step(
        Step::new("confirm email change", VERIFY, 200),
        api.post("/v1/email/verify", None, &json!({"token": token})),
    )
    .await?;
    rec.step(
        Step::new("access link, active user (reset)", ACCESS_LINK, 200),
        api.post(&format!("{}/access-link", user(&ada_id)), auth, &json!({})),
    )
    .await?;

    const DELETE: &str = "DELETE /v1/users/{id}";
    rec.step(
        Step::new("delete, invited user", DELETE, 204),
        api.send(Method::DELETE, &user(&gone_id), auth, None),
    )
    .await?;
    rec.step(
        Step::new("delete, active user", DELETE, 204),
        api.send(Method::DELETE, &user(&grace_id), auth, None),
    )
    .await?;
    rec.step(
        Step::new("audit trail", "GET /v1/tenants/{tenant}/audit", 200),
        api.get(&format!("/v1/tenants/{tenant}/audit"), auth),
    )
    .await?;

    rec.step(
        Step::new("CSV template", "GET /v1/imports/template.csv", 200),
        api.get("/v1/imports/template.csv", None),
    )
    .await?;
    let csv = format!("email,role\n{},member\n", unique_email("csv"));
    rec.step(
        Step::new(
            "CSV preview, 1 row",
            "POST /v1/tenants/{tenant}/imports/preview",
            200,
        ),
        api.send(
            Method::POST,
            &format!("/v1/tenants/{tenant}/imports/preview"),
            auth,
            Some(("text/csv", csv.into_bytes())),
        ),
    )
    .await?;
    rec.step(
        Step::new("page behind a link", "GET /accept-invite", 200),
        api.get("/accept-invite", None),
    )
    .await?;
    Ok(())
}

async fn sweep(rec: &mut Recorder<'_>, ctx: &Ctx, stack: &latchkey_local::TestStack) -> Result<()> {
    let api = Client::new(stack.url());
    let admin = api.admin_token(stack).await?;
    let tenant = api.create_tenant(&admin, "Sweep").await?;
    let rows: Vec<Value> = (0..EXPIRED_N)
        .map(|_| json!({"email": unique_email("late"), "role": "member"}))
        .collect();
    api.post(
        &format!("/v1/tenants/{tenant}/invitations"),
        Some(&admin),
        &json!({"invitations": rows, "send_email": true}),
    )
    .await?
    .expect(200, "invite")?;
    // Expiry is kept in whole seconds: wait until "now" is surely past it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    rec.skip();
    let event_path = ctx.paths.root.join("events").join("expiry-sweep.json");
    let event: Value = serde_json::from_slice(
        &std::fs::read(&event_path).with_context(|| event_path.display().to_string())?,
    )?;
    let report = stack.invoke("expiry-sweep", event.clone()).await?;
    println!("  sweep: {report}");
    rec.record_with(
        format!("expiry sweep, {EXPIRED_N} expired"),
        "EventBridge schedule",
        200,
        None,
        1,
    );
    stack.invoke("expiry-sweep", event).await?;
    rec.record_with(
        "expiry sweep, nothing expired",
        "EventBridge schedule",
        200,
        None,
        1,
    );
    Ok(())
}

fn invited_ids(resp: &Resp) -> Result<Vec<String>> {
    resp.json["results"]
        .as_array()
        .context("no results")?
        .iter()
        .map(|r| {
            anyhow::ensure!(r["status"] == "invited", "row not invited: {r}");
            anyhow::ensure!(r["email_sent"] == true, "invitation not mailed: {r}");
            r["user_id"]
                .as_str()
                .map(str::to_owned)
                .context("no user_id")
        })
        .collect()
}

fn token_of(url: &str) -> Result<String> {
    url.split_once("#token=")
        .map(|(_, t)| t.to_owned())
        .with_context(|| format!("no token in {url}"))
}

fn over(actual: u64, floor: u64, unit: &str) -> Option<String> {
    (actual != floor).then(|| {
        let diff = actual as i64 - floor as i64;
        format!("{diff:+} {unit}")
    })
}

fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "Each operation ran once against the function binaries named above, one instance \
         per function, on a fresh table. The counts do not depend on how they were built. The counts are the HTTP requests the functions' SDK clients made, \
         seen by a counting proxy on loopback in front of DynamoDB Local and of SES v2 on \
         moto (`latchkey_local::faults::FaultProxy` with no faults). The issue asks for an \
         interceptor on the SDK clients; every SDK request goes through the endpoint that \
         `AWS_ENDPOINT_URL_*` names, so the proxy sees exactly what an interceptor would, \
         retries included, and the functions need no change. Bench-side requests (reading \
         mail for a link) do not go through it.\n\n",
    );
    out.push_str(
        "| operation | route or trigger | status | DynamoDB requests | reads | writes | SES sends | floor (issue 7) | above the floor |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let c = &row.counts;
        let ses = if c.ses_other > 0 {
            format!("{} (+{} other SES calls)", c.ses_sends, c.ses_other)
        } else {
            c.ses_sends.to_string()
        };
        let (floor, above) = match row.floor {
            None => ("—".to_owned(), "—".to_owned()),
            Some(f) => {
                let floor = format!("{} read, {} write, {} SES", f.reads, f.writes, f.ses);
                let diffs: Vec<String> = [
                    over(c.reads(), f.reads, "reads"),
                    over(c.writes(), f.writes, "writes"),
                    over(c.ses_sends, f.ses, "SES"),
                ]
                .into_iter()
                .flatten()
                .collect();
                let above = if diffs.is_empty() {
                    "at the floor".to_owned()
                } else {
                    diffs.join(", ")
                };
                (floor, above)
            }
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            row.operation,
            row.route,
            row.status,
            c.operations(),
            c.reads(),
            c.writes(),
            ses,
            floor,
            above
        );
        if row.per > 1 {
            let per = |n: u64| format!("{:.2}", n as f64 / row.per as f64);
            let floor = row.floor.as_ref().map_or("—".to_owned(), |f| {
                format!(
                    "{} read, {} write, {} SES",
                    f.reads / row.per,
                    f.writes / row.per,
                    f.ses / row.per
                )
            });
            let _ = writeln!(
                out,
                "| … per user | | | | {} | {} | {} | {floor} | |",
                per(c.reads()),
                per(c.writes()),
                per(c.ses_sends)
            );
        }
    }
    out.push('\n');
    out
}
