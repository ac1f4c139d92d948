//! A small HTTP client for a stack's API, and the mail links the flows follow.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use latchkey_local::mailbox;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// A response: status and JSON body (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
}

impl Resp {
    /// `self` if the status is `status`, else an error with the body.
    pub fn expect(self, status: u16, what: &str) -> Result<Self> {
        if self.status != status {
            bail!(
                "{what}: expected {status}, got {}: {}",
                self.status,
                self.json
            );
        }
        Ok(self)
    }

    pub fn str(&self, pointer: &str) -> Result<String> {
        self.json
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no {pointer} in {}", self.json))
    }
}

impl Client {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .expect("http client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Resp> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("request to {path}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp { status, json })
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Resp> {
        let bytes = serde_json::to_vec(body)?;
        self.send(method, path, token, Some(("application/json", bytes)))
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Resp> {
        self.json(Method::POST, path, token, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Resp> {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn sign_in(&self, tenant: &str, email: &str, password: &str) -> Result<Resp> {
        self.post(
            "/v1/sessions",
            None,
            &json!({"tenant": tenant, "email": email, "password": password}),
        )
        .await
    }

    /// A session token of the stack's bootstrap admin.
    pub async fn admin_token(&self, stack: &latchkey_local::TestStack) -> Result<String> {
        self.sign_in("admin", stack.admin_email(), stack.admin_password())
            .await?
            .expect(200, "sign-in")?
            .str("/token")
    }

    /// Creates a customer tenant called `name`, on a subdomain no earlier run used: its id.
    pub async fn create_tenant(&self, admin: &str, name: &str) -> Result<String> {
        self.post(
            "/v1/tenants",
            Some(admin),
            &json!({"name": name, "subdomain": unique(&name.to_lowercase())}),
        )
        .await?
        .expect(201, "create tenant")?
        .str("/id")
    }
}

/// A name no earlier run used (the emulators outlive nothing, but tables are shared).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:010x}", rand::random::<u64>() & 0xff_ffff_ffff)
}

pub fn unique_email(prefix: &str) -> String {
    format!("{}@bench.test", unique(prefix))
}

/// The token of the newest mail to `to` holding a link to `/{page}#token=`.
pub async fn mailed_token(moto_url: &str, to: &str, page: &str) -> Result<String> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let marker = format!("/{page}#token=");
    // SES on moto stores the mail before it answers; the retries only cover a slow moment.
    for _ in 0..50 {
        let mails = mailbox::fetch(&http, moto_url).await?;
        let token = mails
            .iter()
            .rev()
            .filter(|m| m.is_for(to))
            .flat_map(|m| m.links())
            .find(|link| link.contains(&marker))
            .and_then(|link| link.split_once("#token=").map(|(_, t)| t.to_owned()));
        if let Some(token) = token {
            return Ok(token);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no mail to {to} with a /{page} link")
}
