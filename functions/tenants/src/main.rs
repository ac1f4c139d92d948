//! Lambda `tenants`: Creates and lists customer tenants (POST and GET /v1/tenants).
//! The rules live in `latchkey::ops::tenants`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::lambda_http::Error;
use latchkey::ops::tenants;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    serve_http(app, |app, req| Box::pin(tenants::handle(app, req))).await
}
