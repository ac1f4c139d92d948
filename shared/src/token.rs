//! Single-use link tokens (invite, reset, verify).
//!
//! A token is `<user id>.<256 random bits>`. Only a keyed hash of it is stored, on the user's
//! own item, one slot per purpose: issuing a new token overwrites the slot (older links die),
//! spending it removes the slot in the same conditional write that changes the user.
//!
//! A stored hash is `<kid>.<hash>`: it names the key generation that made it, so that a link
//! issued before a key rotation is checked with the key it was made with (see
//! [`crate::secrets`]). A hash without a `kid` was made before keyrings, by [`LEGACY_KID`].

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::domain::UserId;
use crate::encoding::{b64url, b64url_decode};
use crate::secrets::{Generation, Keyring, Keys, LEGACY_KID, hmac};

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

/// What the store keeps: a keyed hash, useless to anyone who reads the table, with the id of
/// the key generation that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The key generation a stored hash was made with.
    pub fn kid_of(stored: &str) -> &str {
        stored.split_once('.').map_or(LEGACY_KID, |(kid, _)| kid)
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
/// `matches` says whether the presented token is the one a stored hash was made from.
pub fn slot_state(
    matches: impl Fn(Option<&str>) -> bool,
    current: Option<&str>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    spent: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> SlotState {
    if matches(spent) {
        SlotState::Used
    } else if !matches(current) {
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

    /// The hash to store for a new link: made by the current signing generation.
    pub fn hash(&self, keys: &Keys, purpose: Purpose) -> TokenHash {
        self.hash_with(keys.current().signer(), purpose)
    }

    fn mac(&self, generation: &Generation, purpose: Purpose) -> String {
        b64url(&hmac(
            &generation.link,
            &[purpose.label(), self.user.as_str().as_bytes(), &self.secret],
        ))
    }

    /// The hash of this token by one generation, as it is stored.
    pub fn hash_with(&self, generation: &Generation, purpose: Purpose) -> TokenHash {
        TokenHash(format!(
            "{}.{}",
            generation.kid(),
            self.mac(generation, purpose)
        ))
    }

    /// Whether `stored` is this token's hash for `purpose`, made by any generation of `ring`
    /// (in constant time once the generation is found). A hash made by a generation the
    /// ring no longer holds matches nothing.
    pub fn matches(&self, ring: &Keyring, purpose: Purpose, stored: Option<&str>) -> bool {
        let Some(stored) = stored else { return false };
        let kid = TokenHash::kid_of(stored);
        let Some(generation) = ring.get(kid) else {
            return false;
        };
        let candidate = match stored.split_once('.') {
            Some(_) => self.hash_with(generation, purpose).0,
            None => self.mac(generation, purpose),
        };
        candidate.as_bytes().ct_eq(stored.as_bytes()).into()
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
    fn a_stored_hash_names_its_generation_and_matches_under_it_only() {
        let now = chrono::Utc::now();
        let old = Keyring::generate(now);
        let new = old
            .rotated(now, std::time::Duration::from_secs(60))
            .unwrap();
        let token = LinkToken::generate(&UserId::generate());
        let stored = token.hash(&Keys::fixed(old.clone()), Purpose::Invite);
        assert_eq!(TokenHash::kid_of(stored.as_str()), old.signer().kid());

        assert!(token.matches(&new, Purpose::Invite, Some(stored.as_str())));
        assert!(!token.matches(&new, Purpose::Reset, Some(stored.as_str())));
        let other = LinkToken::generate(token.user_id());
        assert!(!other.matches(&new, Purpose::Invite, Some(stored.as_str())));
        let without_old = Keyring::generate(now);
        assert!(
            !token.matches(&without_old, Purpose::Invite, Some(stored.as_str())),
            "a generation no longer kept verifies nothing"
        );
    }

    #[test]
    fn a_hash_stored_before_keyrings_matches_under_the_legacy_generation() {
        let master = "0123456789abcdef0123456789abcdef";
        let legacy = Keyring::parse(master).unwrap();
        let token = LinkToken::generate(&UserId::generate());
        // What the code before keyrings stored: the bare hash by the derived key.
        let bare = token.mac(legacy.signer(), Purpose::Reset);
        assert!(!bare.contains('.'));
        let rotated = legacy
            .rotated(chrono::Utc::now(), std::time::Duration::from_secs(60))
            .unwrap();
        assert!(token.matches(&rotated, Purpose::Reset, Some(&bare)));
        assert!(!token.matches(&rotated, Purpose::Invite, Some(&bare)));
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
