//! Lambda `imports`: The CSV import (GET /v1/imports/template.csv, POST /v1/tenants/{tenant}/imports/preview).
//! The rules live in `latchkey::ops::imports`; this binary only wires them to the runtime.

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
        async move { Ok::<_, Infallible>(latchkey::ops::imports::handle(&app, req).await) }
    }))
    .await
}
