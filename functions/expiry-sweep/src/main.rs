//! Lambda `expiry-sweep`: on its schedule, marks invitations past their expiry as expired.
//! It needs only the table: no secret, no mail client (its IAM role cannot send mail).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::config;
use latchkey::events::EventBridgePublisher;
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
    let events = &*Box::leak(Box::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        config::event_bus(&config::ProcessEnv),
    )));
    // Any event starts a sweep: the schedule's payload carries nothing the sweep needs.
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(serde_json::to_value(sweep::run(store, events).await?)?)
    }))
    .await
}
