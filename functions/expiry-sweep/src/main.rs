//! Lambda `expiry-sweep`: on its schedule, marks invitations past their expiry as expired.
//! It needs only the table: no secret, no mail client (its IAM role cannot send mail).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::Warm;
use latchkey::config::{self, ProcessEnv, TlsRoots};
use latchkey::events::EventBridgePublisher;
use latchkey::https;
use latchkey::ops::sweep;
use latchkey::store::Store;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let table = config::table_name()?;
    let roots = TlsRoots::from_env()?;
    let bus = config::event_bus(&ProcessEnv);
    let clients = Warm::start(move || {
        let (table, bus) = (table.clone(), bus.clone());
        async move {
            let sdk = https::sdk_config(roots).await;
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
