//! The AWS SDK configuration of a function, read from the environment Lambda gives it.
//!
//! `aws-config`'s loader was not used, on purpose. Its credentials chain can look in profiles,
//! SSO caches, web identity, ECS and IMDS, and it brings its own STS client. A function
//! running on Lambda never needs any of that: Lambda sets the role's credentials and the
//! region in the environment. That code was 18 % of a small function's relocations.
//! The dynamic loader writes every page of those tables before `main` on each cold start,
//! and removing them shortened `delivery-status`'s first poll from about 1.4× to about 1.2×
//! the hello world's (`bench/notes/cold-start.md`).
//!
//! Like the loader, [`AwsEnv`] reads the variables an operator or the local stack might set:
//! `AWS_REGION`, the credentials, `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`,
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`, `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`,
//! `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT` and `AWS_SDK_UA_APP_ID` (the
//! application name in the user agent, which CloudTrail records). It reads nothing else: no `~/.aws` files, no metadata
//! service. Unlike the loader, a missing region or credentials variable stops the cold start
//! with its name, instead of failing every request later.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::app_name::AppName;
use aws_types::region::Region;
use aws_types::sdk_config::{RetryConfig, TimeoutConfig};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::config::{ConfigError, Env, ProcessEnv, TlsRoots, http_url, required};

/// The SDK service id of each client the functions build, and the variable that overrides
/// its endpoint (the id in upper case, spaces as underscores).
const SERVICES: [(&str, &str); 6] = [
    ("DynamoDB", "AWS_ENDPOINT_URL_DYNAMODB"),
    ("SESv2", "AWS_ENDPOINT_URL_SESV2"),
    ("S3", "AWS_ENDPOINT_URL_S3"),
    ("Secrets Manager", "AWS_ENDPOINT_URL_SECRETS_MANAGER"),
    ("EventBridge", "AWS_ENDPOINT_URL_EVENTBRIDGE"),
    ("Lambda", "AWS_ENDPOINT_URL_LAMBDA"),
];

/// The same connect timeout as the SDK's default configuration.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

#[derive(Debug, Clone)]
pub struct AwsEnv {
    region: Region,
    /// Its `Debug` redacts the secret key and the session token.
    credentials: Credentials,
    endpoints: Endpoints,
    retry: RetryConfig,
    use_fips: bool,
    use_dual_stack: bool,
    app_name: Option<AppName>,
    pub tls_roots: TlsRoots,
}

/// `AWS_ENDPOINT_URL` and its per-service overrides, which the local stack uses to point
/// DynamoDB and the rest at different emulators.
#[derive(Debug, Clone)]
struct Endpoints {
    all: Option<String>,
    /// `(service id, url)`.
    services: Vec<(&'static str, String)>,
}

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        // The generated clients ask for nothing else; anything else is left to their defaults.
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        self.services
            .iter()
            .find(|(id, _)| *id == key.service_id())
            .map(|(_, url)| url.clone())
            .or_else(|| self.all.clone())
    }
}

impl AwsEnv {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&ProcessEnv)
    }

    pub fn from(env: &impl Env) -> Result<Self, ConfigError> {
        let credentials = Credentials::new(
            required(env, "AWS_ACCESS_KEY_ID")?,
            required(env, "AWS_SECRET_ACCESS_KEY")?,
            env.get("AWS_SESSION_TOKEN"),
            None,
            "lambda-environment",
        );
        let mut endpoints = Endpoints {
            all: http_url(env, "AWS_ENDPOINT_URL")?,
            services: Vec::new(),
        };
        for (service_id, name) in SERVICES {
            if let Some(found) = http_url(env, name)? {
                endpoints.services.push((service_id, found));
            }
        }
        // As the SDK's loader does: the variables are still checked, then set aside.
        if flag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")? {
            endpoints = Endpoints {
                all: None,
                services: Vec::new(),
            };
        }
        let app_name = env
            .get("AWS_SDK_UA_APP_ID")
            .map(|raw| {
                AppName::new(raw.trim().to_owned()).map_err(|e| ConfigError::Invalid {
                    name: "AWS_SDK_UA_APP_ID",
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(Self {
            region: Region::new(required(env, "AWS_REGION")?),
            credentials,
            endpoints,
            retry: retry(env)?,
            use_fips: flag(env, "AWS_USE_FIPS_ENDPOINT")?,
            use_dual_stack: flag(env, "AWS_USE_DUALSTACK_ENDPOINT")?,
            app_name,
            tls_roots: TlsRoots::from(env)?,
        })
    }

    /// The configuration every client of the function is built from, over the one shared
    /// HTTPS client ([`crate::https`]). No I/O: the first request connects.
    pub fn sdk_config(&self) -> SdkConfig {
        let mut config = SdkConfig::builder();
        config.set_app_name(self.app_name.clone());
        config
            .behavior_version(BehaviorVersion::latest())
            .region(self.region.clone())
            .credentials_provider(SharedCredentialsProvider::new(self.credentials.clone()))
            .service_config(self.endpoints.clone())
            .retry_config(self.retry.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .use_fips(self.use_fips)
            .use_dual_stack(self.use_dual_stack)
            .http_client(crate::https::client(self.tls_roots))
            .build()
    }
}

fn flag(env: &impl Env, name: &'static str) -> Result<bool, ConfigError> {
    match env
        .get(name)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false, got {other:?}"),
        }),
    }
}

fn retry(env: &impl Env) -> Result<RetryConfig, ConfigError> {
    let config = match env.get("AWS_RETRY_MODE").as_deref().map(str::trim) {
        None | Some("standard") => RetryConfig::standard(),
        Some("adaptive") => RetryConfig::adaptive(),
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "AWS_RETRY_MODE",
                reason: format!("expected standard or adaptive, got {other:?}"),
            });
        }
    };
    match env.get("AWS_MAX_ATTEMPTS") {
        None => Ok(config),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(config.with_max_attempts(n)),
            _ => Err(ConfigError::Invalid {
                name: "AWS_MAX_ATTEMPTS",
                reason: format!("expected a positive number, got {raw:?}"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_credential_types::provider::ProvideCredentials;
    use aws_sdk_dynamodb::config::retry::RetryMode;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret-key"),
            ("AWS_SESSION_TOKEN", "not-a-real-session-token"),
        ])
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<AwsEnv, ConfigError> {
        let mut env = base();
        env.extend(extra.iter().copied());
        AwsEnv::from(&env)
    }

    fn endpoint_of(config: &SdkConfig, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        config.service_config()?.load_config(key)
    }

    #[test]
    fn each_missing_region_or_credentials_variable_is_named() {
        for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let mut env = base();
            env.remove(name);

            let got = AwsEnv::from(&env).map(drop);

            assert_eq!(got, Err(ConfigError::Missing(name)));
        }
    }

    #[test]
    fn a_session_token_is_optional() {
        let mut env = base();
        env.remove("AWS_SESSION_TOKEN");

        assert!(AwsEnv::from(&env).is_ok());
    }

    #[tokio::test]
    async fn the_clients_sign_with_the_environment_credentials_in_its_region() {
        let config = with(&[]).unwrap().sdk_config();

        let credentials = config
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();

        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "not-a-real-secret-key");
        assert_eq!(
            credentials.session_token(),
            Some("not-a-real-session-token")
        );
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }

    #[test]
    fn debug_output_shows_neither_the_secret_key_nor_the_session_token() {
        let shown = format!("{:?}", with(&[]).unwrap());

        assert!(!shown.contains("not-a-real-secret-key"), "{shown}");
        assert!(!shown.contains("not-a-real-session-token"), "{shown}");
    }

    #[test]
    fn a_service_endpoint_wins_over_the_global_one_for_that_service_only() {
        let config = with(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:5001"),
        ])
        .unwrap()
        .sdk_config();

        for (service_id, expected) in [
            ("DynamoDB", "http://127.0.0.1:8000"),
            ("Secrets Manager", "http://127.0.0.1:5001"),
            ("SESv2", "http://127.0.0.1:5000"),
            ("EventBridge", "http://127.0.0.1:5000"),
        ] {
            assert_eq!(
                endpoint_of(&config, service_id).as_deref(),
                Some(expected),
                "{service_id}"
            );
        }
    }

    #[test]
    fn without_endpoint_variables_the_clients_resolve_aws_endpoints() {
        let config = with(&[]).unwrap().sdk_config();

        assert_eq!(endpoint_of(&config, "DynamoDB"), None);
        assert_eq!(config.endpoint_url(), None);
    }

    #[test]
    fn malformed_settings_are_refused_with_their_name() {
        let cases: [(&str, &str); 6] = [
            ("AWS_ENDPOINT_URL", "127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_SESV2", "localhost"),
            ("AWS_MAX_ATTEMPTS", "0"),
            ("AWS_RETRY_MODE", "legacy"),
            ("AWS_USE_FIPS_ENDPOINT", "yes"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "1"),
        ];
        for (name, value) in cases {
            let got = with(&[(name, value)]).map(drop);

            assert!(
                matches!(got, Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={value:?}: {got:?}"
            );
        }
    }

    #[test]
    fn retry_and_endpoint_variants_are_carried_over() {
        let config = with(&[
            ("AWS_MAX_ATTEMPTS", "2"),
            ("AWS_RETRY_MODE", "adaptive"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "TRUE"),
        ])
        .unwrap()
        .sdk_config();

        let retry = config.retry_config().unwrap();
        assert_eq!(retry.max_attempts(), 2);
        assert_eq!(retry.mode(), RetryMode::Adaptive);
        assert_eq!(config.use_fips(), Some(true));
        assert_eq!(config.use_dual_stack(), Some(true));
    }

    #[test]
    fn ignoring_configured_endpoints_sends_every_client_to_aws() {
        let config = with(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ])
        .unwrap()
        .sdk_config();

        for (service_id, _) in SERVICES {
            assert_eq!(endpoint_of(&config, service_id), None, "{service_id}");
        }
    }

    #[test]
    fn the_app_id_goes_into_the_user_agent_and_a_malformed_one_is_named() {
        let config = with(&[("AWS_SDK_UA_APP_ID", "acme-latchkey")])
            .unwrap()
            .sdk_config();
        assert_eq!(
            config.app_name().map(|a| a.to_string()).as_deref(),
            Some("acme-latchkey")
        );
        assert_eq!(with(&[]).unwrap().sdk_config().app_name(), None);

        let refused = with(&[("AWS_SDK_UA_APP_ID", "has spaces")]).unwrap_err();
        assert!(
            matches!(
                refused,
                ConfigError::Invalid {
                    name: "AWS_SDK_UA_APP_ID",
                    ..
                }
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn the_default_retry_is_the_sdk_standard_one() {
        let config = with(&[]).unwrap().sdk_config();

        assert_eq!(config.retry_config(), Some(&RetryConfig::standard()));
        assert_eq!(
            config.timeout_config().and_then(|t| t.connect_timeout()),
            Some(CONNECT_TIMEOUT)
        );
    }
}
