//! Lambda `email`: Email verification and address change (POST /v1/users/{id}/resend-verification, POST /v1/users/{id}/email-change, POST /v1/email/verify).
//! The rules live in `latchkey::ops::email`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::events::NoEvents;
use latchkey::lambda_http::Error;
use latchkey::mail::SesMailer;
use latchkey::ops::email;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    // Its role (infra/template.yaml) sends mail and publishes no events.
    let app = Warm::start(move || App::<SesMailer>::build::<NoEvents>(config.clone()));
    serve_http(app, |app, req| Box::pin(email::handle(app, req))).await
}
