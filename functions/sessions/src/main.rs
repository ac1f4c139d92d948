//! Lambda `sessions`: Signs people in (POST /v1/sessions).
//! The rules live in `latchkey::ops::sessions`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::events::NoEvents;
use latchkey::lambda_http::Error;
use latchkey::mail::NoMail;
use latchkey::ops::sessions;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    // Its role (infra/template.yaml) sends no mail and publishes no events.
    let app = Warm::start(move || App::<NoMail>::build::<NoEvents>(config.clone()));
    serve_http(app, |app, req| Box::pin(sessions::handle(app, req))).await
}
