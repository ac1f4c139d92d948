//! Typed configuration, read once at cold start. A missing or malformed variable stops the
//! function at init with a message that names it, instead of failing on the first request.

use std::collections::HashMap;
use std::time::Duration;

use crate::aws::AwsEnv;
use crate::domain::{Email, TenantId};

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub sender_email: Email,
    pub links: LinkBase,
    pub jwt_secret_arn: String,
    pub invite_ttl: Duration,
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    pub session_ttl: Duration,
    /// How old the cached keyring may grow before it is read again (`KEYRING_REFRESH_SECONDS`,
    /// default 300): how soon after a key rotation warm instances sign with the new key.
    pub keyring_refresh: Duration,
    /// Invitation mails one tenant may trigger per hour (protects inboxes and SES quota).
    pub invite_mail_per_hour: u32,
    /// SES configuration set every mail is sent with (`SES_CONFIGURATION_SET`): its events
    /// feed the delivery status. Unset locally (moto has no event publishing).
    pub ses_configuration_set: Option<String>,
    /// EventBridge bus of the lifecycle events (`EVENT_BUS_NAME`, default `default`).
    pub event_bus: String,
    /// Proxies in front of API Gateway that append the caller to X-Forwarded-For
    /// (`TRUSTED_PROXY_COUNT`, default 0): how far back the limits per source look for the
    /// caller. See [`crate::http::source_network`].
    pub trusted_proxies: u8,
    /// Region, credentials, endpoints and trust store of the AWS clients.
    pub aws: AwsEnv,
}

/// Which roots the AWS clients' TLS trusts (`TLS_ROOTS`, `aws` or `native`): see
/// [`crate::https`] for why the default is Amazon Trust Services only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    #[default]
    Aws,
    Native,
}

impl TlsRoots {
    pub fn from(env: &impl Env) -> Result<Self, ConfigError> {
        match env.get("TLS_ROOTS").as_deref().map(str::trim) {
            None | Some("aws") => Ok(Self::Aws),
            Some("native") => Ok(Self::Native),
            Some(other) => Err(ConfigError::Invalid {
                name: "TLS_ROOTS",
                reason: format!("expected aws or native, got {other:?}"),
            }),
        }
    }
}

/// Where links in mail point: each tenant's own host, or one fixed base locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkBase {
    PerTenant { domain: String },
    Fixed(String),
}

impl LinkBase {
    pub fn for_tenant(&self, tenant: &TenantId) -> String {
        match self {
            Self::PerTenant { domain } => format!("https://{tenant}.{domain}"),
            Self::Fixed(base) => base.trim_end_matches('/').to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where variables come from: the process environment in functions, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

pub(crate) fn required(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    env.get(name).ok_or(ConfigError::Missing(name))
}

/// An optional variable that, when set, must be an http:// or https:// URL.
pub(crate) fn http_url(env: &impl Env, name: &'static str) -> Result<Option<String>, ConfigError> {
    match env.get(name) {
        Some(raw) if !(raw.starts_with("http://") || raw.starts_with("https://")) => {
            Err(ConfigError::Invalid {
                name,
                reason: format!("must start with http:// or https://, got {raw:?}"),
            })
        }
        found => Ok(found),
    }
}

fn seconds(env: &impl Env, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match env.get(name) {
        None => Ok(Duration::from_secs(default)),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!("expected a positive number of seconds, got {raw:?}"),
            }),
        },
    }
}

/// Settings of the CSV import (the `imports` and `csv-import` functions).
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// `UPLOAD_BUCKET`: where files are uploaded and reports written.
    pub bucket: String,
    /// `IMPORT_MAX_BYTES` (default 128 MiB): larger files fail the import.
    pub max_bytes: u64,
    /// `IMPORT_LEASE_SECONDS` (default 120): how long a worker holds an import between
    /// checkpoints; a worker that died is taken over after this.
    pub lease: Duration,
    /// `IMPORT_RESERVE_SECONDS` (default 60): when less than this is left of the invocation,
    /// the import checkpoints and continues in a new one.
    pub reserve: Duration,
}

impl ImportConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&ProcessEnv)
    }

    pub fn from(env: &impl Env) -> Result<Self, ConfigError> {
        let max_bytes =
            match env.get("IMPORT_MAX_BYTES") {
                None => 128 * 1024 * 1024,
                Some(raw) => raw.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ConfigError::Invalid {
                        name: "IMPORT_MAX_BYTES",
                        reason: format!("expected a positive number of bytes, got {raw:?}"),
                    }
                })?,
            };
        Ok(Self {
            bucket: required(env, "UPLOAD_BUCKET")?,
            max_bytes,
            lease: seconds(env, "IMPORT_LEASE_SECONDS", 120)?,
            reserve: seconds(env, "IMPORT_RESERVE_SECONDS", 60)?,
        })
    }
}

fn keyring_refresh(env: &impl Env) -> Result<Duration, ConfigError> {
    seconds(env, "KEYRING_REFRESH_SECONDS", 300)
}

/// What the key rotation needs to know (the `rotate-keys` function): how long the longest-lived
/// session or link lasts, and how often warm instances read the keyring again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLifetimes {
    pub longest: Duration,
    pub refresh: Duration,
}

impl KeyLifetimes {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&ProcessEnv)
    }

    /// From the same variables (and defaults) as [`Config`].
    pub fn from(env: &impl Env) -> Result<Self, ConfigError> {
        let lifetimes = [
            seconds(env, "INVITE_TTL_SECONDS", 7 * 24 * 3600)?,
            seconds(env, "RESET_TTL_SECONDS", 3600)?,
            seconds(env, "VERIFY_TTL_SECONDS", 24 * 3600)?,
            seconds(env, "SESSION_TTL_SECONDS", 3600)?,
        ];
        Ok(Self {
            longest: lifetimes.into_iter().max().unwrap_or_default(),
            refresh: keyring_refresh(env)?,
        })
    }

    /// How long a key generation is kept after it stops signing.
    pub fn retention(&self) -> Duration {
        crate::secrets::retention(self.longest, self.refresh)
    }
}

/// The EventBridge bus lifecycle events go to: `EVENT_BUS_NAME`, else the default bus.
pub fn event_bus(env: &impl Env) -> String {
    env.get("EVENT_BUS_NAME")
        .unwrap_or_else(|| "default".to_owned())
}

/// For functions that need only the table (the sweep): no secret, no mail settings.
pub fn table_name() -> Result<String, ConfigError> {
    required(&ProcessEnv, "TABLE_NAME")
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&ProcessEnv)
    }

    pub fn from(env: &impl Env) -> Result<Self, ConfigError> {
        let sender_raw = required(env, "SENDER_EMAIL")?;
        let sender_email = Email::parse(&sender_raw).map_err(|e| ConfigError::Invalid {
            name: "SENDER_EMAIL",
            reason: e.to_string(),
        })?;
        let links = match (http_url(env, "PUBLIC_BASE_URL")?, env.get("PUBLIC_DOMAIN")) {
            (Some(base), _) => LinkBase::Fixed(base),
            (None, Some(domain)) => LinkBase::PerTenant {
                domain: domain.trim_matches('.').to_owned(),
            },
            (None, None) => return Err(ConfigError::Missing("PUBLIC_DOMAIN")),
        };
        let invite_mail_per_hour = match env.get("INVITE_MAIL_PER_HOUR") {
            None => 1000,
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "INVITE_MAIL_PER_HOUR",
                reason: format!("expected a number, got {raw:?}"),
            })?,
        };
        Ok(Self {
            table_name: required(env, "TABLE_NAME")?,
            sender_email,
            links,
            jwt_secret_arn: required(env, "JWT_SECRET_ARN")?,
            invite_ttl: seconds(env, "INVITE_TTL_SECONDS", 7 * 24 * 3600)?,
            reset_ttl: seconds(env, "RESET_TTL_SECONDS", 3600)?,
            verify_ttl: seconds(env, "VERIFY_TTL_SECONDS", 24 * 3600)?,
            session_ttl: seconds(env, "SESSION_TTL_SECONDS", 3600)?,
            keyring_refresh: keyring_refresh(env)?,
            invite_mail_per_hour,
            ses_configuration_set: env.get("SES_CONFIGURATION_SET"),
            event_bus: event_bus(env),
            trusted_proxies: trusted_proxies(env)?,
            aws: AwsEnv::from(env)?,
        })
    }
}

/// The most proxies `TRUSTED_PROXY_COUNT` may name: CloudFront with a WAF or a corporate
/// gateway is one or two, and a longer chain is more likely a mistake than a design.
pub const MAX_TRUSTED_PROXIES: u8 = 5;

fn trusted_proxies(env: &impl Env) -> Result<u8, ConfigError> {
    match env.get("TRUSTED_PROXY_COUNT") {
        None => Ok(0),
        Some(raw) => raw
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= MAX_TRUSTED_PROXIES)
            .ok_or_else(|| ConfigError::Invalid {
                name: "TRUSTED_PROXY_COUNT",
                reason: format!("expected a number from 0 to {MAX_TRUSTED_PROXIES}, got {raw:?}"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TABLE_NAME", "t"),
            ("SENDER_EMAIL", "no-reply@example.com"),
            ("PUBLIC_DOMAIN", "example.com"),
            ("JWT_SECRET_ARN", "arn:secret"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ])
    }

    /// One setting read with `name` set to `value` (or left unset), or the variable refused.
    fn read_with<T>(
        name: &'static str,
        value: Option<&'static str>,
        setting: impl FnOnce(&Config) -> T,
    ) -> Result<T, &'static str> {
        let mut env = base();
        if let Some(value) = value {
            env.insert(name, value);
        }
        Config::from(&env)
            .map(|c| setting(&c))
            .map_err(|e| match e {
                ConfigError::Invalid { name, .. } | ConfigError::Missing(name) => name,
            })
    }

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let config = Config::from(&base()).unwrap();
        assert_eq!(config.invite_ttl, Duration::from_secs(604_800));
        assert_eq!(config.reset_ttl, Duration::from_secs(3600));
        assert_eq!(
            config.links.for_tenant(&TenantId::parse("acme").unwrap()),
            "https://acme.example.com"
        );
    }

    #[test]
    fn each_missing_variable_is_named() {
        for name in [
            "TABLE_NAME",
            "SENDER_EMAIL",
            "JWT_SECRET_ARN",
            "PUBLIC_DOMAIN",
        ] {
            let mut env = base();
            env.remove(name);
            assert_eq!(Config::from(&env).unwrap_err(), ConfigError::Missing(name));
        }
    }

    #[test]
    fn malformed_ttl_is_refused_with_its_name() {
        let mut env = base();
        env.insert("INVITE_TTL_SECONDS", "soon");
        assert!(matches!(
            Config::from(&env),
            Err(ConfigError::Invalid {
                name: "INVITE_TTL_SECONDS",
                ..
            })
        ));
    }

    #[test]
    fn a_key_generation_is_kept_for_the_longest_lifetime_and_two_refreshes() {
        let defaults = KeyLifetimes::from(&base()).unwrap();
        assert_eq!(
            defaults.longest,
            Duration::from_secs(604_800),
            "invitations, 7 days"
        );
        assert_eq!(defaults.retention(), Duration::from_secs(604_800 + 600));
        let mut env = base();
        env.insert("INVITE_TTL_SECONDS", "60");
        env.insert("SESSION_TTL_SECONDS", "90000");
        env.insert("KEYRING_REFRESH_SECONDS", "1");
        let short = KeyLifetimes::from(&env).unwrap();
        assert_eq!(short.retention(), Duration::from_secs(90_002));
    }

    #[test]
    fn public_base_url_overrides_per_tenant_hosts() {
        let mut env = base();
        env.insert("PUBLIC_BASE_URL", "http://127.0.0.1:9000/");
        let config = Config::from(&env).unwrap();
        assert_eq!(
            config.links.for_tenant(&TenantId::admin()),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn trusted_proxies_default_to_none_and_are_bounded() {
        let cases = [
            (None, Ok(0)),
            (Some("0"), Ok(0)),
            (Some(" 1 "), Ok(1)),
            (Some("5"), Ok(5)),
            (Some("6"), Err("TRUSTED_PROXY_COUNT")),
            (Some("-1"), Err("TRUSTED_PROXY_COUNT")),
            (Some("one"), Err("TRUSTED_PROXY_COUNT")),
        ];
        for (value, expected) in cases {
            let got = read_with("TRUSTED_PROXY_COUNT", value, |c| c.trusted_proxies);
            assert_eq!(got, expected, "TRUSTED_PROXY_COUNT={value:?}");
        }
    }

    #[test]
    fn tls_roots_default_to_aws_and_accept_only_the_two_names() {
        let cases = [
            (None, Ok(TlsRoots::Aws)),
            (Some("aws"), Ok(TlsRoots::Aws)),
            (Some(" native "), Ok(TlsRoots::Native)),
            (Some("system"), Err("TLS_ROOTS")),
            (Some(""), Err("TLS_ROOTS")),
        ];
        for (value, expected) in cases {
            let got = read_with("TLS_ROOTS", value, |c| c.aws.tls_roots);
            assert_eq!(got, expected, "TLS_ROOTS={value:?}");
        }
    }
}
