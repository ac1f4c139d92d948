//! Lambda `pages`: serves the static pages opened from mail. It needs no configuration and
//! no AWS access, so it builds nothing at cold start.

use std::convert::Infallible;

use latchkey::lambda_http::{self, Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    lambda_http::run(service_fn(|req| async {
        Ok::<_, Infallible>(latchkey::ops::pages::handle(req).await)
    }))
    .await
}
