//! Lambda `accept`: Accepts an invitation by setting a password (POST /v1/invitations/accept).
//! The rules live in `latchkey::ops::accept`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::lambda_http::Error;
use latchkey::ops::accept;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    serve_http(app, |app, req| Box::pin(accept::handle(app, req))).await
}
