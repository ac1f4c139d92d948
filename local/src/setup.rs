//! Creates, on the emulators, the resources CloudFormation creates in AWS: the table (from the
//! template's own definition), the upload bucket, the verified SES sender and the JWT secret.
//! Everything is idempotent, so `dev` can be restarted and parallel test stacks can share
//! the emulators. Uses the real AWS SDK clients, as the functions do.

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tracing::{debug, info};

use crate::gateway::Gateway;
use crate::template::{KeyElement, TableSpec};

/// Region of the local stack.
pub const REGION: &str = "us-east-1";

/// Where the emulators listen: DynamoDB Local, and moto for S3, SES v2 and Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub dynamodb: String,
    pub moto: String,
}

impl Endpoints {
    pub fn on_ports(dynamodb: u16, moto: u16) -> Self {
        Self {
            dynamodb: format!("http://127.0.0.1:{dynamodb}"),
            moto: format!("http://127.0.0.1:{moto}"),
        }
    }

    /// From `AWS_ENDPOINT_URL_DYNAMODB` and `LATCHKEY_MOTO_URL` (or `AWS_ENDPOINT_URL_SESV2`),
    /// as `latchkey-local test-env` exports them.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Some(Self {
            dynamodb: var("AWS_ENDPOINT_URL_DYNAMODB")?,
            moto: var("LATCHKEY_MOTO_URL").or_else(|| var("AWS_ENDPOINT_URL_SESV2"))?,
        })
    }

    /// The SDK's standard per-service endpoint variables, pointing at the emulators.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), self.dynamodb.clone()),
            ("AWS_ENDPOINT_URL_S3".into(), self.moto.clone()),
            ("AWS_ENDPOINT_URL_SESV2".into(), self.moto.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), self.moto.clone()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), self.moto.clone()),
        ]
    }
}

/// Dummy credentials and the region, for each variable not already set here.
pub fn default_credentials_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_REGION", REGION),
    ]
    .into_iter()
    .filter(|(name, _)| std::env::var_os(name).is_none_or(|v| v.is_empty()))
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

/// The SDK clients the setup uses.
#[derive(Debug, Clone)]
pub struct Aws {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sesv2: aws_sdk_sesv2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl Aws {
    /// Clients configured from the environment alone (`AWS_ENDPOINT_URL_*`, credentials,
    /// region), exactly as the functions configure theirs.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::with_config(&config, None)
    }

    /// Clients for the emulators at `endpoints`, with dummy credentials (emulators accept any).
    pub async fn local(endpoints: &Endpoints) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "latchkey-local",
            ))
            .load()
            .await;
        Self::with_config(&config, Some(endpoints))
    }

    fn with_config(config: &aws_config::SdkConfig, endpoints: Option<&Endpoints>) -> Self {
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(config);
        // moto serves buckets by path, not by virtual host.
        let mut s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(true);
        let mut sesv2 = aws_sdk_sesv2::config::Builder::from(config);
        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(config);
        let mut eventbridge = aws_sdk_eventbridge::config::Builder::from(config);
        if let Some(endpoints) = endpoints {
            eventbridge = eventbridge.endpoint_url(&endpoints.moto);
            dynamodb = dynamodb.endpoint_url(&endpoints.dynamodb);
            s3 = s3.endpoint_url(&endpoints.moto);
            sesv2 = sesv2.endpoint_url(&endpoints.moto);
            secrets = secrets.endpoint_url(&endpoints.moto);
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            sesv2: aws_sdk_sesv2::Client::from_conf(sesv2.build()),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge.build()),
        }
    }

    /// Creates table `name` as the template defines it (on demand), then its TTL. Ok if it
    /// already exists.
    pub async fn create_table(&self, name: &str, spec: &TableSpec) -> Result<()> {
        let attributes = spec
            .attribute_definitions
            .iter()
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(&a.name)
                    .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                    .build()
                    .with_context(|| format!("attribute {}", a.name))
            })
            .collect::<Result<Vec<_>>>()?;
        let indexes = spec
            .global_secondary_indexes
            .iter()
            .map(|index| {
                let non_key = (!index.non_key_attributes.is_empty())
                    .then(|| index.non_key_attributes.clone());
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(&index.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection_type.as_str()))
                            .set_non_key_attributes(non_key)
                            .build(),
                    )
                    .build()
                    .with_context(|| format!("index {}", index.name))
            })
            .collect::<Result<Vec<_>>>()?;
        let created = self
            .dynamodb
            .create_table()
            .table_name(name)
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(key_schema(&spec.key_schema)?))
            .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => info!("created table {name}"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                debug!("table {name} exists")
            }
            Err(e) => return Err(e).with_context(|| format!("creating table {name}")),
        }

        let Some(ttl) = spec.time_to_live.as_ref().filter(|t| t.enabled) else {
            return Ok(());
        };
        let current = self
            .dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .with_context(|| format!("reading the TTL of {name}"))?;
        let already = current
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            == Some(ttl.attribute_name.as_str());
        if !already {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(&ttl.attribute_name)
                .enabled(true)
                .build()
                .context("TTL specification")?;
            self.dynamodb
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
                .with_context(|| format!("enabling TTL on {name}.{}", ttl.attribute_name))?;
        }
        Ok(())
    }

    /// Deletes table `name` (tests clean up with it); ok if it is gone.
    pub async fn delete_table(&self, name: &str) -> Result<()> {
        match self.dynamodb.delete_table().table_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("deleting table {name}")),
        }
    }

    /// Writes every item of every table as one line, `<table> <item as JSON>`, and returns
    /// how many items it wrote: the end of `make test` scans this for leaked secrets, since
    /// the tests' tables stay on the emulator until it stops.
    pub async fn dump_tables(&self, out: &mut impl std::io::Write) -> Result<usize> {
        let mut tables = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .list_tables()
                .set_exclusive_start_table_name(start)
                .send()
                .await
                .context("listing the tables")?;
            tables.extend(page.table_names().iter().cloned());
            start = page.last_evaluated_table_name().map(str::to_owned);
            if start.is_none() {
                break;
            }
        }
        let mut count = 0;
        for table in tables {
            let mut start = None;
            loop {
                let page = self
                    .dynamodb
                    .scan()
                    .table_name(&table)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .with_context(|| format!("scanning table {table}"))?;
                for item in page.items() {
                    let item: serde_json::Map<String, Value> = item
                        .iter()
                        .map(|(name, value)| (name.clone(), attribute_json(value)))
                        .collect();
                    writeln!(out, "{table} {}", Value::Object(item)).context("writing the dump")?;
                    count += 1;
                }
                start = page.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(count)
    }

    /// Creates bucket `name` unless it exists.
    pub async fn ensure_bucket(&self, name: &str) -> Result<()> {
        match self.s3.create_bucket().bucket(name).send().await {
            Ok(_) => {
                info!("bucket {name} is ready");
                Ok(())
            }
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("creating bucket {name}")),
        }
    }

    /// Archives every event of source `latchkey` on the default bus (moto keeps them, and
    /// [`crate::lifecycle::published`] reads them back), unless the archive exists.
    pub async fn ensure_event_archive(&self) -> Result<()> {
        let bus = self
            .eventbridge
            .describe_event_bus()
            .name("default")
            .send()
            .await
            .context("reading the default event bus")?;
        match self
            .eventbridge
            .create_archive()
            .archive_name(crate::lifecycle::ARCHIVE)
            .set_event_source_arn(bus.arn)
            .event_pattern(r#"{"source":["latchkey"]}"#)
            .send()
            .await
        {
            Ok(_) => {
                info!(
                    "lifecycle events are archived in {}",
                    crate::lifecycle::ARCHIVE
                );
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(e).context("creating the lifecycle event archive"),
        }
    }

    /// Makes `email` a sending identity (moto verifies at once; it rejects unverified senders).
    pub async fn ensure_sender_identity(&self, email: &str) -> Result<()> {
        match self
            .sesv2
            .create_email_identity()
            .email_identity(email)
            .send()
            .await
        {
            Ok(_) => {
                info!("SES sender {email} is verified");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("creating SES identity {email}")),
        }
    }

    /// Creates secret `name` holding 64 random bytes (base64) unless it exists; returns its ARN.
    /// That is what CloudFormation creates too (`GenerateSecretString`): a plain value, which
    /// the functions read as one legacy key generation until the first rotation.
    pub async fn ensure_secret(&self, name: &str) -> Result<String> {
        let value = BASE64.encode(
            rand::random::<[u8; 32]>()
                .iter()
                .chain(&rand::random::<[u8; 32]>())
                .copied()
                .collect::<Vec<u8>>(),
        );
        match self
            .secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
        {
            Ok(out) => {
                info!("created secret {name}");
                out.arn()
                    .map(str::to_owned)
                    .with_context(|| format!("secret {name} was created without an ARN"))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception())
                    || e.code() == Some("ResourceExistsException") =>
            {
                let found = self
                    .secrets
                    .describe_secret()
                    .secret_id(name)
                    .send()
                    .await
                    .with_context(|| format!("describing secret {name}"))?;
                found
                    .arn()
                    .map(str::to_owned)
                    .with_context(|| format!("secret {name} has no ARN"))
            }
            Err(e) => Err(e).with_context(|| format!("creating secret {name}")),
        }
    }
}

fn key_schema(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    elements
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .with_context(|| format!("key {}", k.name))
        })
        .collect()
}

/// Runs the `bootstrap` function once (tenant `admin` and its first team_admin, from
/// `BOOTSTRAP_ADMIN_EMAIL` / `BOOTSTRAP_ADMIN_PASSWORD` in its environment); returns its output.
pub async fn bootstrap_admin(gateway: &Gateway) -> Result<Value> {
    let output = gateway
        .invoke("bootstrap", json!({}))
        .await
        .context("bootstrapping the admin (function `bootstrap`)")?;
    if output.get("errorType").is_some() {
        bail!("bootstrap failed: {output}");
    }
    info!("bootstrap: {output}");
    Ok(output)
}

/// The four steps Secrets Manager sends a rotation function, in order.
pub const ROTATION_STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// A new version id for a rotation, shaped as Secrets Manager makes them (a UUID).
pub fn rotation_token() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Rotates secret `secret` the way Secrets Manager does: the `rotate-keys` function is invoked
/// with each of [`ROTATION_STEPS`] and one new version id, which it returns. Stops at the first
/// step that fails. The local stack runs it once at start, as `RotateImmediatelyOnUpdate` does
/// on deploy; tests run it to rotate their own secret.
pub async fn rotate_keys(gateway: &Gateway, secret: &str) -> Result<String> {
    let token = rotation_token();
    for step in ROTATION_STEPS {
        let event = json!({"Step": step, "SecretId": secret, "ClientRequestToken": token});
        gateway
            .invoke("rotate-keys", event)
            .await
            .with_context(|| format!("key rotation step {step}"))?;
    }
    info!("keys rotated: {secret} is at version {token}");
    Ok(token)
}

/// An attribute as plain JSON (binary as base64), for dumps meant to be read or grepped.
fn attribute_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) | A::N(s) => Value::String(s.clone()),
        A::B(b) => Value::String(BASE64.encode(b.as_ref())),
        A::Bool(b) => Value::Bool(*b),
        A::Null(_) => Value::Null,
        A::Ss(v) | A::Ns(v) => json!(v),
        A::Bs(v) => json!(
            v.iter()
                .map(|b| BASE64.encode(b.as_ref()))
                .collect::<Vec<_>>()
        ),
        A::L(v) => Value::Array(v.iter().map(attribute_json).collect()),
        A::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect(),
        ),
        _ => Value::String(format!("{value:?}")),
    }
}
