//! Lambda `generate-link`: Returns a copyable access link, sending no mail (POST /v1/users/{id}/access-link).
//! The rules live in `latchkey::ops::access_link`; this binary only wires them to the runtime.

use std::convert::Infallible;

use latchkey::app::{App, Warm};
use latchkey::config::Config;
use latchkey::lambda_http::{self, Error, service_fn};
use latchkey::ops::access_link;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(match app.get_or_unavailable().await {
                Ok(app) => access_link::handle(app, req).await,
                Err(unavailable) => unavailable,
            })
        }
    }))
    .await
}
