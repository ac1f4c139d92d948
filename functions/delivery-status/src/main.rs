//! Lambda `delivery-status`: SES events of the mail configuration set (sent, delivered,
//! bounced, complained, rejected, delayed), routed by an EventBridge rule, recorded on the
//! user. It needs only the table: no secret, no mail client.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::Warm;
use latchkey::aws::AwsEnv;
use latchkey::config;
use latchkey::ops::delivery;
use latchkey::store::Store;
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let table = config::table_name()?;
    let aws = AwsEnv::from_env()?;
    let store = Warm::start(move || {
        let (table, sdk) = (table.clone(), aws.sdk_config());
        async move { Ok(Store::new(aws_sdk_dynamodb::Client::new(&sdk), table)) }
    });
    // Any JSON is a `Value`: a malformed event reaches the rules, which log and skip it.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let store = store.clone();
        async move {
            let report = delivery::handle(store.get().await?, &event.payload).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
