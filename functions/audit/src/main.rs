//! Lambda `audit`: Lists a tenant's audit trail (GET /v1/tenants/{tenant}/audit).
//! The rules live in `latchkey::ops::audit`; this binary only wires them to the runtime.

use std::convert::Infallible;

use latchkey::app::{App, Warm};
use latchkey::config::Config;
use latchkey::lambda_http::{self, Error, service_fn};
use latchkey::ops::audit;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(match app.get_or_unavailable().await {
                Ok(app) => audit::handle(app, req).await,
                Err(unavailable) => unavailable,
            })
        }
    }))
    .await
}
