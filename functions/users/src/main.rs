//! Lambda `users`: Shows users to their admins (GET /v1/tenants/{tenant}/users, GET /v1/users/{id}).
//! The rules live in `latchkey::ops::users`; this binary only wires them to the runtime.

use latchkey::app::{App, Warm, serve_http};
use latchkey::config::Config;
use latchkey::events::EventBridgePublisher;
use latchkey::lambda_http::Error;
use latchkey::mail::NoMail;
use latchkey::ops::users;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let config = Config::from_env()?;
    // Its role (infra/template.yaml) publishes lifecycle events and sends no mail.
    let app = Warm::start(move || App::<NoMail>::build::<EventBridgePublisher>(config.clone()));
    serve_http(app, |app, req| Box::pin(users::handle(app, req))).await
}
