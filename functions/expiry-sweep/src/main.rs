//! Lambda `expiry-sweep`: on its schedule, marks invitations past their expiry as expired.
//! It needs only the table: no secret, no mail client (its IAM role cannot send mail).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::config;
use latchkey::ops::sweep;
use latchkey::store::Store;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let table = config::table_name()?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let store = &*Box::leak(Box::new(Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
    )));
    // Any event starts a sweep: the schedule's payload carries nothing the sweep needs.
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(serde_json::to_value(sweep::run(store).await?)?)
    }))
    .await
}
