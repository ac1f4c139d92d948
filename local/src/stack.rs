//! What every local stack (`dev`, `test-env`, each test's `TestStack`) prepares before its
//! functions start: the resources on the emulators and the environment the functions get.
//! One place, so the three cannot drift apart.

use anyhow::{Context, Result};
use tracing::debug;

use crate::setup::{Aws, Endpoints, default_credentials_env};
use crate::template::Template;

/// Settings the functions need and their local defaults.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("SENDER_EMAIL", "no-reply@latchkey.test"),
    ("PUBLIC_DOMAIN", "latchkey.test"),
    ("UPLOAD_BUCKET", "latchkey-uploads"),
    ("BOOTSTRAP_ADMIN_EMAIL", "admin@latchkey.test"),
    ("BOOTSTRAP_ADMIN_PASSWORD", "correct-horse-battery-staple"),
];

/// Name of the secret holding the JWT signing key.
pub const JWT_SECRET_NAME: &str = "latchkey/jwt";

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Override,
    Environment,
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Override => "override",
            Self::Environment => "environment",
            Self::Default => "default",
        })
    }
}

/// A setting: the last override, else this process's environment, else [`DEFAULTS`].
pub fn setting(overrides: &[(String, String)], name: &str) -> Option<(String, Source)> {
    if let Some((_, value)) = overrides.iter().rev().find(|(n, _)| n == name) {
        return Some((value.clone(), Source::Override));
    }
    if let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        return Some((value, Source::Environment));
    }
    DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| ((*v).to_owned(), Source::Default))
}

/// The outcome of [`prepare`].
#[derive(Debug, Clone)]
pub struct Prepared {
    /// For every function, on top of this process's environment.
    pub env: Vec<(String, String)>,
    /// `Some("PUBLIC_BASE_URL")` when that is not set: the gateway sets it to its own URL.
    pub url_env: Option<String>,
    pub admin_email: (String, Source),
    pub admin_password: (String, Source),
    pub sender_email: String,
    pub upload_bucket: String,
    pub jwt_secret_arn: String,
}

/// Creates table `table` from the template, the upload bucket, the SES sender (unless it is
/// an override: tests use that to try an unverified sender) and the JWT secret, and returns
/// the functions' environment (`overrides` last).
pub async fn prepare(
    aws: &Aws,
    endpoints: &Endpoints,
    template: &Template,
    table: &str,
    overrides: &[(String, String)],
) -> Result<Prepared> {
    let get = |name: &str| setting(overrides, name).with_context(|| format!("{name} has no value"));
    let (sender_email, sender_source) = get("SENDER_EMAIL")?;
    let (upload_bucket, _) = get("UPLOAD_BUCKET")?;
    let spec = template
        .table
        .as_ref()
        .context("the template has no AWS::DynamoDB::Table")?;
    let jwt_secret = async {
        match setting(overrides, "JWT_SECRET_ARN") {
            Some((arn, _)) => Ok(arn),
            None => aws.ensure_secret(JWT_SECRET_NAME).await,
        }
    };
    let sender = async {
        if sender_source == Source::Override {
            debug!("not verifying {sender_email}: it is an override");
            Ok(())
        } else {
            aws.ensure_sender_identity(&sender_email).await
        }
    };
    let (jwt_secret_arn, (), (), (), ()) = tokio::try_join!(
        jwt_secret,
        sender,
        aws.create_table(table, spec),
        aws.ensure_bucket(&upload_bucket),
        aws.ensure_event_archive()
    )?;

    let mut env = endpoints.env();
    env.extend(default_credentials_env());
    env.push(("TABLE_NAME".into(), table.to_owned()));
    env.push(("JWT_SECRET_ARN".into(), jwt_secret_arn.clone()));
    for (name, _) in DEFAULTS {
        env.push(((*name).to_owned(), get(name)?.0));
    }
    env.extend(overrides.iter().cloned());
    let url_env = setting(overrides, "PUBLIC_BASE_URL")
        .is_none()
        .then(|| "PUBLIC_BASE_URL".to_owned());
    Ok(Prepared {
        env,
        url_env,
        admin_email: get("BOOTSTRAP_ADMIN_EMAIL")?,
        admin_password: get("BOOTSTRAP_ADMIN_PASSWORD")?,
        sender_email,
        upload_bucket,
        jwt_secret_arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_defaults() {
        let overrides = vec![
            ("PUBLIC_DOMAIN".to_owned(), "a.test".to_owned()),
            ("PUBLIC_DOMAIN".to_owned(), "b.test".to_owned()),
        ];
        assert_eq!(
            setting(&overrides, "PUBLIC_DOMAIN"),
            Some(("b.test".into(), Source::Override))
        );
        assert_eq!(setting(&[], "LATCHKEY_SURELY_UNSET_VARIABLE"), None);
    }
}
