//! Lambda `audit`: Lists a tenant's audit trail (GET /v1/tenants/{tenant}/audit).
//! The rules live in `latchkey::ops::audit`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::lambda_http::Error;
use latchkey::ops::audit;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    serve_http(app, |app, req| Box::pin(audit::handle(app, req))).await
}
