//! Lambda `email`: Email verification and address change (POST /v1/users/{id}/resend-verification, POST /v1/users/{id}/email-change, POST /v1/email/verify).
//! The rules live in `latchkey::ops::email`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::lambda_http::Error;
use latchkey::ops::email;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    serve_http(app, |app, req| Box::pin(email::handle(app, req))).await
}
