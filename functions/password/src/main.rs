//! Lambda `password`: Self-service recovery (POST /v1/password/forgot, POST /v1/password/reset).
//! The rules live in `latchkey::ops::password`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::lambda_http::Error;
use latchkey::ops::password;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    serve_http(app, |app, req| Box::pin(password::handle(app, req))).await
}
