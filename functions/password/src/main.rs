//! Lambda `password`: Self-service recovery (POST /v1/password/forgot, POST /v1/password/reset).
//! The rules live in `latchkey::ops::password`; this binary only wires them to the runtime.

use std::convert::Infallible;
use std::sync::Arc;

use latchkey::app::App;
use latchkey::lambda_http::{self, Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let app = Arc::new(App::load().await?);
    lambda_http::run(service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(latchkey::ops::password::handle(&app, req).await) }
    }))
    .await
}
