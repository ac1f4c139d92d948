//! Lambda `reset`: Mails an active user a password-reset link at an admin's request (POST /v1/users/{id}/password-reset).
//! The rules live in `latchkey::ops::reset`; this binary only wires them to the runtime.

use std::convert::Infallible;

use latchkey::app::{App, Warm};
use latchkey::config::Config;
use latchkey::lambda_http::{self, Error, service_fn};
use latchkey::ops::reset;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(match app.get_or_unavailable().await {
                Ok(app) => reset::handle(app, req).await,
                Err(unavailable) => unavailable,
            })
        }
    }))
    .await
}
