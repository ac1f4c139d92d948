//! Account recovery writes: password-reset, email-verification and email-change links, and
//! spending them. Each spend is one conditional write (or transaction) on the exact token,
//! at the account's current version (see [`super::account`]).

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::items::{self, AuditEvent, EmailItem, LinkVia, keys};
use super::{Clause, ConditionalError, Store, User, Write, av, encode};
use crate::domain::{Email, UserStatus};
use crate::token::{Purpose, TokenHash};

impl Store {
    /// Stores a password-reset link for an active user; an earlier link dies. `via` says
    /// whether it is mailed or handed over as a copied link (which proves no mailbox). `audit`
    /// is set when an admin asked for it (a self-service "forgot password" is not an admin
    /// action).
    pub async fn issue_reset(
        &self,
        user: &User,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        via: LinkVia,
        audit: Option<&AuditEvent>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "issue_reset";
        let update = Write::update(keys::user(&user.id))
            .condition("#status = :active")
            .issues_link(Purpose::Reset, user, hash, expires_at, via)
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .build(self, OPERATION)?;
        let mut writes = vec![update];
        if let Some(audit) = audit {
            writes.push(self.audit_write(audit)?);
        }
        self.transact(OPERATION, writes).await
    }

    /// Stores an email-verification link for an active user whose address is unverified.
    pub async fn issue_verify(
        &self,
        user: &User,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "issue_verify";
        let update = Write::update(keys::user(&user.id))
            .condition("#status = :active AND email_verified = :false")
            .issues_link(Purpose::Verify, user, hash, expires_at, LinkVia::Email)
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .value(":false", AttributeValue::Bool(false))
            .build(self, OPERATION)?;
        self.transact(OPERATION, vec![update, self.audit_write(audit)?])
            .await
    }

    /// Spends a reset token: new password, every session and older link revoked (a password
    /// change moves the account's version). The address counts as verified only when the
    /// link was mailed: whoever followed a copied link proved no mailbox.
    pub async fn complete_reset(
        &self,
        user: &User,
        hash: &TokenHash,
        password_hash: &str,
        now: DateTime<Utc>,
        extra: Vec<TransactWriteItem>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "complete_reset";
        let via = user.link_slot(Purpose::Reset).via;
        let mut update = Write::update(keys::user(&user.id))
            .set("password_hash = :ph, updated_at = :now")
            .condition("#status = :active")
            .spends_link(Purpose::Reset, hash, via, now)
            .changes_account(user)
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .value(":ph", av(password_hash))
            .value(":now", av(items::timestamp(now)));
        if via == LinkVia::Email {
            update = update
                .also(Clause::Set, "email_verified = :verified")
                .value(":verified", AttributeValue::Bool(true));
        }
        let mut writes = vec![update.build(self, OPERATION)?];
        writes.extend(extra);
        self.transact(OPERATION, writes).await
    }

    pub async fn complete_verify(
        &self,
        user: &User,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "complete_verify";
        let update = Write::update(keys::user(&user.id))
            .set("email_verified = :t, updated_at = :now")
            .spends_link(Purpose::Verify, hash, LinkVia::Email, now)
            .value(":t", AttributeValue::Bool(true))
            .value(":now", av(items::timestamp(now)))
            .build(self, OPERATION)?;
        self.transact(OPERATION, vec![update]).await
    }

    /// Records a requested move to `new_email`; the address is claimed only on confirmation.
    pub async fn issue_email_change(
        &self,
        user: &User,
        new_email: &Email,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "issue_email_change";
        let update = Write::update(keys::user(&user.id))
            .set("pending_email = :new")
            .condition("#status = :active AND email = :old")
            .issues_link(Purpose::EmailChange, user, hash, expires_at, LinkVia::Email)
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .value(":new", av(new_email.as_str()))
            .value(":old", av(user.email.as_str()))
            .build(self, OPERATION)?;
        self.transact(OPERATION, vec![update, self.audit_write(audit)?])
            .await
    }

    /// Moves the same user (id, role, tenant, history) to the confirmed address in one
    /// transaction: the old claim is released and the new one taken, so one account per
    /// email holds throughout. A new address is a change of the account: every session and
    /// every other link issued for the old one ends. A conflict means the token is stale or
    /// the address was taken.
    pub async fn complete_email_change(
        &self,
        user: &User,
        new_email: &Email,
        hash: &TokenHash,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "complete_email_change";
        let update = Write::update(keys::user(&user.id))
            .set(
                "email = :new, GSI1SK = :sk, email_verified = :t, updated_at = :now \
                 REMOVE pending_email",
            )
            .condition("email = :old AND pending_email = :new")
            .spends_link(Purpose::EmailChange, hash, LinkVia::Email, now)
            .changes_account(user)
            .value(":new", av(new_email.as_str()))
            .value(":old", av(user.email.as_str()))
            .value(":sk", av(items::keys::tenant_user(new_email, &user.id)))
            .value(":t", AttributeValue::Bool(true))
            .value(":now", av(items::timestamp(now)))
            .build(self, OPERATION)?;
        let release = Write::delete(keys::email(&user.email))
            .condition("user_id = :id")
            .value(":id", av(user.id.as_str()))
            .build(self, OPERATION)?;
        let claim = encode(OPERATION, EmailItem::new(new_email, &user.id, &user.tenant))?;
        let claim = self.put(OPERATION, claim, Some("attribute_not_exists(PK)"))?;
        self.transact(
            OPERATION,
            vec![update, release, claim, self.audit_write(audit)?],
        )
        .await
    }
}
