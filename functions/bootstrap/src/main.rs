//! Lambda `bootstrap`: invoked once (by `make dev`, or `aws lambda invoke` after the first
//! deploy) to create tenant `admin` and its first team_admin. Idempotent.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::{App, Warm};
use latchkey::config::Config;
use latchkey::events::NoEvents;
use latchkey::mail::NoMail;
use latchkey::ops::bootstrap::{self, BootstrapAdmin};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let admin = Arc::new(BootstrapAdmin::from_env()?);
    let config = Config::from_env()?;
    // Its role (infra/template.yaml) sends no mail and publishes no events.
    let app = Warm::start(move || App::<NoMail>::build::<NoEvents>(config.clone()));
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let (app, admin) = (app.clone(), Arc::clone(&admin));
        async move {
            let report = bootstrap::run(app.get().await?, &admin).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
