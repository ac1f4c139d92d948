//! Session tokens: HS256 JWTs with the algorithm pinned and `exp`, `iss`, `aud` checked.
//! `sv` is the user's session version: bumping it on the user item revokes every older token.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secrets::Keys;

pub const ISSUER: &str = "latchkey";
pub const AUDIENCE: &str = "latchkey-api";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub tid: String,
    pub sv: u64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("token encoding failed: {0}")]
    Encode(jsonwebtoken::errors::Error),
    #[error("token rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
}

pub fn issue(
    keys: &Keys,
    user_id: &str,
    tenant: &str,
    session_version: u64,
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> Result<(String, DateTime<Utc>), SessionError> {
    let exp = crate::store::items::after(now, ttl);
    let claims = Claims {
        sub: user_id.to_owned(),
        tid: tenant.to_owned(),
        sv: session_version,
        iat: now.timestamp(),
        exp: exp.timestamp(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&keys.jwt),
    )
    .map_err(SessionError::Encode)?;
    Ok((token, exp))
}

pub fn verify(keys: &Keys, token: &str) -> Result<Claims, SessionError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 5;
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&keys.jwt), &validation)
        .map(|data| data.claims)
        .map_err(SessionError::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys() -> Keys {
        Keys::derive(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let (token, _) = issue(
            &keys(),
            "u1",
            "acme",
            3,
            Utc::now(),
            Duration::from_secs(60),
        )
        .unwrap();
        let claims = verify(&keys(), &token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.tid.as_str(), claims.sv),
            ("u1", "acme", 3)
        );
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let past = Utc::now() - chrono::Duration::hours(2);
        let (token, _) = issue(&keys(), "u1", "acme", 0, past, Duration::from_secs(60)).unwrap();
        assert!(verify(&keys(), &token).is_err());
    }

    #[test]
    fn tokens_signed_with_another_key_are_rejected() {
        let other = Keys::derive(b"another-master-secret-of-32-bytes!!");
        let (token, _) =
            issue(&other, "u1", "acme", 0, Utc::now(), Duration::from_secs(60)).unwrap();
        assert!(verify(&keys(), &token).is_err());
    }

    #[test]
    fn unsigned_and_other_algorithm_tokens_are_rejected() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = format!(
            r#"{{"sub":"u1","tid":"admin","sv":0,"iat":0,"exp":{},"iss":"latchkey","aud":"latchkey-api"}}"#,
            Utc::now().timestamp() + 600
        );
        for alg in ["none", "HS512", "RS256"] {
            let header = b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let token = format!("{header}.{}.", b64.encode(&claims));
            assert!(verify(&keys(), &token).is_err(), "{alg}");
        }
    }

    #[test]
    fn wrong_audience_or_issuer_is_rejected() {
        let now = Utc::now().timestamp();
        for (iss, aud) in [("someone-else", AUDIENCE), (ISSUER, "other-api")] {
            let claims = Claims {
                sub: "u".into(),
                tid: "t".into(),
                sv: 0,
                iat: now,
                exp: now + 600,
                iss: iss.into(),
                aud: aud.into(),
            };
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&keys().jwt),
            )
            .unwrap();
            assert!(verify(&keys(), &token).is_err());
        }
    }
}
