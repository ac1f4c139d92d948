//! Lambda `generate-link`: Returns a copyable access link, sending no mail (POST /v1/users/{id}/access-link).
//! The rules live in `latchkey::ops::access_link`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::events::NoEvents;
use latchkey::lambda_http::Error;
use latchkey::mail::NoMail;
use latchkey::ops::access_link;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    // Its role (infra/template.yaml) sends no mail and publishes no events.
    let app = Warm::start(move || App::<NoMail>::build::<NoEvents>(config.clone()));
    serve_http(app, |app, req| Box::pin(access_link::handle(app, req))).await
}
