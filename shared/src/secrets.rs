//! Key material: a keyring of generations, each with its own session-signing key and its own
//! link-hashing key, named by a key id (`kid`).
//!
//! - Every session JWT names the generation that signed it (`kid` in its header) and every
//!   stored link hash names the generation that made it (`<kid>.<hash>`), so that verification
//!   uses that generation's key: the current one or any older one still kept.
//! - The newest generation signs and hashes everything new. A rotation (the `rotate-keys`
//!   function, run by Secrets Manager on a schedule) adds a generation in front and drops only
//!   generations that nothing alive can still need: a generation is kept until every session
//!   and link it made has expired, plus the time warm instances may take to notice the
//!   rotation ([`retention`]). So a rotation ends no session and no pending link.
//! - The secret's value is JSON (see [`Keyring::parse`]). A plain value (the format before
//!   keyrings, and what CloudFormation generates for a new stack) is one generation, [`LEGACY_KID`],
//!   whose keys are derived from it exactly as before; sessions without a `kid` and hashes without
//!   one belong to it. The first rotation turns such a value into a keyring that still holds it,
//!   so the migration ends nothing either.
//! - A warm instance caches the keyring. It reads it again when it is older than the refresh
//!   period, and, at most once per [`UNKNOWN_KID_PAUSE`], when a token names a generation it has
//!   not seen (made by an instance that noticed a rotation first).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::encoding::{b64url, b64url_decode};

type HmacSha256 = Hmac<Sha256>;

/// The generation of a plain (pre-keyring) secret value.
pub const LEGACY_KID: &str = "legacy";
/// The `format` of the secret's JSON value.
pub const FORMAT: &str = "latchkey-keyring/1";
/// More generations than this means the rotation interval is far shorter than the longest link
/// lifetime: the rotation refuses rather than drop a generation something alive may need (the
/// secret value would also near Secrets Manager's 64 KiB).
pub const MAX_GENERATIONS: usize = 200;
/// The shortest time between two reads of the secret caused by unknown key ids: a flood of
/// forged `kid`s costs one Secrets Manager call per pause, not one per request.
pub const UNKNOWN_KID_PAUSE: Duration = Duration::from_secs(5);

/// One generation of keys.
#[derive(Clone)]
pub struct Generation {
    kid: String,
    created_at: DateTime<Utc>,
    pub(crate) session: [u8; 32],
    pub(crate) link: [u8; 32],
}

impl Generation {
    fn generate(now: DateTime<Utc>) -> Self {
        let kid = format!(
            "{}-{:08x}",
            now.format("%Y%m%dT%H%M%SZ"),
            rand::random::<u32>()
        );
        Self {
            kid,
            created_at: now,
            session: rand::random(),
            link: rand::random(),
        }
    }

    fn legacy(master: &[u8]) -> Self {
        Self {
            kid: LEGACY_KID.to_owned(),
            created_at: DateTime::UNIX_EPOCH,
            session: derive(master, b"latchkey/jwt/v1"),
            link: derive(master, b"latchkey/token/v1"),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}

/// Generations, newest first; never empty; key ids unique.
#[derive(Clone)]
pub struct Keyring {
    generations: Vec<Generation>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kids()).finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("the secret value is shorter than 32 characters")]
    TooShort,
    #[error("the secret value is not a keyring: {0}")]
    Malformed(String),
    #[error(
        "keeping every generation still needed would make {0} (at most {MAX_GENERATIONS}); \
         rotate less often or shorten the link lifetimes"
    )]
    TooManyGenerations(usize),
    #[error("the pending keyring is not a rotation of the current one: {0}")]
    NotARotation(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    keys: Vec<StoredGeneration>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredGeneration {
    kid: String,
    #[serde(with = "crate::store::items::rfc3339")]
    created_at: DateTime<Utc>,
    session: String,
    link: String,
}

fn key_bytes(kid: &str, what: &str, raw: &str) -> Result<[u8; 32], KeyringError> {
    b64url_decode(raw)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            KeyringError::Malformed(format!("{kid}: {what} is not 32 bytes of base64url"))
        })
}

/// A key id as it may appear in a JWT header or before a stored hash.
fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyring {
    /// One fresh generation: a new secret's value.
    pub fn generate(now: DateTime<Utc>) -> Self {
        Self {
            generations: vec![Generation::generate(now)],
        }
    }

    /// A keyring from a secret's value: JSON `{"format": "latchkey-keyring/1", "keys": [{"kid",
    /// "created_at", "session", "link"}, ...]}` (newest first, keys 32 bytes of base64url), or
    /// a plain value of at least 32 characters (one [`LEGACY_KID`] generation).
    pub fn parse(value: &str) -> Result<Self, KeyringError> {
        let trimmed = value.trim();
        if !trimmed.starts_with('{') {
            if value.len() < 32 {
                return Err(KeyringError::TooShort);
            }
            return Ok(Self {
                generations: vec![Generation::legacy(value.as_bytes())],
            });
        }
        let stored: Stored =
            serde_json::from_str(trimmed).map_err(|e| KeyringError::Malformed(e.to_string()))?;
        if stored.format != FORMAT {
            return Err(KeyringError::Malformed(format!(
                "format {:?}, expected {FORMAT:?}",
                stored.format
            )));
        }
        let mut generations = Vec::with_capacity(stored.keys.len());
        for key in stored.keys {
            if !valid_kid(&key.kid) {
                return Err(KeyringError::Malformed(format!("key id {:?}", key.kid)));
            }
            if generations.iter().any(|g: &Generation| g.kid == key.kid) {
                return Err(KeyringError::Malformed(format!("key id {} twice", key.kid)));
            }
            generations.push(Generation {
                session: key_bytes(&key.kid, "session", &key.session)?,
                link: key_bytes(&key.kid, "link", &key.link)?,
                kid: key.kid,
                created_at: key.created_at,
            });
        }
        if generations.is_empty() {
            return Err(KeyringError::Malformed("no keys".into()));
        }
        Ok(Self { generations })
    }

    /// The secret value of this keyring (key material: never log it).
    pub fn to_secret_string(&self) -> String {
        let stored = Stored {
            format: FORMAT.to_owned(),
            keys: self
                .generations
                .iter()
                .map(|g| StoredGeneration {
                    kid: g.kid.clone(),
                    created_at: g.created_at,
                    session: b64url(&g.session),
                    link: b64url(&g.link),
                })
                .collect(),
        };
        serde_json::to_string(&stored).expect("a keyring always serializes")
    }

    /// The generation that signs and hashes everything new.
    pub fn signer(&self) -> &Generation {
        &self.generations[0]
    }

    pub fn get(&self, kid: &str) -> Option<&Generation> {
        self.generations.iter().find(|g| g.kid == kid)
    }

    /// Key ids, newest first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.generations.iter().map(|g| g.kid.as_str())
    }

    pub fn len(&self) -> usize {
        self.generations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.generations.is_empty()
    }

    /// The generations still needed at `now`: the newest, the one it replaced (always: warm
    /// instances may still sign with it), and each older one until `retention` after the
    /// generation that replaced it was made.
    fn still_needed(&self, now: DateTime<Utc>, retention: Duration) -> Vec<Generation> {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        self.generations
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                *i < 2
                    || self.generations[i - 1]
                        .created_at
                        .checked_add_signed(retention)
                        .is_none_or(|until| now < until)
            })
            .map(|(_, g)| g.clone())
            .collect()
    }

    /// The keyring after a rotation at `now`: a new generation in front, and the current ones
    /// that are still needed once it replaces the current signer.
    pub fn rotated(&self, now: DateTime<Utc>, retention: Duration) -> Result<Self, KeyringError> {
        let mut generations = vec![Generation::generate(now)];
        generations.extend(self.generations.iter().cloned());
        let rotated = Self { generations };
        let kept = rotated.still_needed(now, retention);
        if kept.len() > MAX_GENERATIONS {
            return Err(KeyringError::TooManyGenerations(kept.len()));
        }
        Ok(Self { generations: kept })
    }

    /// Whether `self` is a rotation of `current` that ends nothing: a new generation in front,
    /// then current generations only (in order, none invented), among them the current signer
    /// and every generation still needed at `now`.
    pub fn check_rotation_of(
        &self,
        current: &Keyring,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> Result<(), KeyringError> {
        let refuse = |why: String| Err(KeyringError::NotARotation(why));
        let newest = self.signer();
        if current.get(&newest.kid).is_some() {
            return refuse(format!("its newest key {} is not new", newest.kid));
        }
        let older: Vec<&str> = self.kids().skip(1).collect();
        let current_order: Vec<&str> = current.kids().filter(|k| older.contains(k)).collect();
        if older != current_order {
            return refuse("its older keys are not the current keys in order".into());
        }
        let mut with_new = vec![newest.clone()];
        with_new.extend(current.generations.iter().cloned());
        let needed = Keyring {
            generations: with_new,
        }
        .still_needed(now, retention);
        for generation in needed.iter().skip(1) {
            if self.get(&generation.kid).is_none() {
                return refuse(format!(
                    "it drops {}, which is still needed",
                    generation.kid
                ));
            }
        }
        Ok(())
    }
}

/// How long a generation is kept after it stops signing: the longest lifetime of anything it
/// signs or hashes (sessions and every kind of link), plus twice the refresh period of warm
/// instances (which may go on signing with it until they next read the keyring).
pub fn retention(longest_lifetime: Duration, refresh: Duration) -> Duration {
    longest_lifetime + refresh * 2
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading secret {arn} failed: {detail}")]
    Fetch { arn: String, detail: String },
    #[error("secret {0} has no string value")]
    Empty(String),
    #[error("secret {arn}: {source}")]
    Keyring {
        arn: String,
        #[source]
        source: KeyringError,
    },
}

/// The keyring a function holds: a cached [`Keyring`], read again from Secrets Manager when it
/// grows old or a token names a key it has not seen.
#[derive(Clone)]
pub struct Keys {
    inner: Arc<Inner>,
}

struct Inner {
    ring: RwLock<Arc<Keyring>>,
    source: Option<Source>,
}

struct Source {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
    refresh: Duration,
    /// One read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
    /// When the secret was last read (or a read last failed).
    read_at: Mutex<Instant>,
    /// When a read was last caused by an unknown key id.
    unknown_read_at: Mutex<Option<Instant>>,
    background: AtomicBool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({:?})", self.current())
    }
}

fn elapsed_since(at: &Mutex<Instant>) -> Duration {
    at.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
}

impl Keys {
    /// A fixed keyring of one [`LEGACY_KID`] generation derived from `master` (tests).
    pub fn derive(master: &[u8]) -> Self {
        Self::fixed(Keyring {
            generations: vec![Generation::legacy(master)],
        })
    }

    /// A fixed keyring, never read again (tests).
    pub fn fixed(ring: Keyring) -> Self {
        Self {
            inner: Arc::new(Inner {
                ring: RwLock::new(Arc::new(ring)),
                source: None,
            }),
        }
    }

    /// Reads the keyring of secret `arn` (its `AWSCURRENT` version); it is read again once it
    /// is `refresh` old.
    pub async fn fetch(
        client: &aws_sdk_secretsmanager::Client,
        arn: &str,
        refresh: Duration,
    ) -> Result<Self, SecretError> {
        let ring = read(client, arn).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                ring: RwLock::new(Arc::new(ring)),
                source: Some(Source {
                    client: client.clone(),
                    arn: arn.to_owned(),
                    refresh,
                    reading: tokio::sync::Mutex::new(()),
                    read_at: Mutex::new(Instant::now()),
                    unknown_read_at: Mutex::new(None),
                    background: AtomicBool::new(false),
                }),
            }),
        })
    }

    /// The keyring as this instance knows it now. When it is older than the refresh period, a
    /// read starts in the background (for callers that do not [`Self::refresh_if_stale`]).
    pub fn current(&self) -> Arc<Keyring> {
        if let Some(source) = &self.inner.source
            && elapsed_since(&source.read_at) >= source.refresh
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
            && !source.background.swap(true, Ordering::AcqRel)
        {
            let keys = self.clone();
            runtime.spawn(async move {
                keys.refresh_if_stale().await;
                if let Some(source) = &keys.inner.source {
                    source.background.store(false, Ordering::Release);
                }
            });
        }
        Arc::clone(&self.inner.ring.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn known(&self) -> Arc<Keyring> {
        Arc::clone(&self.inner.ring.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the keyring again if it is older than the refresh period. A failed read keeps the
    /// cached keyring (and waits a period before the next attempt).
    pub async fn refresh_if_stale(&self) {
        let Some(source) = &self.inner.source else {
            return;
        };
        if elapsed_since(&source.read_at) < source.refresh {
            return;
        }
        let _one = source.reading.lock().await;
        if elapsed_since(&source.read_at) < source.refresh {
            return;
        }
        self.reread(source, "refresh").await;
    }

    /// The keyring, read again first if it does not know `kid` and no read for an unknown key
    /// id happened within [`UNKNOWN_KID_PAUSE`].
    pub async fn knowing(&self, kid: &str) -> Arc<Keyring> {
        let ring = self.current();
        let Some(source) = &self.inner.source else {
            return ring;
        };
        if ring.get(kid).is_some() || !valid_kid(kid) {
            return ring;
        }
        let _one = source.reading.lock().await;
        if self.known().get(kid).is_some() {
            return self.known();
        }
        {
            let mut last = source
                .unknown_read_at
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_PAUSE) {
                return self.known();
            }
            *last = Some(Instant::now());
        }
        self.reread(source, "unknown key id").await;
        self.known()
    }

    async fn reread(&self, source: &Source, why: &'static str) {
        match read(&source.client, &source.arn).await {
            Ok(ring) => {
                tracing::info!(why, kids = ?ring, "keyring read");
                *self.inner.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
            }
            Err(e) => {
                tracing::warn!(why, error = %e, "keyring not read again; the cached one stays")
            }
        }
        *source.read_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// The keyring in the `AWSCURRENT` version of secret `arn`. The stage is named, not left to
/// the default: what the rotation's last step moved is what counts.
pub async fn read(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<Keyring, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| SecretError::Fetch {
            arn: arn.to_owned(),
            detail: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    let value = out
        .secret_string()
        .ok_or_else(|| SecretError::Empty(arn.to_owned()))?;
    Keyring::parse(value).map_err(|source| SecretError::Keyring {
        arn: arn.to_owned(),
        source,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + days * 86_400, 0).unwrap()
    }

    #[test]
    fn a_keyring_round_trips_through_its_secret_value() {
        let ring = Keyring::generate(at(0)).rotated(at(1), DAY).unwrap();
        let back = Keyring::parse(&ring.to_secret_string()).unwrap();
        assert_eq!(
            back.kids().collect::<Vec<_>>(),
            ring.kids().collect::<Vec<_>>()
        );
        assert_eq!(back.signer().session, ring.signer().session);
        assert_eq!(back.signer().link, ring.signer().link);
        assert_eq!(back.signer().created_at, ring.signer().created_at);
    }

    #[test]
    fn a_plain_value_is_one_legacy_generation_derived_as_before() {
        let master = "0123456789abcdef0123456789abcdef";
        let ring = Keyring::parse(master).unwrap();
        assert_eq!(ring.kids().collect::<Vec<_>>(), vec![LEGACY_KID]);
        assert_eq!(
            ring.signer().session,
            derive(master.as_bytes(), b"latchkey/jwt/v1")
        );
        assert_eq!(
            ring.signer().link,
            derive(master.as_bytes(), b"latchkey/token/v1")
        );
        assert_ne!(ring.signer().session, ring.signer().link, "separate keys");
    }

    #[test]
    fn malformed_secret_values_are_refused() {
        let good = Keyring::generate(at(0)).to_secret_string();
        let cases = [
            "short".to_owned(),
            "{}".to_owned(),
            r#"{"format":"latchkey-keyring/1","keys":[]}"#.to_owned(),
            good.replace(FORMAT, "latchkey-keyring/9"),
            good.replace("\"session\":\"", "\"session\":\"AA"),
            good.replace("\"kid\":\"", "\"kid\":\"bad kid "),
            format!("{},", good.trim_end_matches('}')),
        ];
        for case in cases {
            assert!(Keyring::parse(&case).is_err(), "{case}");
        }
        let twice = {
            let one = Keyring::generate(at(0));
            let stored: serde_json::Value = serde_json::from_str(&one.to_secret_string()).unwrap();
            let key = stored["keys"][0].clone();
            serde_json::json!({"format": FORMAT, "keys": [key.clone(), key]}).to_string()
        };
        assert!(Keyring::parse(&twice).is_err(), "a key id twice");
    }

    #[test]
    fn a_rotation_puts_a_new_signer_in_front_and_keeps_the_one_it_replaces() {
        let first = Keyring::parse("0123456789abcdef0123456789abcdef").unwrap();
        let second = first.rotated(at(0), DAY * 7).unwrap();
        assert_eq!(second.len(), 2);
        assert_ne!(second.signer().kid, LEGACY_KID);
        assert_eq!(second.kids().nth(1), Some(LEGACY_KID));
        second.check_rotation_of(&first, at(0), DAY * 7).unwrap();
    }

    #[test]
    fn a_generation_is_kept_until_the_retention_after_its_replacement_and_no_longer() {
        // Rotations every 30 days, retention 7 days: current and previous only.
        let mut ring = Keyring::generate(at(0));
        for day in [30, 60, 90] {
            ring = ring.rotated(at(day), DAY * 7).unwrap();
        }
        assert_eq!(ring.len(), 2, "{ring:?}");
        // Rotations every day, retention 7 days: the seven replaced within the last 7 days,
        // the one replaced just now (the previous signer) and the new one.
        let mut ring = Keyring::generate(at(0));
        for day in 1..=20 {
            ring = ring.rotated(at(day), DAY * 7).unwrap();
        }
        let created: Vec<DateTime<Utc>> = ring.generations.iter().map(|g| g.created_at).collect();
        assert_eq!(created.first(), Some(&at(20)));
        assert_eq!(
            created.last(),
            Some(&at(13)),
            "made on day 13, replaced on day 14"
        );
        assert_eq!(ring.len(), 8);
    }

    #[test]
    fn a_rotation_that_would_keep_too_many_generations_is_refused() {
        let mut ring = Keyring::generate(at(0));
        for day in 1..=MAX_GENERATIONS as i64 - 1 {
            ring = ring.rotated(at(day), DAY * 1000).unwrap();
        }
        assert_eq!(
            ring.rotated(at(MAX_GENERATIONS as i64), DAY * 1000).err(),
            Some(KeyringError::TooManyGenerations(MAX_GENERATIONS + 1))
        );
    }

    #[test]
    fn a_pending_keyring_that_would_end_something_is_not_a_rotation() {
        let current = Keyring::generate(at(0)).rotated(at(1), DAY * 7).unwrap();
        let good = current.rotated(at(2), DAY * 7).unwrap();
        good.check_rotation_of(&current, at(2), DAY * 7).unwrap();

        let same_signer = current.clone();
        let mut dropped = good.clone();
        dropped.generations.truncate(2);
        let mut invented = good.clone();
        invented.generations.push(Generation::generate(at(0)));
        let fresh = Keyring::generate(at(2));
        for (case, pending) in [
            ("no new key", same_signer),
            ("a needed key dropped", dropped),
            ("a key that was never current", invented),
            ("an unrelated keyring", fresh),
        ] {
            assert!(
                pending.check_rotation_of(&current, at(2), DAY * 7).is_err(),
                "{case}"
            );
        }
    }

    #[tokio::test]
    async fn a_fixed_keyring_is_what_current_and_knowing_answer() {
        let keys = Keys::derive(b"0123456789abcdef0123456789abcdef");
        assert_eq!(keys.current().signer().kid(), LEGACY_KID);
        assert_eq!(keys.knowing("unknown").await.len(), 1);
        keys.refresh_if_stale().await;
    }
}
