//! The invitation lifecycle after creation: reissuing links, reset links, role changes,
//! deletion, the expiry sweep and the audit trail. Every admin action is written in one
//! transaction with its audit record, so there is never an action without its record.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::items::{self, AuditEvent, AuditItem, LinkVia, keys};
use super::{
    ConditionalError, Page, Partition, Store, StoreError, User, Write, av, decode, encode,
};
use crate::domain::{Role, TenantId, UserId, UserStatus};
use crate::token::{Purpose, TokenHash};

/// A change to an invitation link, decided by the caller.
pub struct Reissue<'a> {
    pub hash: &'a TokenHash,
    pub via: LinkVia,
    pub expires_at: DateTime<Utc>,
    /// Set when the link goes out by mail now.
    pub sent_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The `admin` tenant's count of active team_admins; a decrement is refused at one.
    pub(crate) fn team_admin_count(
        &self,
        operation: &'static str,
        delta: i32,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition = if delta < 0 {
            "attribute_exists(PK) AND active_team_admins > :one"
        } else {
            "attribute_exists(PK)"
        };
        let mut write = Write::update(keys::tenant(&TenantId::admin()))
            .set("ADD active_team_admins :d")
            .condition(condition)
            .value(":d", AttributeValue::N(delta.to_string()));
        if delta < 0 {
            write = write.value(":one", AttributeValue::N("1".into()));
        }
        write.build(self, operation)
    }

    /// The increment that counts a newly created active team_admin (bootstrap).
    pub fn team_admin_count_write(&self) -> Result<TransactWriteItem, StoreError> {
        self.team_admin_count("create_user", 1)
    }

    fn audit_put(
        &self,
        operation: &'static str,
        event: &AuditEvent,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = encode(operation, AuditItem::new(event.clone()))?;
        self.put(operation, item, None)
    }

    pub fn audit_write(&self, event: &AuditEvent) -> Result<TransactWriteItem, StoreError> {
        self.audit_put("audit", event)
    }

    /// Condition that the user's invitation slot still holds what the caller read, so that of
    /// two concurrent reissues exactly one applies (and only its link survives).
    fn unchanged_invite(write: Write, user: &User) -> Write {
        let write = write
            .name("#status", "status")
            .value(":invited", av(UserStatus::Invited.as_str()))
            .value(":expired", av(UserStatus::Expired.as_str()));
        match &user.invite_token_hash {
            Some(old) => write
                .condition("#status IN (:invited, :expired) AND invite_token_hash = :old")
                .value(":old", av(old.clone())),
            None => write.condition(
                "#status IN (:invited, :expired) AND attribute_not_exists(invite_token_hash)",
            ),
        }
    }

    /// Replaces the invitation link (resend or copyable link): the old link dies, the expiry
    /// restarts and an expired invitation is pending again.
    pub async fn reissue_invite(
        &self,
        user: &User,
        change: &Reissue<'_>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "reissue_invite";
        let expires = items::timestamp(change.expires_at);
        let mut set = String::from(
            "SET #status = :invited, updated_at = :now, GSI2PK = :shard, GSI2SK = :pending",
        );
        if change.sent_at.is_some() {
            set.push_str(", last_invite_sent_at = :now");
        }
        let write = Write::update(keys::user(&user.id))
            .set(&set)
            .issues_link(
                Purpose::Invite,
                user,
                change.hash,
                change.expires_at,
                change.via,
            )
            .value(
                ":now",
                av(items::timestamp(
                    change
                        .sent_at
                        .or(audit.map(|a| a.at))
                        .unwrap_or_else(items::now),
                )),
            )
            .value(":shard", av(keys::pending_shard(&user.id)))
            .value(":pending", av(format!("{expires}#{}", user.id)));
        let mut writes = vec![Self::unchanged_invite(write, user).build(self, OPERATION)?];
        if let Some(audit) = audit {
            writes.push(self.audit_put(OPERATION, audit)?);
        }
        self.transact(OPERATION, writes).await
    }

    /// Deletes the user and frees the address; an invitation's links die with the item.
    pub async fn delete_user(
        &self,
        user: &User,
        audit: &AuditEvent,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "delete_user";
        let delete = Write::delete(keys::user(&user.id))
            .condition("#role = :role AND #status = :status")
            .name("#role", "role")
            .name("#status", "status")
            .value(":role", av(user.role.as_str()))
            .value(":status", av(user.status.as_str()))
            .build(self, OPERATION)?;
        let claim = Write::delete(keys::email(&user.email))
            .condition("user_id = :id")
            .value(":id", av(user.id.as_str()))
            .build(self, OPERATION)?;
        let mut writes = vec![delete, claim, self.audit_put(OPERATION, audit)?];
        if user.status == UserStatus::Active && user.role == Role::TeamAdmin {
            writes.push(self.team_admin_count(OPERATION, -1)?);
        }
        self.transact(OPERATION, writes).await
    }

    /// A tenant's audit trail, newest first.
    /// A page of the tenant's audit trail, newest first; with `about`, only the events whose
    /// target is that user (read from the index, not filtered).
    pub async fn list_audit(
        &self,
        tenant: &TenantId,
        about: Option<&UserId>,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let partition = match about {
            None => Partition::Table {
                pk: keys::audit(tenant),
            },
            Some(user) => Partition::TenantUsersIndex {
                pk: keys::user_audit(tenant, user),
                table_pk: keys::audit(tenant),
            },
        };
        let page = self
            .partition_page::<AuditItem>("list_audit", partition, true, cursor, limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.event).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// One page of invitations in `shard` whose expiry is before `now` (keys only).
    pub async fn due_invitations(
        &self,
        shard: u8,
        now: DateTime<Utc>,
        start: Option<std::collections::HashMap<String, AttributeValue>>,
    ) -> Result<
        (
            Vec<UserId>,
            Option<std::collections::HashMap<String, AttributeValue>>,
        ),
        StoreError,
    > {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(items::PENDING_INDEX)
            .key_condition_expression("GSI2PK = :shard AND GSI2SK < :cutoff")
            .expression_attribute_values(":shard", av(format!("PENDING#{shard}")))
            .expression_attribute_values(":cutoff", av(items::timestamp(now)))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::sdk("due_invitations", e))?;
        let ids = out
            .items()
            .iter()
            .filter_map(|item| {
                item.get("PK")?
                    .as_s()
                    .ok()?
                    .strip_prefix("USER#")
                    .and_then(UserId::parse)
            })
            .collect();
        Ok((ids, out.last_evaluated_key))
    }

    /// Marks one invitation expired if it is still pending and past its expiry. Returns
    /// false when an accept, a resend or an earlier sweep got there first.
    pub async fn expire_invitation(
        &self,
        id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self.expire_invitation_user(id, now).await?.is_some())
    }

    /// [`Self::expire_invitation`], returning the user as expired (for its lifecycle event;
    /// the same single write, no extra read), or `None` when someone else got there first.
    pub async fn expire_invitation_user(
        &self,
        id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let out = self
            .update_at(keys::user(id))
            .update_expression("SET #status = :expired, updated_at = :now REMOVE GSI2PK, GSI2SK")
            .condition_expression("#status = :invited AND invite_expires_at <= :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expired", av(UserStatus::Expired.as_str()))
            .expression_attribute_values(":invited", av(UserStatus::Invited.as_str()))
            .expression_attribute_values(":now", av(items::timestamp(now)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Ok(Some(
                    decode::<items::UserItem>("expire_invitation", item)?.user,
                ))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(None)
            }
            Err(e) => Err(StoreError::sdk("expire_invitation", e)),
        }
    }
}
