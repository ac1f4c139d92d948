//! Lambda `imports`: the CSV import's routes (GET /v1/imports/template.csv,
//! POST /v1/tenants/{tenant}/imports/preview, POST /v1/tenants/{tenant}/imports,
//! GET /v1/imports/{import_id}). The rules live in `latchkey::ops::imports`; this binary only
//! wires them to the runtime.

use std::convert::Infallible;
use std::sync::Arc;

use latchkey::app::App;
use latchkey::config::ImportConfig;
use latchkey::lambda_http::{self, Error, service_fn};
use latchkey::ops::imports::Imports;
use latchkey::uploads::Uploads;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = ImportConfig::from_env()?;
    let app = App::load().await?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let imports = Arc::new(Imports {
        uploads: Uploads::new(&sdk, config.bucket.clone()),
        app,
        config,
    });
    lambda_http::run(service_fn(move |req| {
        let imports = Arc::clone(&imports);
        async move { Ok::<_, Infallible>(latchkey::ops::imports::handle(&imports, req).await) }
    }))
    .await
}
