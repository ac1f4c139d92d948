//! Lambda `imports`: the CSV import's routes (GET /v1/imports/template.csv,
//! POST /v1/tenants/{tenant}/imports/preview, POST /v1/tenants/{tenant}/imports,
//! GET /v1/imports/{import_id}). The rules live in `latchkey::ops::imports`; this binary only
//! wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::{Config, ImportConfig};
use latchkey::events::NoEvents;
use latchkey::lambda_http::Error;
use latchkey::mail::NoMail;
use latchkey::ops::imports::{self, Imports};
use latchkey::uploads::Uploads;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let import_config = ImportConfig::from_env()?;
    // Its role (infra/template.yaml) sends no mail and publishes no events.
    let imports = Warm::start(move || {
        let (config, import_config) = (config.clone(), import_config.clone());
        async move {
            let sdk = config.aws.sdk_config();
            Ok(Imports {
                uploads: Uploads::new(&sdk, import_config.bucket.clone()),
                app: App::<NoMail>::connect::<NoEvents>(config, &sdk).await?,
                config: import_config,
            })
        }
    });
    serve_http(imports, |built, req| Box::pin(imports::handle(built, req))).await
}
