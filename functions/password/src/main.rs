//! Lambda `password`: Self-service recovery (POST /v1/password/forgot, POST /v1/password/reset).
//! The rules live in `latchkey::ops::password`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::events::EventBridgePublisher;
use latchkey::lambda_http::Error;
use latchkey::mail::SesMailer;
use latchkey::ops::password;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    // Its role (infra/template.yaml) sends mail and publishes lifecycle events.
    let app = Warm::start(move || App::<SesMailer>::build::<EventBridgePublisher>(config.clone()));
    serve_http(app, |app, req| Box::pin(password::handle(app, req))).await
}
