//! Lambda `generate-link`: Returns a copyable access link, sending no mail (POST /v1/users/{id}/access-link).
//! The rules live in `latchkey::ops::access_link`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::lambda_http::Error;
use latchkey::ops::access_link;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    let app = Warm::start(move || App::build(config.clone()));
    serve_http(app, |app, req| Box::pin(access_link::handle(app, req))).await
}
