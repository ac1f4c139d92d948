//! Lambda `rotate-keys`: Secrets Manager calls it, on the secret's rotation schedule, once per
//! rotation step. It adds a key generation to the keyring and keeps those still needed, so a
//! rotation ends no session and no pending link. The rules live in `latchkey::rotation`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use latchkey::app::Warm;
use latchkey::aws::AwsEnv;
use latchkey::config::KeyLifetimes;
use latchkey::rotation::{Rotation, RotationEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    latchkey::telemetry::init();
    let lifetimes = KeyLifetimes::from_env()?;
    let aws = AwsEnv::from_env()?;
    let rotation = Warm::start(move || {
        let sdk = aws.sdk_config();
        async move {
            Ok(Rotation::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                lifetimes,
            ))
        }
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RotationEvent>| {
        let rotation = rotation.clone();
        async move {
            let outcome = rotation.get().await?.run(&event.payload).await?;
            Ok::<_, Error>(serde_json::to_value(outcome)?)
        }
    }))
    .await
}
