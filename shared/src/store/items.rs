//! Item shapes and key builders: the only place that knows how the table is laid out.
//!
//! | item            | PK                | SK              | GSI1 (tenant-users)        | GSI2 (pending-by-expiry)        |
//! |-----------------|-------------------|-----------------|----------------------------|---------------------------------|
//! | user            | `USER#<id>`       | `PROFILE`       | `TENANT#<t>` / `<email>#<id>` | `PENDING#<0-7>` / `<expires>#<id>` while invited |
//! | email claim     | `EMAIL#<email>`   | `EMAIL`         |                            |                                 |
//! | tenant          | `TENANTS`         | `TENANT#<t>`    |                            |                                 |
//! | rate window     | `RATE#<key>`      | `<window start>`|                            | (`ttl` removes it)              |
//! | audit event     | `AUDIT#<t>`       | `<at>#<random>` |                            |                                 |
//! | CSV import      | `IMPORT#<id>`     | `IMPORT`        |                            | (`ttl` removes it)              |
//! | import row      | `IMPORT#<id>`     | `ROW#<line, 12 digits>` |                    | (`ttl` removes it)              |
//!
//! The tenant item of `admin` also carries `active_team_admins`, the counter that keeps the
//! last active team_admin from being demoted or deleted (checked in the same transaction).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{DisplayName, Email, ImportId, Role, TenantId, UserId, UserStatus};
use crate::encoding::{b64url, b64url_decode};
use crate::secrets::Keyring;
use crate::token::{LinkToken, Purpose, SlotState, TokenHash, slot_state};

pub const TENANT_USERS_INDEX: &str = "tenant-users";
pub const PENDING_INDEX: &str = "pending-by-expiry";
/// Pending invitations are spread over this many index partitions so that a million of
/// them do not all land on one partition; the sweep reads each shard.
pub const PENDING_SHARDS: u8 = 8;

pub mod keys {
    use super::*;

    pub fn user(id: &UserId) -> (String, String) {
        (format!("USER#{id}"), "PROFILE".to_owned())
    }

    pub fn email(email: &Email) -> (String, String) {
        (format!("EMAIL#{email}"), "EMAIL".to_owned())
    }

    pub fn tenant(id: &TenantId) -> (String, String) {
        ("TENANTS".to_owned(), format!("TENANT#{id}"))
    }

    pub fn tenant_users(tenant: &TenantId) -> String {
        format!("TENANT#{tenant}")
    }

    /// A user's sort key in the tenant-users index: the address first, for email order and
    /// prefix search; the id makes it unique.
    pub fn tenant_user(email: &Email, id: &UserId) -> String {
        format!("{email}#{id}")
    }

    pub fn pending_shard(id: &UserId) -> String {
        let sum: u32 = id.as_str().bytes().map(u32::from).sum();
        format!("PENDING#{}", sum % u32::from(PENDING_SHARDS))
    }

    pub fn audit(tenant: &TenantId) -> String {
        format!("AUDIT#{tenant}")
    }

    /// The audit events about one user, in the tenant-users index.
    pub fn user_audit(tenant: &TenantId, user: &UserId) -> String {
        format!("AUDIT#{tenant}#USER#{user}")
    }

    pub fn import(id: &ImportId) -> (String, String) {
        (format!("IMPORT#{id}"), "IMPORT".to_owned())
    }

    pub const IMPORT_ROW_PREFIX: &str = "ROW#";

    /// Zero-padded, so that rows sort by line.
    pub fn import_row(id: &ImportId, line: u64) -> (String, String) {
        (
            format!("IMPORT#{id}"),
            format!("{IMPORT_ROW_PREFIX}{line:012}"),
        )
    }

    pub fn rate(key: &str, window_start: i64) -> (String, String) {
        (format!("RATE#{key}"), window_start.to_string())
    }
}

/// RFC 3339, UTC, whole seconds: sorts lexically in the same order as in time.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Times are kept in whole seconds so that every stored and returned time has one shape.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// `ttl` after `from`, in the whole seconds every stored time has (a link's or an upload's
/// expiry from its configured lifetime).
pub fn after(from: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
    from + chrono::Duration::seconds(ttl.as_secs() as i64)
}

pub fn encode_cursor(sort_key: &str) -> String {
    b64url(sort_key.as_bytes())
}

/// A sort key from a cursor, or `None` if it cannot be one: DynamoDB refuses an empty key
/// and keys over 1 KiB.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    b64url_decode(cursor)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|sk| !sk.is_empty() && sk.len() <= 1024)
}

pub(crate) mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&timestamp(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&timestamp(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            let raw = Option::<String>::deserialize(d)?;
            raw.map(|r| {
                DateTime::parse_from_rfc3339(&r)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }
}

/// The outcome of the last mail sent to a user, as the admin list shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    pub status: String,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Orders outcomes: `<mail sent, ms>.<event, ms>`, zero-padded so that it sorts as text.
    /// An outcome is recorded only over one with a smaller `seq`, so an older or repeated
    /// SES event never overwrites a newer one. Not shown to admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
}

impl Delivery {
    /// The order key of an outcome of the mail sent at `mail_at`, observed at `event_at`.
    pub fn seq_of(mail_at: DateTime<Utc>, event_at: DateTime<Utc>) -> String {
        let ms = |t: DateTime<Utc>| t.timestamp_millis().max(0);
        format!("{:015}.{:015}", ms(mail_at), ms(event_at))
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkVia {
    Email,
    Link,
}

impl LinkVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Link => "link",
        }
    }
}

/// The attribute names of one link slot on the user item: the current hash, its expiry, the
/// account version it was issued at, the last spent hash (to tell "used" from "unknown") and,
/// for the links an admin may copy instead of mailing, how it was handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotAttributes {
    pub hash: &'static str,
    pub expires_at: &'static str,
    pub version: &'static str,
    pub spent: &'static str,
    pub via: Option<&'static str>,
}

pub fn slot_attributes(purpose: Purpose) -> SlotAttributes {
    match purpose {
        Purpose::Invite => SlotAttributes {
            hash: "invite_token_hash",
            expires_at: "invite_expires_at",
            version: "invite_version",
            via: Some("invite_via"),
            spent: "spent_invite_token_hash",
        },
        Purpose::Reset => SlotAttributes {
            hash: "reset_token_hash",
            expires_at: "reset_expires_at",
            version: "reset_version",
            via: Some("reset_via"),
            spent: "spent_reset_token_hash",
        },
        Purpose::Verify => SlotAttributes {
            hash: "verify_token_hash",
            expires_at: "verify_expires_at",
            version: "verify_version",
            via: None,
            spent: "spent_verify_token_hash",
        },
        Purpose::EmailChange => SlotAttributes {
            hash: "email_change_token_hash",
            expires_at: "email_change_expires_at",
            version: "email_change_version",
            via: None,
            spent: "spent_email_change_token_hash",
        },
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantId,
    pub email: Email,
    pub role: Role,
    pub status: UserStatus,
    pub email_verified: bool,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// The account's version: every change to its role, address, status or password moves
    /// it on (in the same write, see `store::account`), and every session and link carries
    /// the version it was issued at, so that such a change ends all of them at once.
    #[serde(default)]
    pub session_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub invite_expires_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub last_invite_sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_invite_token_hash: Option<String>,
    /// How the current invitation link was handed over; a copied link proves no mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_via: Option<LinkVia>,
    /// The account version the current invitation link was issued at (absent: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_token_hash: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub reset_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_reset_token_hash: Option<String>,
    /// How the current reset link was handed over; a copied one proves no mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_via: Option<LinkVia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token_hash: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub verify_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_verify_token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_version: Option<u64>,
    /// The address an admin asked to move this user to, until its owner confirms it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_change_token_hash: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub email_change_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_email_change_token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_change_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<Delivery>,
    /// The admin who invited the user (`None` for the bootstrap admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<UserId>,
    /// The CSV import that invited the user, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_id: Option<ImportId>,
    /// The person's display name, when an admin gave one. `name` is a DynamoDB reserved word:
    /// expressions say `#name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayName>,
    /// When the user was invited (`None` for the bootstrap admin, and for users stored before
    /// it was recorded: the view then falls back to `created_at`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub invited_at: Option<DateTime<Utc>>,
    /// The inviter's address when they invited the user, so the list can say who without a
    /// read per row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by_email: Option<Email>,
    /// The inviter was operator staff (tenant `admin`): a customer tenant's admins are told
    /// only that, never who.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invited_by_operator: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub last_sign_in_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339::option"
    )]
    pub suspended_at: Option<DateTime<Utc>>,
}

impl User {
    /// A user invited into `tenant` with no link issued yet: no password, every link slot
    /// empty, the address unverified. Callers fill in what their operation issues.
    pub fn invited(
        id: UserId,
        tenant: TenantId,
        email: Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            tenant,
            email,
            role,
            status: UserStatus::Invited,
            email_verified: false,
            created_at: now,
            updated_at: now,
            session_version: 0,
            password_hash: None,
            invite_expires_at: None,
            last_invite_sent_at: None,
            invite_token_hash: None,
            spent_invite_token_hash: None,
            invite_via: None,
            invite_version: None,
            reset_token_hash: None,
            reset_expires_at: None,
            spent_reset_token_hash: None,
            reset_via: None,
            reset_version: None,
            verify_token_hash: None,
            verify_expires_at: None,
            spent_verify_token_hash: None,
            verify_version: None,
            pending_email: None,
            email_change_token_hash: None,
            email_change_expires_at: None,
            spent_email_change_token_hash: None,
            email_change_version: None,
            last_delivery: None,
            invited_by: None,
            import_id: None,
            name: None,
            invited_at: None,
            invited_by_email: None,
            invited_by_operator: false,
            accepted_at: None,
            last_sign_in_at: None,
            suspended_at: None,
        }
    }

    /// An account that needs no invitation (the bootstrap admin): active, its address taken
    /// as verified, its first session generation open.
    pub fn active(
        id: UserId,
        tenant: TenantId,
        email: Email,
        role: Role,
        password_hash: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            status: UserStatus::Active,
            email_verified: true,
            session_version: 1,
            password_hash,
            ..Self::invited(id, tenant, email, role, now)
        }
    }

    /// What `hash` means against this user's link slot for `purpose`: live, expired, already
    /// spent, or unknown (never issued, superseded by a newer link, or issued before the
    /// account last changed: see [`User::session_version`]).
    /// `token` is checked against each stored hash with the generation of `ring` that made it.
    pub fn link_state(
        &self,
        purpose: Purpose,
        token: &LinkToken,
        ring: &Keyring,
        now: DateTime<Utc>,
    ) -> SlotState {
        let slot = self.link_slot(purpose);
        let matches = |stored: Option<&str>| token.matches(ring, purpose, stored);
        match slot_state(matches, slot.hash, slot.expires_at, slot.spent, now) {
            SlotState::Live if slot.version != self.session_version => SlotState::Unknown,
            state => state,
        }
    }

    /// The stored hash of the current link of `purpose`, to spend it with (the write checks
    /// that it is still the slot's).
    pub fn link_hash(&self, purpose: Purpose) -> Option<TokenHash> {
        self.link_slot(purpose)
            .hash
            .map(|h| TokenHash::from_stored(h.to_owned()))
    }

    /// The link of `purpose` as stored on this user.
    pub fn link_slot(&self, purpose: Purpose) -> LinkSlot<'_> {
        let (hash, expires_at, spent, version, via) = match purpose {
            Purpose::Invite => (
                &self.invite_token_hash,
                self.invite_expires_at,
                &self.spent_invite_token_hash,
                self.invite_version,
                self.invite_via,
            ),
            Purpose::Reset => (
                &self.reset_token_hash,
                self.reset_expires_at,
                &self.spent_reset_token_hash,
                self.reset_version,
                self.reset_via,
            ),
            Purpose::Verify => (
                &self.verify_token_hash,
                self.verify_expires_at,
                &self.spent_verify_token_hash,
                self.verify_version,
                None,
            ),
            Purpose::EmailChange => (
                &self.email_change_token_hash,
                self.email_change_expires_at,
                &self.spent_email_change_token_hash,
                self.email_change_version,
                None,
            ),
        };
        LinkSlot {
            hash: hash.as_deref(),
            expires_at,
            spent: spent.as_deref(),
            // Links stored before versions were recorded count as issued at version 0: an
            // invitation nobody changed since survives the upgrade, every other one ends.
            version: version.unwrap_or(0),
            // Links stored before `via` was recorded were all mailed.
            via: via.unwrap_or(LinkVia::Email),
        }
    }
}

/// One link slot of a user, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSlot<'a> {
    pub hash: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub spent: Option<&'a str>,
    /// The account version the link was issued at.
    pub version: u64,
    pub via: LinkVia,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct UserItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    gsi1pk: String,
    #[serde(rename = "GSI1SK")]
    gsi1sk: String,
    #[serde(rename = "GSI2PK", default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(rename = "GSI2SK", default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(flatten)]
    pub(crate) user: User,
}

impl UserItem {
    pub(crate) fn new(user: User) -> Self {
        let (pk, sk) = keys::user(&user.id);
        // Only invitations still waiting for an answer are in the sparse expiry index.
        let pending = match (user.status, user.invite_expires_at) {
            (UserStatus::Invited, Some(at)) => Some(format!("{}#{}", timestamp(at), user.id)),
            _ => None,
        };
        Self {
            pk,
            sk,
            gsi1pk: keys::tenant_users(&user.tenant),
            gsi1sk: keys::tenant_user(&user.email, &user.id),
            gsi2pk: pending.as_ref().map(|_| keys::pending_shard(&user.id)),
            gsi2sk: pending,
            user,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct EmailItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    pub(crate) user_id: UserId,
    pub(crate) tenant: TenantId,
    /// The CSV import that created the account, to tell a duplicate row from an old account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) import: Option<ImportId>,
}

impl EmailItem {
    pub(crate) fn new(email: &Email, user: &UserId, tenant: &TenantId) -> Self {
        let (pk, sk) = keys::email(email);
        Self {
            pk,
            sk,
            user_id: user.clone(),
            tenant: tenant.clone(),
            import: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<UserId>,
    /// How the tenant's mail looks; empty for unbranded tenants.
    #[serde(default, skip_serializing_if = "crate::branding::Branding::is_empty")]
    pub branding: crate::branding::Branding,
}

impl Tenant {
    /// What mail uses when a user's tenant item cannot be read: its id as its name, unbranded.
    pub fn unnamed(id: &TenantId) -> Self {
        Self {
            id: id.clone(),
            name: id.to_string(),
            created_at: now(),
            created_by: None,
            branding: Default::default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TenantItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    pub(crate) tenant: Tenant,
}

impl TenantItem {
    pub(crate) fn new(tenant: Tenant) -> Self {
        let (pk, sk) = keys::tenant(&tenant.id);
        Self { pk, sk, tenant }
    }
}

/// Who did what to whom, kept per tenant, newest first. Never holds a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub tenant: TenantId,
    pub actor: Party,
    pub action: String,
    pub target: Party,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Party {
    pub id: UserId,
    pub email: Email,
}

impl Party {
    pub fn of(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AuditItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    pub(crate) sk: String,
    /// The target user's history, in the tenant-users index under its own partition key,
    /// with the same sort key. Absent on events written before it existed.
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(flatten)]
    pub(crate) event: AuditEvent,
}

impl AuditItem {
    pub(crate) fn new(event: AuditEvent) -> Self {
        // `at` is whole seconds; the key orders by the microsecond so that several actions
        // in one second list in the order they happened.
        let suffix = crate::domain::UserId::generate();
        let written = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let sk = format!("{written}#{suffix}");
        Self {
            pk: keys::audit(&event.tenant),
            gsi1pk: Some(keys::user_audit(&event.tenant, &event.target.id)),
            gsi1sk: Some(sk.clone()),
            sk,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        let t = now();
        User {
            invite_expires_at: Some(t),
            invite_token_hash: Some("h".into()),
            ..User::invited(
                UserId::generate(),
                TenantId::parse("acme").unwrap(),
                Email::parse("ada@example.com").unwrap(),
                Role::Member,
                t,
            )
        }
    }

    #[test]
    fn a_user_item_round_trips_through_the_dynamodb_mapping() {
        let original = user();
        let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            serde_dynamo::to_item(UserItem::new(original.clone())).unwrap();
        assert_eq!(item["PK"].as_s().unwrap(), &format!("USER#{}", original.id));
        assert_eq!(item["GSI1PK"].as_s().unwrap(), "TENANT#acme");
        assert!(
            item.contains_key("GSI2SK"),
            "invited users are in the expiry index"
        );
        let back: UserItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.user.email, original.email);
        assert_eq!(back.user.invite_expires_at, original.invite_expires_at);
    }

    #[test]
    fn active_users_are_not_in_the_expiry_index() {
        let mut active = user();
        active.status = UserStatus::Active;
        let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            serde_dynamo::to_item(UserItem::new(active)).unwrap();
        assert!(!item.contains_key("GSI2PK"));
    }

    #[test]
    fn a_tampered_email_in_the_table_is_refused_on_read() {
        let mut item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            serde_dynamo::to_item(UserItem::new(user())).unwrap();
        item.insert(
            "email".into(),
            aws_sdk_dynamodb::types::AttributeValue::S("Not An Email".into()),
        );
        assert!(serde_dynamo::from_item::<_, UserItem>(item).is_err());
    }

    mod link_state {
        use super::*;
        use crate::secrets::Keys;
        use crate::token::LinkToken;
        use chrono::Duration;

        const PURPOSES: [Purpose; 4] = [
            Purpose::Invite,
            Purpose::Reset,
            Purpose::Verify,
            Purpose::EmailChange,
        ];

        fn keys() -> Keys {
            Keys::derive(b"0123456789abcdef0123456789abcdef")
        }

        fn ring() -> std::sync::Arc<Keyring> {
            keys().current()
        }

        /// Writes a link into the slot of `purpose` the way the store's writes name it.
        fn fill(
            user: &mut User,
            purpose: Purpose,
            current: Option<&TokenHash>,
            spent: Option<&TokenHash>,
            expires_at: DateTime<Utc>,
        ) {
            let current = current.map(|h| h.as_str().to_owned());
            let spent = spent.map(|h| h.as_str().to_owned());
            let expires_at = Some(expires_at);
            match purpose {
                Purpose::Invite => {
                    (
                        user.invite_token_hash,
                        user.spent_invite_token_hash,
                        user.invite_expires_at,
                    ) = (current, spent, expires_at)
                }
                Purpose::Reset => {
                    (
                        user.reset_token_hash,
                        user.spent_reset_token_hash,
                        user.reset_expires_at,
                    ) = (current, spent, expires_at)
                }
                Purpose::Verify => {
                    (
                        user.verify_token_hash,
                        user.spent_verify_token_hash,
                        user.verify_expires_at,
                    ) = (current, spent, expires_at)
                }
                Purpose::EmailChange => {
                    (
                        user.email_change_token_hash,
                        user.spent_email_change_token_hash,
                        user.email_change_expires_at,
                    ) = (current, spent, expires_at)
                }
            }
        }

        #[test]
        fn each_state_of_a_link_is_told_apart_in_every_slot() {
            let now = now();
            let token = LinkToken::generate(&UserId::generate());
            let newer = LinkToken::generate(token.user_id());
            for purpose in PURPOSES {
                let hash = token.hash(&keys(), purpose);
                let newer = newer.hash(&keys(), purpose);
                let cases = [
                    (
                        "live",
                        Some(&hash),
                        None,
                        now + Duration::hours(1),
                        SlotState::Live,
                    ),
                    ("past its time", Some(&hash), None, now, SlotState::Expired),
                    (
                        "spent",
                        None,
                        Some(&hash),
                        now + Duration::hours(1),
                        SlotState::Used,
                    ),
                    (
                        "superseded",
                        Some(&newer),
                        None,
                        now + Duration::hours(1),
                        SlotState::Unknown,
                    ),
                    (
                        "never issued",
                        None,
                        None,
                        now + Duration::hours(1),
                        SlotState::Unknown,
                    ),
                ];
                for (case, current, spent, expires_at, expected) in cases {
                    let mut holder = user();
                    fill(&mut holder, purpose, current, spent, expires_at);
                    assert_eq!(
                        holder.link_state(purpose, &token, &ring(), now),
                        expected,
                        "{purpose:?}: {case}"
                    );
                }
            }
        }

        #[test]
        fn a_link_issued_before_the_account_changed_is_unknown_in_every_slot() {
            let now = now();
            let token = LinkToken::generate(&UserId::generate());
            for purpose in PURPOSES {
                let hash = token.hash(&keys(), purpose);
                let mut holder = user();
                fill(
                    &mut holder,
                    purpose,
                    Some(&hash),
                    None,
                    now + Duration::hours(1),
                );
                holder.session_version = 3;
                set_version(&mut holder, purpose, Some(3));
                assert_eq!(
                    holder.link_state(purpose, &token, &ring(), now),
                    SlotState::Live
                );

                holder.session_version = 4;

                assert_eq!(
                    holder.link_state(purpose, &token, &ring(), now),
                    SlotState::Unknown,
                    "{purpose:?}"
                );
            }
        }

        #[test]
        fn a_link_stored_without_a_version_counts_as_issued_at_version_zero() {
            let now = now();
            let token = LinkToken::generate(&UserId::generate());
            let hash = token.hash(&keys(), Purpose::Invite);
            let mut holder = user();
            fill(
                &mut holder,
                Purpose::Invite,
                Some(&hash),
                None,
                now + Duration::hours(1),
            );
            set_version(&mut holder, Purpose::Invite, None);
            assert_eq!(
                holder.link_state(Purpose::Invite, &token, &ring(), now),
                SlotState::Live
            );
            holder.session_version = 1;
            assert_eq!(
                holder.link_state(Purpose::Invite, &token, &ring(), now),
                SlotState::Unknown
            );
        }

        fn set_version(user: &mut User, purpose: Purpose, version: Option<u64>) {
            match purpose {
                Purpose::Invite => user.invite_version = version,
                Purpose::Reset => user.reset_version = version,
                Purpose::Verify => user.verify_version = version,
                Purpose::EmailChange => user.email_change_version = version,
            }
        }

        #[test]
        fn the_slot_attributes_are_the_names_the_user_item_is_stored_with() {
            let now = now();
            let token = LinkToken::generate(&UserId::generate());
            let mut holder = user();
            for purpose in PURPOSES {
                let hash = token.hash(&keys(), purpose);
                fill(&mut holder, purpose, Some(&hash), Some(&hash), now);
                set_version(&mut holder, purpose, Some(1));
            }
            holder.reset_via = Some(LinkVia::Link);
            holder.invite_via = Some(LinkVia::Link);
            let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
                serde_dynamo::to_item(UserItem::new(holder)).unwrap();
            for purpose in PURPOSES {
                let a = slot_attributes(purpose);
                for name in [a.hash, a.expires_at, a.version, a.spent]
                    .into_iter()
                    .chain(a.via)
                {
                    assert!(item.contains_key(name), "{purpose:?}: {name}");
                }
            }
        }

        #[test]
        fn every_slot_names_its_own_attributes() {
            let all: Vec<&str> = PURPOSES
                .iter()
                .flat_map(|p| {
                    let a = slot_attributes(*p);
                    [a.hash, a.expires_at, a.version, a.spent]
                        .into_iter()
                        .chain(a.via)
                })
                .collect();
            let unique: std::collections::BTreeSet<&&str> = all.iter().collect();
            assert_eq!(unique.len(), all.len(), "{all:?}");
        }

        #[test]
        fn a_link_is_only_read_against_the_slot_of_its_own_purpose() {
            let now = now();
            let token = LinkToken::generate(&UserId::generate());
            for issued in PURPOSES {
                let hash = token.hash(&keys(), issued);
                let mut holder = user();
                fill(
                    &mut holder,
                    issued,
                    Some(&hash),
                    None,
                    now + Duration::hours(1),
                );
                for asked in PURPOSES {
                    let expected = if asked == issued {
                        SlotState::Live
                    } else {
                        SlotState::Unknown
                    };
                    assert_eq!(
                        holder.link_state(asked, &token, &ring(), now),
                        expected,
                        "issued {issued:?}, asked {asked:?}"
                    );
                }
            }
        }
    }
}
