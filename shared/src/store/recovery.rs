//! Account recovery writes: password-reset, email-verification and email-change links, and
//! spending them. Each spend is one conditional write (or transaction) on the exact token.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::items::{self, AuditEvent, EmailItem, keys};
use super::{ConditionalError, Store, User, Write, av, encode};
use crate::domain::{Email, UserStatus};
use crate::token::TokenHash;

impl Store {
    /// Stores a password-reset link for an active user; an earlier link dies. `audit` is set
    /// when an admin asked for it (a self-service "forgot password" is not an admin action).
    pub async fn issue_reset(
        &self,
        user: &User,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "issue_reset";
        self.issue_slot(
            OPERATION,
            user,
            "reset",
            hash,
            expires_at,
            "#status = :active",
            audit,
        )
        .await
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
        self.issue_slot(
            OPERATION,
            user,
            "verify",
            hash,
            expires_at,
            "#status = :active AND email_verified = :false",
            Some(audit),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_slot(
        &self,
        operation: &'static str,
        user: &User,
        slot: &str,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
        condition: &str,
        audit: Option<&AuditEvent>,
    ) -> Result<(), ConditionalError> {
        let update = Write::update(keys::user(&user.id))
            .set(&format!("{slot}_token_hash = :h, {slot}_expires_at = :exp"))
            .condition(condition)
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .value(":h", av(hash.as_str()))
            .value(":exp", av(items::timestamp(expires_at)));
        let update = if condition.contains(":false") {
            update.value(":false", AttributeValue::Bool(false))
        } else {
            update
        };
        let mut writes = vec![update.build(self, operation)?];
        if let Some(audit) = audit {
            writes.push(self.audit_write(audit)?);
        }
        self.transact(operation, writes).await
    }

    /// Spends a reset token: new password, every session and older link revoked, and the
    /// address counts as verified (the person proved the mailbox).
    pub async fn complete_reset(
        &self,
        user: &User,
        hash: &TokenHash,
        password_hash: &str,
        now: DateTime<Utc>,
        extra: Vec<TransactWriteItem>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "complete_reset";
        let update = Write::update(keys::user(&user.id))
            .set(
                "SET password_hash = :ph, email_verified = :t, updated_at = :now, spent_reset_token_hash = :h \
                 ADD session_version :one REMOVE reset_token_hash, reset_expires_at",
            )
            .condition("#status = :active AND reset_token_hash = :h AND reset_expires_at > :now")
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .value(":ph", av(password_hash))
            .value(":t", AttributeValue::Bool(true))
            .value(":now", av(items::timestamp(now)))
            .value(":h", av(hash.as_str()))
            .value(":one", AttributeValue::N("1".into()))
            .build(self, OPERATION)?;
        let mut writes = vec![update];
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
            .set("SET email_verified = :t, updated_at = :now, spent_verify_token_hash = :h REMOVE verify_token_hash, verify_expires_at")
            .condition("verify_token_hash = :h AND verify_expires_at > :now")
            .value(":t", AttributeValue::Bool(true))
            .value(":now", av(items::timestamp(now)))
            .value(":h", av(hash.as_str()))
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
            .set("pending_email = :new, email_change_token_hash = :h, email_change_expires_at = :exp")
            .condition("#status = :active AND email = :old")
            .name("#status", "status")
            .value(":active", av(UserStatus::Active.as_str()))
            .value(":new", av(new_email.as_str()))
            .value(":old", av(user.email.as_str()))
            .value(":h", av(hash.as_str()))
            .value(":exp", av(items::timestamp(expires_at)))
            .build(self, OPERATION)?;
        self.transact(OPERATION, vec![update, self.audit_write(audit)?])
            .await
    }

    /// Moves the same user (id, role, tenant, history) to the confirmed address in one
    /// transaction: the old claim is released and the new one taken, so one account per
    /// email holds throughout. A conflict means the token is stale or the address was taken.
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
                "SET email = :new, GSI1SK = :sk, email_verified = :t, updated_at = :now, spent_email_change_token_hash = :h \
                 REMOVE pending_email, email_change_token_hash, email_change_expires_at",
            )
            .condition("email = :old AND pending_email = :new AND email_change_token_hash = :h AND email_change_expires_at > :now")
            .value(":new", av(new_email.as_str()))
            .value(":old", av(user.email.as_str()))
            .value(":sk", av(items::keys::tenant_user(new_email, &user.id)))
            .value(":t", AttributeValue::Bool(true))
            .value(":now", av(items::timestamp(now)))
            .value(":h", av(hash.as_str()))
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
