//! Session tokens: HS256 JWTs with the algorithm pinned and `exp`, `iss`, `aud` checked.
//! `sv` is the account's version: moving it on the user item revokes every older token.
//! The header's `kid` names the key generation that signed the token ([`crate::secrets`]); a
//! token without one was signed before keyrings, by the legacy generation.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secrets::{Keyring, Keys, LEGACY_KID};

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
    #[error("token signed by a key this keyring does not hold")]
    UnknownKey,
}

/// The key id a token's header names (read before its signature is checked: it only picks the
/// key to check it with). `None` for text that is not a JWT.
pub fn kid_of(token: &str) -> Option<String> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    Some(header.kid.unwrap_or_else(|| LEGACY_KID.to_owned()))
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
    let ring = keys.current();
    let signer = ring.signer();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(signer.kid().to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&signer.session))
        .map_err(SessionError::Encode)?;
    Ok((token, exp))
}

/// Verifies `token` with the keyring this instance holds now; see [`verify_with`].
pub fn verify(keys: &Keys, token: &str) -> Result<Claims, SessionError> {
    verify_with(&keys.current(), token)
}

/// Verifies `token` with the generation of `ring` its header names.
pub fn verify_with(ring: &Keyring, token: &str) -> Result<Claims, SessionError> {
    let kid = kid_of(token).ok_or(SessionError::UnknownKey)?;
    let generation = ring.get(&kid).ok_or(SessionError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 5;
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(&generation.session),
        &validation,
    )
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
    fn a_token_names_its_generation_and_verifies_after_a_rotation_until_that_one_is_dropped() {
        let now = Utc::now();
        let minute = Duration::from_secs(60);
        let first = crate::secrets::Keyring::generate(now);
        let (token, _) = issue(&Keys::fixed(first.clone()), "u1", "acme", 1, now, minute).unwrap();
        assert_eq!(kid_of(&token).as_deref(), Some(first.signer().kid()));

        let second = first.rotated(now, minute).unwrap();
        assert!(
            verify_with(&second, &token).is_ok(),
            "the previous generation is kept"
        );
        let (newer, _) = issue(&Keys::fixed(second.clone()), "u1", "acme", 1, now, minute).unwrap();
        assert_eq!(kid_of(&newer).as_deref(), Some(second.signer().kid()));
        assert!(
            verify_with(&first, &newer).is_err(),
            "unknown to an older keyring"
        );

        let later = now + chrono::Duration::minutes(5);
        let third = second.rotated(later, minute).unwrap();
        assert!(third.get(first.signer().kid()).is_none());
        assert!(matches!(
            verify_with(&third, &token),
            Err(SessionError::UnknownKey)
        ));
    }

    #[test]
    fn a_token_without_a_kid_is_checked_with_the_legacy_generation_only() {
        let master = b"0123456789abcdef0123456789abcdef";
        let legacy = Keys::derive(master);
        let claims = Claims {
            sub: "u".into(),
            tid: "t".into(),
            sv: 0,
            iat: Utc::now().timestamp(),
            exp: Utc::now().timestamp() + 600,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        // What the code before keyrings issued: no kid, the derived key.
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&legacy.current().signer().session),
        )
        .unwrap();
        let rotated = legacy
            .current()
            .rotated(Utc::now(), Duration::from_secs(60))
            .unwrap();
        assert!(verify_with(&rotated, &old).is_ok());
        assert!(verify_with(&crate::secrets::Keyring::generate(Utc::now()), &old).is_err());
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
                &EncodingKey::from_secret(&keys().current().signer().session),
            )
            .unwrap();
            assert!(verify(&keys(), &token).is_err());
        }
    }
}
