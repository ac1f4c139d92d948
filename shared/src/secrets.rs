//! Key material. One secret (Secrets Manager, fetched once at cold start) is split into
//! independent keys by HMAC with a purpose label, so a JWT key can never verify a token hash.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Keys {
    pub(crate) jwt: [u8; 32],
    pub(crate) token: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading secret {arn} failed: {detail}")]
    Fetch { arn: String, detail: String },
    #[error("secret {0} has no string value")]
    Empty(String),
    #[error("secret {0} is shorter than 32 characters")]
    TooShort(String),
}

impl Keys {
    pub fn derive(master: &[u8]) -> Self {
        Self {
            jwt: derive(master, b"latchkey/jwt/v1"),
            token: derive(master, b"latchkey/token/v1"),
        }
    }

    pub async fn fetch(
        client: &aws_sdk_secretsmanager::Client,
        arn: &str,
    ) -> Result<Self, SecretError> {
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| SecretError::Fetch {
                arn: arn.to_owned(),
                detail: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let value = out
            .secret_string()
            .ok_or_else(|| SecretError::Empty(arn.to_owned()))?;
        if value.len() < 32 {
            return Err(SecretError::TooShort(arn.to_owned()));
        }
        Ok(Self::derive(value.as_bytes()))
    }
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(master).expect("HMAC accepts keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(&(part.len() as u32).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}
