//! Single-use link tokens (invite, reset, verify).
//!
//! A token is `<user id>.<256 random bits>`. Only a keyed hash of it is stored, on the user's
//! own item, one slot per purpose: issuing a new token overwrites the slot (older links die),
//! spending it removes the slot in the same conditional write that changes the user.

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::domain::UserId;
use crate::encoding::{b64url, b64url_decode};
use crate::secrets::{Keys, hmac};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Invite,
    Reset,
    Verify,
    EmailChange,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Invite => b"invite",
            Self::Reset => b"reset",
            Self::Verify => b"verify",
            Self::EmailChange => b"email-change",
        }
    }
}

/// The secret handed to a person, only ever in a link fragment or a copyable URL.
pub struct LinkToken {
    user: UserId,
    secret: [u8; 32],
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkToken({}.<redacted>)", self.user)
    }
}

/// What the store keeps: a keyed hash, useless to anyone who reads the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a stored hash.
    pub fn matches(&self, stored: Option<&str>) -> bool {
        stored.is_some_and(|s| s.as_bytes().ct_eq(self.0.as_bytes()).into())
    }
}

/// What a presented token means for one purpose's slot on a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// It is the current token and has not expired: it may be spent.
    Live,
    Expired,
    /// It was the token of this slot and has been spent.
    Used,
    /// Never issued, or superseded by a newer one.
    Unknown,
}

/// Classifies a token against a slot (current hash, its expiry, the last spent hash).
pub fn slot_state(
    hash: &TokenHash,
    current: Option<&str>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    spent: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> SlotState {
    if hash.matches(spent) {
        SlotState::Used
    } else if !hash.matches(current) {
        SlotState::Unknown
    } else if expires_at.is_none_or(|at| at <= now) {
        SlotState::Expired
    } else {
        SlotState::Live
    }
}

impl LinkToken {
    pub fn generate(user: &UserId) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self {
            user: user.clone(),
            secret,
        }
    }

    /// Parses the exact shape `generate` produces; anything else is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (user, secret) = raw.trim().split_once('.')?;
        let user = UserId::parse(user)?;
        if secret.len() != 43 {
            return None;
        }
        let bytes = b64url_decode(secret)?;
        let secret: [u8; 32] = bytes.try_into().ok()?;
        Some(Self { user, secret })
    }

    pub fn user_id(&self) -> &UserId {
        &self.user
    }

    pub fn hash(&self, keys: &Keys, purpose: Purpose) -> TokenHash {
        let mac = hmac(
            &keys.token,
            &[purpose.label(), self.user.as_str().as_bytes(), &self.secret],
        );
        TokenHash(b64url(&mac))
    }

    /// The text that goes into a link. Call only where the link is built.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.user, b64url(&self.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::derive(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_round_trips_and_hashes_the_same() {
        let token = LinkToken::generate(&UserId::generate());
        let parsed = LinkToken::parse(&token.expose()).unwrap();
        assert_eq!(
            token.hash(&keys(), Purpose::Invite),
            parsed.hash(&keys(), Purpose::Invite)
        );
    }

    #[test]
    fn the_hash_depends_on_purpose_and_key() {
        let token = LinkToken::generate(&UserId::generate());
        assert_ne!(
            token.hash(&keys(), Purpose::Invite),
            token.hash(&keys(), Purpose::Reset)
        );
        let other = Keys::derive(b"another-master-secret-of-32-bytes!!");
        assert_ne!(
            token.hash(&keys(), Purpose::Invite),
            token.hash(&other, Purpose::Invite)
        );
    }

    #[test]
    fn the_hash_never_contains_the_secret() {
        let token = LinkToken::generate(&UserId::generate());
        let exposed = token.expose();
        let secret_part = exposed.split_once('.').unwrap().1;
        assert!(
            !token
                .hash(&keys(), Purpose::Invite)
                .as_str()
                .contains(secret_part)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let id = UserId::generate();
        for bad in [
            "",
            ".",
            "abc",
            &format!("{id}."),
            &format!("{id}.short"),
            &format!("{id}.{}", "a".repeat(44)),
            "x.y.z",
        ] {
            assert!(LinkToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn stored_hash_comparison_needs_an_exact_match() {
        let token = LinkToken::generate(&UserId::generate());
        let hash = token.hash(&keys(), Purpose::Invite);
        assert!(hash.matches(Some(hash.as_str())));
        assert!(!hash.matches(None));
        assert!(!hash.matches(Some("other")));
    }
}
