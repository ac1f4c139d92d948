//! Lambda `expiry-sweep`: on its schedule, marks invitations past their expiry as expired.
//! It needs only the table: no secret, no mail client (its IAM role cannot send mail).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::Warm;
use latchkey::aws::AwsEnv;
use latchkey::config::{self, ProcessEnv};
use latchkey::events::EventBridgePublisher;
use latchkey::ops::sweep;
use latchkey::store::Store;
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let table = config::table_name()?;
    let aws = AwsEnv::from_env()?;
    let bus = config::event_bus(&ProcessEnv);
    let clients = Warm::start(move || {
        let (table, bus, sdk) = (table.clone(), bus.clone(), aws.sdk_config());
        async move {
            Ok((
                Store::new(aws_sdk_dynamodb::Client::new(&sdk), table),
                EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk), bus),
            ))
        }
    });
    // Any event starts a sweep: the schedule's payload carries nothing the sweep needs.
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let clients = clients.clone();
        async move {
            let (store, events) = clients.get().await?;
            Ok::<_, Error>(serde_json::to_value(sweep::run(store, events).await?)?)
        }
    }))
    .await
}
