//! Lambda `bootstrap`: invoked once (by `make dev`, or `aws lambda invoke` after the first
//! deploy) to create tenant `admin` and its first team_admin. Idempotent.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::App;
use latchkey::ops::bootstrap::{self, BootstrapAdmin};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let admin = Arc::new(BootstrapAdmin::from_env()?);
    let app = Arc::new(App::load().await?);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let (app, admin) = (Arc::clone(&app), Arc::clone(&admin));
        async move { Ok::<_, Error>(serde_json::to_value(bootstrap::run(&app, &admin).await?)?) }
    }))
    .await
}
