//! The key rotation, as Secrets Manager runs it: the `rotate-keys` function is called once per
//! step with `{"Step", "SecretId", "ClientRequestToken"}`, the token naming the new version.
//!
//! - `createSecret`: the new version (`AWSPENDING`) is the current keyring rotated: a new
//!   generation in front, the generations still needed behind it ([`Keyring::rotated`]).
//! - `setSecret`: nothing; the functions read the keyring themselves.
//! - `testSecret`: the pending keyring must be a rotation of the current one that ends nothing
//!   ([`Keyring::check_rotation_of`]), and its new key must sign a session it then verifies.
//! - `finishSecret`: `AWSCURRENT` moves to the new version (Secrets Manager moves `AWSPREVIOUS`
//!   to the old one) and `AWSPENDING` is removed.
//!
//! Every step is idempotent: Secrets Manager retries a failed step, and a step of a version that
//! is already current does nothing. A failed step leaves the current keyring in use; the
//! function's error alarm tells the operator.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde::{Deserialize, Serialize};

use crate::config::KeyLifetimes;
use crate::secrets::{Keyring, KeyringError, Keys};
use crate::store::items::now;

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RotationEvent {
    #[serde(rename = "Step")]
    pub step: Step,
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("secrets manager {operation} failed: {detail}")]
    Service {
        operation: &'static str,
        detail: String,
    },
    #[error("version {token} of the secret is not pending rotation (stages: {stages:?})")]
    NotPending { token: String, stages: Vec<String> },
    #[error("the {0} version of the secret has no string value")]
    Empty(&'static str),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("the new key does not verify what it signs: {0}")]
    Unusable(String),
}

fn service(operation: &'static str, err: impl std::error::Error) -> RotationError {
    RotationError::Service {
        operation,
        detail: DisplayErrorContext(err).to_string(),
    }
}

/// What a step did, for the log and the invoker (never key material: key ids only).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub step: Step,
    pub version: String,
    /// What happened: `created`, `already_created`, `nothing_to_set`, `tested`, `finished`,
    /// `already_current`.
    pub result: &'static str,
    /// The key ids of the version the step worked on, newest first, where it read them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kids: Vec<String>,
}

pub struct Rotation {
    client: Client,
    lifetimes: KeyLifetimes,
}

impl Rotation {
    pub fn new(client: Client, lifetimes: KeyLifetimes) -> Self {
        Self { client, lifetimes }
    }

    fn retention(&self) -> Duration {
        self.lifetimes.retention()
    }

    /// Runs one step and logs what it did (key ids only).
    pub async fn run(&self, event: &RotationEvent) -> Result<Outcome, RotationError> {
        let outcome = self.step(event).await;
        match &outcome {
            Ok(done) => {
                tracing::info!(step = ?event.step, version = %event.token, result = done.result, kids = ?done.kids, "key rotation step")
            }
            Err(e) => {
                tracing::error!(step = ?event.step, version = %event.token, error = %e, "key rotation step failed")
            }
        }
        outcome
    }

    async fn step(&self, event: &RotationEvent) -> Result<Outcome, RotationError> {
        let stages = self.stages(&event.secret_id).await?;
        let of_token = stages
            .iter()
            .find(|(version, _)| *version == event.token)
            .map(|(_, s)| s.clone());
        let outcome = |result, kids: Vec<String>| Outcome {
            step: event.step,
            version: event.token.clone(),
            result,
            kids,
        };
        if of_token
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == CURRENT))
        {
            return Ok(outcome("already_current", vec![]));
        }
        // Secrets Manager creates the version (staged AWSPENDING, no value) before the first
        // step; createSecret also accepts a token it has not seen and creates it.
        let pending = of_token
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == PENDING));
        if !pending && (event.step != Step::CreateSecret || of_token.is_some()) {
            return Err(RotationError::NotPending {
                token: event.token.clone(),
                stages: of_token.unwrap_or_default(),
            });
        }
        let kids = |ring: &Keyring| ring.kids().map(str::to_owned).collect();
        match event.step {
            Step::CreateSecret => {
                if let Some(ring) = self.pending(event).await? {
                    return Ok(outcome("already_created", kids(&ring)));
                }
                let current = self.current(&event.secret_id).await?;
                let rotated = current.rotated(now(), self.retention())?;
                self.client
                    .put_secret_value()
                    .secret_id(&event.secret_id)
                    .client_request_token(&event.token)
                    .secret_string(rotated.to_secret_string())
                    .version_stages(PENDING)
                    .send()
                    .await
                    .map_err(|e| service("PutSecretValue", e))?;
                Ok(outcome("created", kids(&rotated)))
            }
            Step::SetSecret => Ok(outcome("nothing_to_set", vec![])),
            Step::TestSecret => {
                let current = self.current(&event.secret_id).await?;
                let pending = self
                    .pending(event)
                    .await?
                    .ok_or(RotationError::Empty(PENDING))?;
                pending.check_rotation_of(&current, now(), self.retention())?;
                usable(&pending)?;
                Ok(outcome("tested", kids(&pending)))
            }
            Step::FinishSecret => {
                let current_version = stages
                    .iter()
                    .find(|(_, s)| s.iter().any(|s| s == CURRENT))
                    .map(|(v, _)| v.clone());
                let mut moving = self
                    .client
                    .update_secret_version_stage()
                    .secret_id(&event.secret_id)
                    .version_stage(CURRENT)
                    .move_to_version_id(&event.token);
                if let Some(current_version) = current_version {
                    moving = moving.remove_from_version_id(current_version);
                }
                moving
                    .send()
                    .await
                    .map_err(|e| service("UpdateSecretVersionStage", e))?;
                self.client
                    .update_secret_version_stage()
                    .secret_id(&event.secret_id)
                    .version_stage(PENDING)
                    .remove_from_version_id(&event.token)
                    .send()
                    .await
                    .map_err(|e| service("UpdateSecretVersionStage", e))?;
                Ok(outcome("finished", vec![]))
            }
        }
    }

    /// Every version of the secret with its staging labels.
    async fn stages(&self, secret: &str) -> Result<Vec<(String, Vec<String>)>, RotationError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| service("DescribeSecret", e))?;
        Ok(described
            .version_ids_to_stages()
            .map(|m| m.iter().map(|(v, s)| (v.clone(), s.clone())).collect())
            .unwrap_or_default())
    }

    async fn current(&self, secret: &str) -> Result<Keyring, RotationError> {
        let value = self
            .client
            .get_secret_value()
            .secret_id(secret)
            .version_stage(CURRENT)
            .send()
            .await
            .map_err(|e| service("GetSecretValue", e))?;
        let value = value.secret_string().ok_or(RotationError::Empty(CURRENT))?;
        Ok(Keyring::parse(value)?)
    }

    /// The pending version's keyring, or `None` while it has no value yet.
    async fn pending(&self, event: &RotationEvent) -> Result<Option<Keyring>, RotationError> {
        let read = self
            .client
            .get_secret_value()
            .secret_id(&event.secret_id)
            .version_id(&event.token)
            .version_stage(PENDING)
            .send()
            .await;
        match read {
            Ok(out) => match out.secret_string() {
                Some(value) => Ok(Some(Keyring::parse(value)?)),
                None => Ok(None),
            },
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(service("GetSecretValue", e)),
        }
    }
}

/// The new generation signs a session that the pending keyring verifies.
fn usable(pending: &Keyring) -> Result<(), RotationError> {
    let keys = Keys::fixed(pending.clone());
    let (token, _) = crate::session::issue(
        &keys,
        "rotation-test",
        "admin",
        0,
        chrono::Utc::now(),
        Duration::from_secs(60),
    )
    .map_err(|e| RotationError::Unusable(e.to_string()))?;
    crate::session::verify_with(pending, &token)
        .map(|_| ())
        .map_err(|e| RotationError::Unusable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_secrets_manager_sends_are_read() {
        for (raw, step) in [
            ("createSecret", Step::CreateSecret),
            ("setSecret", Step::SetSecret),
            ("testSecret", Step::TestSecret),
            ("finishSecret", Step::FinishSecret),
        ] {
            let event: RotationEvent = serde_json::from_value(serde_json::json!({
                "Step": raw,
                "SecretId": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf",
                "ClientRequestToken": "0c7a3d2e-7a8b-4b5c-9d1e-2f3a4b5c6d7e",
            }))
            .unwrap();
            assert_eq!(event.step, step);
        }
        assert!(
            serde_json::from_value::<RotationEvent>(serde_json::json!({
                "Step": "dropSecret", "SecretId": "s", "ClientRequestToken": "t"
            }))
            .is_err()
        );
    }

    #[test]
    fn a_fresh_keyring_is_usable() {
        usable(&Keyring::generate(now())).unwrap();
    }
}
