//! The harness of the end-to-end tests: each test gets its own stack (a fresh table with a
//! unique name and its own gateway over the real binaries) on the shared emulators that
//! `latchkey-local test-env` started. Tests run in parallel processes, so nothing here
//! assumes it is alone: names are random and the setup steps are idempotent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::faults::FaultProxy;
use crate::gateway::{Gateway, GatewayConfig};
use crate::mailbox::{self, SentMail};
use crate::paths::Paths;
use crate::setup::{Aws, Endpoints, bootstrap_admin};
use crate::stack::prepare;
use crate::template::Template;

/// A running stack for one test; everything stops when it is dropped.
pub struct TestStack {
    gateway: Gateway,
    /// Every line its functions wrote, also written to `LATCHKEY_LOG_FILE` when set.
    output: Arc<Mutex<Vec<String>>>,
    url: String,
    table_name: String,
    upload_bucket: String,
    aws: Aws,
    endpoints: Endpoints,
    admin_email: String,
    admin_password: String,
    public_base_url: String,
    http: reqwest::Client,
}

/// Options of a [`TestStack`]; each unset one comes from the `test-env` environment.
#[derive(Debug, Clone)]
pub struct TestStackBuilder {
    env: Vec<(String, String)>,
    instances: usize,
    template: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    endpoints: Option<Endpoints>,
    bootstrap: bool,
    /// Endpoint variables the functions get instead of the emulators' (`*_through`).
    through: Vec<(String, String)>,
}

impl TestStack {
    /// A stack with the defaults (2 instances per function).
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    pub fn builder() -> TestStackBuilder {
        TestStackBuilder {
            env: Vec::new(),
            instances: 2,
            template: None,
            bin_dir: None,
            endpoints: None,
            bootstrap: true,
            through: Vec::new(),
        }
    }

    /// Base URL of this stack's API, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the functions use as `PUBLIC_BASE_URL` (links in mail start with it).
    pub fn public_base_url(&self) -> &str {
        &self.public_base_url
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    /// Where import files are uploaded and reports written (`UPLOAD_BUCKET`).
    pub fn upload_bucket(&self) -> &str {
        &self.upload_bucket
    }

    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        self.aws.dynamodb.clone()
    }

    /// All SDK clients, pointed at the emulators.
    pub fn aws(&self) -> &Aws {
        &self.aws
    }

    pub fn moto_url(&self) -> &str {
        &self.endpoints.moto
    }

    pub fn admin_email(&self) -> &str {
        &self.admin_email
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The lines its functions have written so far (logs and metrics), each prefixed with
    /// `[function]`.
    pub fn function_output(&self) -> Vec<String> {
        crate::process::lock(&self.output).clone()
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Invokes a function directly (Lambda Invoke semantics); a function error is an `Err`.
    pub async fn invoke(&self, name: &str, payload: Value) -> Result<Value> {
        self.gateway.invoke(name, payload).await
    }

    /// Mail SES (moto) accepted for `address`, oldest first. Use unique addresses: the
    /// emulators are shared by every test.
    pub async fn mail_to(&self, address: &str) -> Result<Vec<SentMail>> {
        let all = mailbox::fetch(&self.http, &self.endpoints.moto).await?;
        Ok(all.into_iter().filter(|m| m.is_for(address)).collect())
    }

    /// Every mail SES (moto) accepted, from every test on the shared emulators.
    pub async fn all_mail(&self) -> Result<Vec<SentMail>> {
        mailbox::fetch(&self.http, &self.endpoints.moto).await
    }

    /// Stops the gateway (waiting for the processes) and deletes the table.
    pub async fn shutdown(self) -> Result<()> {
        let Self {
            gateway,
            aws,
            table_name,
            ..
        } = self;
        gateway.shutdown().await;
        aws.delete_table(&table_name).await
    }
}

impl TestStackBuilder {
    /// An environment variable for every function (wins over everything else).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Processes per function.
    pub fn instances(mut self, instances: usize) -> Self {
        self.instances = instances;
        self
    }

    /// Template to use instead of `LATCHKEY_TEMPLATE`.
    pub fn template(mut self, path: impl Into<PathBuf>) -> Self {
        self.template = Some(path.into());
        self
    }

    /// Folder of function binaries instead of `LATCHKEY_BIN_DIR`.
    pub fn bin_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(path.into());
        self
    }

    /// Emulators to use instead of those named by the environment.
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// Whether to run the `bootstrap` function (default true).
    pub fn bootstrap(mut self, bootstrap: bool) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// The functions reach DynamoDB through `url` (e.g. a [`FaultProxy`]) instead of the
    /// emulator; table creation and [`TestStack::dynamodb_client`] still use the emulator.
    /// The `bootstrap` function is a function too: it runs through `url` while the stack
    /// starts.
    pub fn dynamodb_through(self, url: String) -> Self {
        self.through("AWS_ENDPOINT_URL_DYNAMODB", url)
    }

    /// The functions reach SES v2 through `url` (e.g. a [`FaultProxy`] in front of moto)
    /// instead of the emulator; setup and [`TestStack::mail_to`] still use moto.
    pub fn sesv2_through(self, url: String) -> Self {
        self.through("AWS_ENDPOINT_URL_SESV2", url)
    }

    /// The functions publish lifecycle events through `url` (e.g. a [`FaultProxy`] in front
    /// of moto); [`crate::lifecycle::published`] still reads moto.
    pub fn eventbridge_through(self, url: String) -> Self {
        self.through("AWS_ENDPOINT_URL_EVENTBRIDGE", url)
    }

    fn through(mut self, variable: &str, url: String) -> Self {
        self.through.push((variable.to_owned(), url));
        self
    }

    /// Starts a [`FaultProxy`] in front of moto (with no faults), then the stack with its
    /// functions sending mail through it ([`Self::sesv2_through`]); only SES traffic passes it.
    pub async fn start_with_ses_fault_proxy(self) -> Result<(TestStack, FaultProxy)> {
        self.start_behind_proxy(|e| &e.moto, Self::sesv2_through)
            .await
    }

    /// Starts a [`FaultProxy`] in front of the emulator's DynamoDB (with no faults), then the
    /// stack with its functions going through it ([`Self::dynamodb_through`]).
    pub async fn start_with_fault_proxy(self) -> Result<(TestStack, FaultProxy)> {
        self.start_behind_proxy(|e| &e.dynamodb, Self::dynamodb_through)
            .await
    }

    /// Starts a [`FaultProxy`] in front of moto (with no faults), then the stack with its
    /// functions publishing events through it ([`Self::eventbridge_through`]).
    pub async fn start_with_eventbridge_fault_proxy(self) -> Result<(TestStack, FaultProxy)> {
        self.start_behind_proxy(|e| &e.moto, Self::eventbridge_through)
            .await
    }

    async fn start_behind_proxy(
        self,
        upstream: fn(&Endpoints) -> &String,
        through: fn(Self, String) -> Self,
    ) -> Result<(TestStack, FaultProxy)> {
        let endpoints = self.resolve_endpoints()?;
        let proxy = FaultProxy::start(upstream(&endpoints)).await?;
        let url = proxy.url().to_owned();
        let stack = through(self.endpoints(endpoints), url).start().await?;
        Ok((stack, proxy))
    }

    fn resolve_endpoints(&self) -> Result<Endpoints> {
        match self.endpoints.clone().or_else(Endpoints::from_env) {
            Some(endpoints) => Ok(endpoints),
            None => anyhow::bail!(
                "no emulators: AWS_ENDPOINT_URL_DYNAMODB and LATCHKEY_MOTO_URL are not set; run the tests under \
                 `latchkey-local test-env -- cargo nextest run`"
            ),
        }
    }

    pub async fn start(self) -> Result<TestStack> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let endpoints = self.resolve_endpoints()?;
        let template_path = match self.template.clone().or_else(|| var("LATCHKEY_TEMPLATE")) {
            Some(path) => path,
            None => Paths::discover(None)?.template(),
        };
        let bin_dir = match self.bin_dir.clone().or_else(|| var("LATCHKEY_BIN_DIR")) {
            Some(path) => path,
            None => Paths::discover(None)?.default_bin_dir(),
        };
        let template = Template::load(&template_path)?;
        let aws = Aws::local(&endpoints).await;
        let table_name = format!("t-{:016x}", rand::random::<u64>());
        // A bucket of its own, so that its uploads' events reach only its functions.
        let mut env = self.env.clone();
        if !env.iter().any(|(name, _)| name == "UPLOAD_BUCKET") {
            env.insert(
                0,
                ("UPLOAD_BUCKET".to_owned(), format!("uploads-{table_name}")),
            );
        }
        let prepared = prepare(&aws, &endpoints, &template, &table_name, &env)
            .await
            .context("preparing the test stack")?;

        let mut config = GatewayConfig::new(template_path, bin_dir);
        config.instances = self.instances;
        config.env = prepared.env.clone();
        // Later entries win.
        config.env.extend(self.through.iter().cloned());
        config.url_env = prepared.url_env.clone();
        config.moto_url = Some(endpoints.moto.clone());
        config.upload_bucket = Some(prepared.upload_bucket.clone());
        config.log_file = var("LATCHKEY_LOG_FILE");
        let output = Arc::new(Mutex::new(Vec::new()));
        config.kept_output = Some(Arc::clone(&output));
        let gateway = Gateway::start(config)
            .await
            .context("starting the test stack's gateway")?;
        if self.bootstrap && template.function("bootstrap").is_some() {
            bootstrap_admin(&gateway).await?;
        }
        let public_base_url = match &prepared.url_env {
            Some(_) => gateway.url(),
            None => crate::stack::setting(&self.env, "PUBLIC_BASE_URL")
                .map(|(v, _)| v)
                .unwrap_or_else(|| gateway.url()),
        };
        Ok(TestStack {
            url: gateway.url(),
            gateway,
            output,
            table_name,
            upload_bucket: prepared.upload_bucket,
            aws,
            endpoints,
            admin_email: prepared.admin_email.0,
            admin_password: prepared.admin_password.0,
            public_base_url,
            http: reqwest::Client::new(),
        })
    }
}
