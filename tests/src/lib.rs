//! Helpers for the end-to-end tests: an HTTP client for the local gateway, and the steps a
//! person takes (sign in, create a tenant, invite, open the mail, follow the link).
//!
//! Every test starts its own [`TestStack`]: a fresh table and its own gateway over the real
//! function binaries, on the emulators that `latchkey-local test-env` started.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
pub use latchkey_local::testing::TestStack;
use rand::Rng;
use serde_json::{Value, json};

pub const PASSWORD: &str = "a long enough passphrase";

/// A stack whose functions get one setting beside the defaults (a short TTL, a small limit).
pub async fn stack_with(name: &str, value: impl Into<String>) -> TestStack {
    TestStack::builder()
        .env(name, value.into())
        .start()
        .await
        .unwrap()
}

/// A stack whose tenants may each send `mails` invitation mails an hour (`INVITE_MAIL_PER_HOUR`).
pub async fn stack_with_mail_budget(mails: u32) -> TestStack {
    stack_with("INVITE_MAIL_PER_HOUR", mails.to_string()).await
}

/// The EMF lines among a stack's function output that count one `name` each.
pub fn metric_lines(output: &[String], name: &str) -> Vec<Value> {
    output
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line.split_once("] ")?.1).ok())
        .filter(|line| line[name] == 1)
        .collect()
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    /// The `user_id` of each row of an invite's `results`; panics on a row without one.
    pub fn user_ids(&self) -> Vec<String> {
        self.json["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results: {}", self.text))
            .iter()
            .map(|r| r["user_id"].as_str().expect("invited").to_owned())
            .collect()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem response with this status and code, and returns it for more checks.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "body: {}",
            self.text
        );
        assert_eq!(self.content_type(), "application/problem+json");
        assert!(
            self.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "a problem says what to do: {}",
            self.text
        );
        self
    }
}

/// Of answers to requests raced against each other, the index of the only one with status
/// `won`; every other must be the problem `lost`, a (status, code) pair.
#[track_caller]
pub fn the_only_winner(answers: &[Resp], won: u16, lost: (u16, &str)) -> usize {
    let winners: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].status == won)
        .collect();
    let texts: Vec<&str> = answers.iter().map(|a| a.text.as_str()).collect();
    assert_eq!(winners.len(), 1, "exactly one should win: {texts:?}");
    for (i, answer) in answers.iter().enumerate() {
        if i != winners[0] {
            answer.assert_problem(lost.0, lost.1);
        }
    }
    winners[0]
}

#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    /// Sent with every request, beside the ones each request sets.
    headers: reqwest::header::HeaderMap,
}

impl Api {
    pub fn new(stack: &TestStack) -> Self {
        Self::at(stack.url())
    }

    pub fn at(base: &str) -> Self {
        Self::with(base, reqwest::Client::builder())
    }

    /// A client on another network: its requests leave from `source` (any 127.x.y.z reaches
    /// the stack on Linux), which the gateway hands the functions as `sourceIp`.
    pub fn from_address(stack: &TestStack, source: [u8; 4]) -> Self {
        let source = std::net::IpAddr::from(source);
        Self::with(
            stack.url(),
            reqwest::Client::builder().local_address(source),
        )
    }

    fn with(base: &str, builder: reqwest::ClientBuilder) -> Self {
        let http = builder
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            headers: reqwest::header::HeaderMap::new(),
        }
    }

    /// The same client, sending `X-Forwarded-For: {chain}` with every request: a proxy in
    /// front of the API, or a client that forges the header.
    pub fn forwarding_for(&self, chain: &str) -> Self {
        let mut forwarding = self.clone();
        let value = reqwest::header::HeaderValue::from_str(chain).expect("a header value");
        forwarding.headers.insert("x-forwarded-for", value);
        forwarding
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Resp> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .headers(self.headers.clone());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .context("request to the local gateway")?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            text,
            json,
        })
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(
            reqwest::Method::POST,
            path,
            token,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
        .await
        .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(reqwest::Method::GET, path, token, None, vec![])
            .await
            .unwrap()
    }

    pub async fn sign_in(&self, tenant: &str, email: &str, password: &str) -> Resp {
        self.post(
            "/v1/sessions",
            None,
            &json!({"tenant": tenant, "email": email, "password": password}),
        )
        .await
    }

    /// Signs in and returns the session token, failing the test otherwise.
    pub async fn token(&self, tenant: &str, email: &str, password: &str) -> String {
        let resp = self.sign_in(tenant, email, password).await;
        assert_eq!(
            resp.status, 200,
            "sign-in of {email} into {tenant}: {}",
            resp.text
        );
        resp.json["token"].as_str().expect("token").to_owned()
    }

    pub async fn admin_token(&self, stack: &TestStack) -> String {
        self.token("admin", stack.admin_email(), stack.admin_password())
            .await
    }

    /// The bootstrap admin's token and a new customer tenant: where most tests begin.
    pub async fn admin_and_tenant(&self, stack: &TestStack) -> (String, String) {
        let admin = self.admin_token(stack).await;
        let tenant = self.create_tenant(&admin).await;
        (admin, tenant)
    }

    /// Creates a customer tenant with a unique subdomain and returns its id.
    pub async fn create_tenant(&self, token: &str) -> String {
        let subdomain = unique("t");
        let resp = self
            .post(
                "/v1/tenants",
                Some(token),
                &json!({"name": format!("Tenant {subdomain}"), "subdomain": subdomain}),
            )
            .await;
        assert_eq!(resp.status, 201, "create tenant: {}", resp.text);
        resp.json["id"].as_str().unwrap().to_owned()
    }

    pub async fn invite(&self, token: &str, tenant: &str, rows: Value) -> Resp {
        self.post(
            &format!("/v1/tenants/{tenant}/invitations"),
            Some(token),
            &json!({"invitations": rows, "send_email": true}),
        )
        .await
    }

    pub async fn accept(&self, invite_token: &str, password: &str) -> Resp {
        self.post(
            "/v1/invitations/accept",
            None,
            &json!({"token": invite_token, "password": password}),
        )
        .await
    }
}

/// One malformed request and the problem it must get: (what, content type, body, expected
/// status, expected code).
pub type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

impl Api {
    /// POSTs each malformed request of `cases` to `path` and checks that it gets exactly its
    /// problem, as problem JSON.
    pub async fn assert_refused(&self, path: &str, token: &str, cases: Vec<Case>) {
        for (what, content_type, body, status, code) in cases {
            let resp = self
                .send(reqwest::Method::POST, path, Some(token), content_type, body)
                .await
                .unwrap();
            assert_eq!(
                (resp.status, resp.code()),
                (status, code),
                "{what}: {}",
                resp.text
            );
            assert_eq!(resp.content_type(), "application/problem+json", "{what}");
        }
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let n: u64 = rand::thread_rng().r#gen();
    format!("{prefix}-{:012x}", n & 0xffff_ffff_ffff)
}

pub fn unique_email(prefix: &str) -> String {
    format!("{}@example.com", unique(prefix))
}

/// Finds the link to `page` in a mail body and returns (link, token).
pub fn link_in(body: &str, page: &str) -> Option<(String, String)> {
    let marker = format!("/{page}#token=");
    let at = body.find(&marker)?;
    let start = body[..at].rfind("http")?;
    let end = body[at..]
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .map(|i| at + i)
        .unwrap_or(body.len());
    let link = body[start..end].to_owned();
    let token = link.split_once("#token=")?.1.to_owned();
    Some((link, token))
}

/// Waits for the newest mail to `to` that holds a link to `page` (SES through moto is
/// synchronous, but allow a moment) and returns (link, token).
pub async fn mailed_link(stack: &TestStack, to: &str, page: &str) -> Result<(String, String)> {
    for _ in 0..50 {
        let mails = stack.mail_to(to).await?;
        if let Some(found) = mails.iter().rev().find_map(|m| link_in(&m.text, page)) {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("no mail with a /{page} link reached {to}"))
}

/// Invites one person into `tenant` and accepts the invitation; returns (email, user id).
pub async fn invite_and_accept(
    stack: &TestStack,
    api: &Api,
    token: &str,
    tenant: &str,
    role: &str,
) -> (String, String) {
    let email = unique_email(role);
    let resp = api
        .invite(token, tenant, json!([{"email": email, "role": role}]))
        .await;
    assert_eq!(
        resp.json["results"][0]["status"], "invited",
        "{}",
        resp.text
    );
    let user_id = resp.json["results"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, invite_token) = mailed_link(stack, &email, "accept-invite").await.unwrap();
    let accepted = api.accept(&invite_token, PASSWORD).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    (email, user_id)
}

/// Every item in the table, as JSON-ish strings, for "nothing half-written" checks.
pub async fn scan_table(
    stack: &TestStack,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let client = stack.dynamodb_client();
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(stack.table_name())
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    items
}

/// Items whose key starts with `prefix` (e.g. `USER#`, `EMAIL#`).
pub async fn items_with_prefix(stack: &TestStack, prefix: &str) -> usize {
    scan_table(stack)
        .await
        .iter()
        .filter(|i| {
            i.get("PK")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with(prefix))
        })
        .count()
}

/// Whether an invitation token is still live, without spending it: a live token gets past
/// the token checks and is stopped by the password policy.
pub async fn invite_token_is_live(api: &Api, token: &str) -> bool {
    let resp = api.accept(token, "short").await;
    match resp.code() {
        "weak_password" => true,
        "token_invalid" | "token_used" | "token_expired" => false,
        other => panic!("unexpected answer {other}: {}", resp.text),
    }
}

/// Moves a pending invitation's expiry (and its place in the expiry index) a minute back.
pub async fn backdate_invitation(stack: &TestStack, id: &str) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let at = (chrono::Utc::now() - chrono::Duration::seconds(60))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    stack
        .dynamodb_client()
        .update_item()
        .table_name(stack.table_name())
        .key("PK", S(format!("USER#{id}")))
        .key("SK", S("PROFILE".into()))
        .update_expression("SET invite_expires_at = :at, GSI2SK = :sk")
        .condition_expression("attribute_exists(GSI2SK)")
        .expression_attribute_values(":at", S(at.clone()))
        .expression_attribute_values(":sk", S(format!("{at}#{id}")))
        .send()
        .await
        .unwrap();
}

/// Every invitation token mailed to `to`, oldest first.
pub async fn mailed_tokens(stack: &TestStack, to: &str, page: &str) -> Vec<String> {
    stack
        .mail_to(to)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| link_in(&m.text, page))
        .map(|(_, t)| t)
        .collect()
}

/// The invitation token first mailed to `to`.
pub async fn first_invitation_token(stack: &TestStack, to: &str) -> String {
    mailed_tokens(stack, to, "accept-invite")
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no invitation was mailed to {to}"))
}

/// A tenant with `n` people invited by mail; returns (admin token, tenant, [(email, id)]).
pub async fn tenant_with_invitees(
    stack: &TestStack,
    api: &Api,
    n: usize,
) -> (String, String, Vec<(String, String)>) {
    let (admin, tenant) = api.admin_and_tenant(stack).await;
    let rows: Vec<Value> = (0..n)
        .map(|_| json!({"email": unique_email("chase")}))
        .collect();
    let resp = api.invite(&admin, &tenant, Value::from(rows)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let emails = resp.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_owned());
    let people = emails.zip(resp.user_ids()).collect();
    (admin, tenant, people)
}

/// A tenant with one invited user; returns (admin token, tenant, email, user id).
pub async fn tenant_with_invitee(stack: &TestStack, api: &Api) -> (String, String, String, String) {
    let (admin, tenant) = api.admin_and_tenant(stack).await;
    let email = unique_email("inv");
    let resp = api
        .invite(&admin, &tenant, serde_json::json!([{"email": email}]))
        .await;
    let id = resp.json["results"][0]["user_id"]
        .as_str()
        .expect("invited")
        .to_owned();
    (admin, tenant, email, id)
}

impl Api {
    /// A bulk request on a tenant's invitations: `action` is `resend` or `cancel`.
    pub async fn bulk(&self, token: &str, tenant: &str, action: &str, user_ids: &[&str]) -> Resp {
        self.post(
            &format!("/v1/tenants/{tenant}/invitations/{action}"),
            Some(token),
            &json!({"user_ids": user_ids}),
        )
        .await
    }

    pub async fn resend_many(&self, token: &str, tenant: &str, user_ids: &[&str]) -> Resp {
        self.bulk(token, tenant, "resend", user_ids).await
    }

    pub async fn cancel_many(&self, token: &str, tenant: &str, user_ids: &[&str]) -> Resp {
        self.bulk(token, tenant, "cancel", user_ids).await
    }

    pub async fn resend(&self, token: &str, user_id: &str) -> Resp {
        self.post(
            &format!("/v1/users/{user_id}/resend-invitation"),
            Some(token),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn access_link(&self, token: &str, user_id: &str) -> Resp {
        self.post(
            &format!("/v1/users/{user_id}/access-link"),
            Some(token),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn patch_role(&self, token: &str, user_id: &str, role: &str) -> Resp {
        let body = serde_json::to_vec(&serde_json::json!({"role": role})).unwrap();
        self.send(
            reqwest::Method::PATCH,
            &format!("/v1/users/{user_id}"),
            Some(token),
            Some("application/json"),
            body,
        )
        .await
        .unwrap()
    }

    pub async fn delete_user(&self, token: &str, user_id: &str) -> Resp {
        self.send(
            reqwest::Method::DELETE,
            &format!("/v1/users/{user_id}"),
            Some(token),
            None,
            vec![],
        )
        .await
        .unwrap()
    }

    /// The id of the user with `email` in `tenant`, as its managers find it by address.
    pub async fn id_of(&self, token: &str, tenant: &str, email: &str) -> String {
        let found = self
            .get(
                &format!("/v1/tenants/{tenant}/users?email_prefix={email}"),
                Some(token),
            )
            .await;
        found.json["users"]
            .as_array()
            .and_then(|users| users.iter().find(|u| u["email"] == email))
            .and_then(|u| u["id"].as_str())
            .unwrap_or_else(|| panic!("no {email} in {tenant}: {}", found.text))
            .to_owned()
    }

    pub async fn user(&self, token: &str, user_id: &str) -> Resp {
        self.get(&format!("/v1/users/{user_id}"), Some(token)).await
    }
}

/// An active user in a fresh tenant; returns (admin token, tenant, email, user id).
pub async fn tenant_with_active_user(
    stack: &TestStack,
    api: &Api,
) -> (String, String, String, String) {
    let (admin, tenant) = api.admin_and_tenant(stack).await;
    let (email, id) = invite_and_accept(stack, api, &admin, &tenant, "member").await;
    (admin, tenant, email, id)
}

impl Api {
    pub async fn admin_reset(&self, token: &str, user_id: &str) -> Resp {
        self.post(
            &format!("/v1/users/{user_id}/password-reset"),
            Some(token),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn forgot(&self, tenant: &str, email: &str) -> Resp {
        self.post(
            "/v1/password/forgot",
            None,
            &serde_json::json!({"tenant": tenant, "email": email}),
        )
        .await
    }

    pub async fn reset_password(&self, token: &str, password: &str) -> Resp {
        self.post(
            "/v1/password/reset",
            None,
            &serde_json::json!({"token": token, "password": password}),
        )
        .await
    }

    pub async fn email_change(&self, token: &str, user_id: &str, new_email: &str) -> Resp {
        self.post(
            &format!("/v1/users/{user_id}/email-change"),
            Some(token),
            &serde_json::json!({"new_email": new_email}),
        )
        .await
    }

    pub async fn verify_email(&self, token: &str) -> Resp {
        self.post(
            "/v1/email/verify",
            None,
            &serde_json::json!({"token": token}),
        )
        .await
    }
}

/// The lifecycle events published about `tenant` (archived on moto), oldest first; waits up
/// to 5 s for at least `expected` of them. moto builds `data.json` from every backend while
/// other tests write to them, and now and then answers 500: such a read counts as "not yet".
pub async fn events_of(stack: &TestStack, tenant: &str, expected: usize) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut found = Vec::new();
    let mut last_error = None;
    for _ in 0..50 {
        match latchkey_local::lifecycle::published(&http, stack.moto_url()).await {
            Ok(events) => {
                last_error = None;
                found = events
                    .into_iter()
                    .filter(|e| e["detail"]["tenant"] == tenant)
                    .collect();
                if found.len() >= expected {
                    break;
                }
            }
            Err(err) => last_error = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(err) = last_error {
        panic!("moto's archive could not be read: {err:#}");
    }
    found
}

/// Sends the event in `data_file` to `function` with `cargo lambda invoke`, through the
/// stack's Lambda invoke API, as a user would run it, and returns the JSON it printed.
/// Panics with cargo-lambda's stderr when it fails or prints something else.
pub async fn cargo_lambda_invoke(
    stack: &TestStack,
    function: &str,
    data_file: &std::path::Path,
) -> Value {
    let port = stack
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (function, data_file) = (function.to_owned(), data_file.to_owned());
    let what = format!("{function} < {}", data_file.display());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("cargo")
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port, "--data-file"])
            .arg(&data_file)
            .arg(&function)
            .output()
    })
    .await
    .expect("the invoke task ends")
    .expect("cargo lambda is installed by scripts/install.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{what}: not JSON: {stdout}"))
}
