//! Lambda `csv-import`: started by the upload bucket's notification for `imports/*.csv`, or
//! by its own continuation event. The rules live in `latchkey::ops::csv_import`; this binary
//! only wires them to the runtime.

use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::{App, Warm};
use latchkey::config::{Config, ImportConfig};
use latchkey::events::EventBridgePublisher;
use latchkey::mail::SesMailer;
use latchkey::ops::csv_import::{self, Continuation, ImportEvent, Importer};
use latchkey::uploads::Uploads;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let import_config = ImportConfig::from_env()?;
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .map_err(|_| "AWS_LAMBDA_FUNCTION_NAME is not set (the Lambda runtime sets it)")?;
    let importer = Warm::start(move || {
        let (config, import_config) = (config.clone(), import_config.clone());
        let function_name = function_name.clone();
        async move {
            let sdk = config.aws.sdk_config();
            Ok(Importer {
                uploads: Uploads::new(&sdk, import_config.bucket.clone()),
                continuation: Some(Continuation {
                    client: aws_sdk_lambda::Client::new(&sdk),
                    function_name,
                }),
                // Its role (infra/template.yaml) sends mail and publishes lifecycle events.
                app: App::<SesMailer>::connect::<EventBridgePublisher>(config, &sdk).await?,
                config: import_config,
            })
        }
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ImportEvent>| {
        let importer = importer.clone();
        async move {
            // The runtime gives the deadline as wall-clock time; the work loop uses a monotonic one.
            let left = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            let deadline = Instant::now() + left;
            let outcomes = csv_import::handle(
                importer.get().await?,
                event.payload,
                &event.context.request_id,
                deadline,
            )
            .await?;
            Ok::<_, Error>(outcomes)
        }
    }))
    .await
}
