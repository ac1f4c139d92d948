//! The account's version, and the one rule every change to an account follows.
//!
//! `session_version` on the user item is the account's version. Every session (its `sv`
//! claim) and every link (its slot's `<slot>_version`) records the version it was issued at,
//! and is dead once the account has moved on: a session gets 401, a link `token_invalid`.
//!
//! The rule: **a write that changes a user's role, address, status or password calls
//! [`Write::changes_account`]** with the user as the caller read them. The write then applies
//! only if the account is still at that version, and moves it to the next in the same write,
//! which ends every session and every link issued before it, whatever their kind. Links are
//! stored with [`Write::issues_link`] and spent with [`Write::spends_link`], whose condition
//! (inside DynamoDB, not a read before the write) holds only while the link's version is the
//! account's.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::items::{self, LinkVia, slot_attributes};
use super::write::Clause;
use super::{User, Write, av};
use crate::token::{Purpose, TokenHash};

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl Write {
    /// Applies only while the account is at the version `user` was read at.
    pub fn at_version(self, user: &User) -> Self {
        let write = self.value(":account_version", number(user.session_version));
        if user.session_version == 0 {
            // Items written before the version existed have none: that is version 0.
            write.condition(
                "attribute_not_exists(session_version) OR session_version = :account_version",
            )
        } else {
            write.condition("session_version = :account_version")
        }
    }

    /// This write changes the account's role, address, status or password: it applies only
    /// while the account is at the version `user` was read at, and moves it to the next, which
    /// ends every session and every link issued before.
    pub fn changes_account(self, user: &User) -> Self {
        self.at_version(user)
            .also(Clause::Add, "session_version :account_step")
            .value(":account_step", number(1))
    }

    /// Stores a new link in the slot of `purpose` (an older one there dies), issued at the
    /// version `user` was read at: the write applies only while the account is still at it.
    /// `via` is how the link is handed over, for the slots that record it.
    pub fn issues_link(
        self,
        purpose: Purpose,
        user: &User,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        via: LinkVia,
    ) -> Self {
        let slot = slot_attributes(purpose);
        let write = self
            .at_version(user)
            .also(Clause::Set, &format!("{} = :link_hash", slot.hash))
            .also(Clause::Set, &format!("{} = :link_expires", slot.expires_at))
            .also(Clause::Set, &format!("{} = :account_version", slot.version))
            .value(":link_hash", av(hash.as_str()))
            .value(":link_expires", av(items::timestamp(expires_at)));
        match slot.via {
            Some(attribute) => write
                .also(Clause::Set, &format!("{attribute} = :link_via"))
                .value(":link_via", av(via.as_str())),
            None => write,
        }
    }

    /// Spends the link `hash` in the slot of `purpose`. Applies only while it is the slot's
    /// current link, unexpired at `now`, issued at the account's current version, and (for
    /// the slots that record it) handed over as `via` said when the caller read it, so that
    /// what the caller decided from `via` holds. The slot is emptied; the hash is kept as
    /// spent, to answer "already used" to a second use.
    pub fn spends_link(
        self,
        purpose: Purpose,
        hash: &TokenHash,
        via: LinkVia,
        now: DateTime<Utc>,
    ) -> Self {
        let slot = slot_attributes(purpose);
        let (current, expires, version) = (slot.hash, slot.expires_at, slot.version);
        let mut write = self
            .condition(&format!(
                "{current} = :link_hash AND {expires} > :link_now AND ({version} = session_version \
                 OR (attribute_not_exists({version}) AND (attribute_not_exists(session_version) \
                 OR session_version = :version_zero)))"
            ))
            .also(Clause::Set, &format!("{} = :link_hash", slot.spent))
            .also(Clause::Remove, &format!("{current}, {expires}, {version}"))
            .value(":link_hash", av(hash.as_str()))
            .value(":link_now", av(items::timestamp(now)))
            .value(":version_zero", number(0));
        if let Some(attribute) = slot.via {
            write = match via {
                LinkVia::Link => write.condition(&format!("{attribute} = :link_via")),
                // Links stored before `via` was recorded were all mailed.
                LinkVia::Email => write.condition(&format!(
                    "attribute_not_exists({attribute}) OR {attribute} = :link_via"
                )),
            }
            .also(Clause::Remove, attribute)
            .value(":link_via", av(via.as_str()));
        }
        write
    }
}
