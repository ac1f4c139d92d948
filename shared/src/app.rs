//! What a function builds once at cold start: typed config, AWS clients, keys.

use aws_config::BehaviorVersion;

use crate::config::{Config, ConfigError};
use crate::events::{EventBridgePublisher, EventPublisher};
use crate::mail::{Mailer, SesMailer};
use crate::secrets::{Keys, SecretError};
use crate::store::Store;

pub struct App<M: Mailer = SesMailer> {
    pub config: Config,
    pub store: Store,
    pub mailer: M,
    pub keys: Keys,
    /// Lifecycle events (best effort: see [`crate::events::emit`]).
    pub events: Box<dyn EventPublisher>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("signing key: {0}")]
    Secret(#[from] SecretError),
}

impl App<SesMailer> {
    /// Reads the environment, builds the clients and fetches the signing secret, once.
    pub async fn load() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let keys = Keys::fetch(
            &aws_sdk_secretsmanager::Client::new(&sdk),
            &config.jwt_secret_arn,
        )
        .await?;
        let store = Store::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.table_name.clone(),
        );
        let mailer = SesMailer::new(
            aws_sdk_sesv2::Client::new(&sdk),
            config.sender_email.clone(),
        )
        .with_configuration_set(config.ses_configuration_set.clone());
        let events = Box::new(EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            config.event_bus.clone(),
        ));
        Ok(Self {
            config,
            store,
            mailer,
            keys,
            events,
        })
    }
}
