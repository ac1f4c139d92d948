//! Cold-start probe: an HTTP function that does what a Latchkey function does before its
//! first poll (JSON logs, typed environment, an HTTPS client built once) and can read one
//! item from DynamoDB with a hand-signed request, linked in but not on the probe's path.
//! Only for `latchkey-bench cold-start` with `LATCHKEY_BIN_DIR`; see the Cargo.toml.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lambda_http::{Body, Error, Request, Response, service_fn};
use tokio::sync::OnceCell;

type Https = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Env {
    region: String,
    identity: Identity,
    dynamodb: String,
    table: String,
}

fn var(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

impl Env {
    fn read() -> Result<Self, Error> {
        let credentials = Credentials::new(
            var("AWS_ACCESS_KEY_ID")?,
            var("AWS_SECRET_ACCESS_KEY")?,
            std::env::var("AWS_SESSION_TOKEN").ok(),
            None,
            "environment",
        );
        let region = var("AWS_REGION")?;
        let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|_| format!("https://dynamodb.{region}.amazonaws.com"));
        Ok(Self {
            region,
            identity: credentials.into(),
            dynamodb,
            table: var("TABLE_NAME")?,
        })
    }
}

fn https() -> Https {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs offers TLS 1.2 and 1.3")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One `GetItem`, signed by hand: what each store call would become without the SDK.
async fn get_item(env: &Env, client: &Https, pk: &str) -> Result<serde_json::Value, Error> {
    let body = serde_json::to_vec(&serde_json::json!({
        "TableName": env.table,
        "Key": {"PK": {"S": pk}, "SK": {"S": "PROFILE"}},
        "ConsistentRead": true,
    }))?;
    let mut request = lambda_http::http::Request::post(&env.dynamodb)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "DynamoDB_20120810.GetItem")
        .body(Full::new(Bytes::from(body.clone())))?;
    let params = v4::SigningParams::builder()
        .identity(&env.identity)
        .region(&env.region)
        .name("dynamodb")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        env.dynamodb.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let response = client.request(request).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&bytes)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let env = Arc::new(Env::read()?);
    // Built beside the poll, as the functions' init task builds theirs.
    let client: Arc<OnceCell<Https>> = Arc::new(OnceCell::new());
    let warm = client.clone();
    tokio::spawn(async move {
        warm.get_or_init(|| async { https() }).await;
    });
    lambda_http::run(service_fn(move |req: Request| {
        let (env, client) = (env.clone(), client.clone());
        async move {
            let client = client.get_or_init(|| async { https() }).await;
            // The probe event never reads; the read is there so the signer is linked in.
            let body = match req.uri().path().strip_prefix("/probe-read/") {
                Some(pk) => get_item(&env, client, pk).await?.to_string(),
                None => "{\"ok\":true}".to_owned(),
            };
            Ok::<_, Error>(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from(body))?,
            )
        }
    }))
    .await
}
