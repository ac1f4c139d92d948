//! Changes admins make to one user (`PATCH /v1/users/{id}`), and what a sign-in records.
//!
//! A change is one transaction: the user's update, conditioned on the role and status the
//! caller read (so a counter kept beside it can never drift), the audit record of each part of
//! the change, and the tenant's counters when the change moves them.

use chrono::{DateTime, Utc};

use super::items::{self, AuditEvent, keys};
use super::{Clause, ConditionalError, Store, StoreError, User, Write, av};
use crate::domain::{DisplayName, Role};

/// What an admin changes of a user; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    /// `Some(None)` removes the name.
    pub name: Option<Option<DisplayName>>,
}

impl UserChange {
    /// The parts of this change that differ from `user` as it stands.
    pub fn against(&self, user: &User) -> Self {
        Self {
            role: self.role.filter(|role| *role != user.role),
            name: self.name.clone().filter(|name| *name != user.name),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.role.is_none() && self.name.is_none()
    }
}

impl Store {
    /// Applies `change` to `user` with its audit records, if the user still has the role and
    /// status the caller read. A role change is a change of the account
    /// ([`Write::changes_account`]): it ends the user's sessions and links and keeps the operator tenant's count of active team_admins; the last one is
    /// never demoted ([`ConditionalError::Conflict`]).
    pub async fn change_user(
        &self,
        user: &User,
        change: &UserChange,
        audits: &[AuditEvent],
        now: DateTime<Utc>,
    ) -> Result<(), ConditionalError> {
        const OPERATION: &str = "change_user";
        let mut write = Write::update(keys::user(&user.id))
            .set("SET updated_at = :now")
            .condition("#role = :old_role AND #status = :old_status")
            .name("#role", "role")
            .name("#status", "status")
            .value(":old_role", av(user.role.as_str()))
            .value(":old_status", av(user.status.as_str()))
            .value(":now", av(items::timestamp(now)));
        if let Some(role) = change.role {
            write = write
                .also(Clause::Set, "#role = :role")
                .value(":role", av(role.as_str()))
                .changes_account(user);
        }
        match &change.name {
            None => {}
            Some(Some(name)) => {
                write = write
                    .also(Clause::Set, "#name = :name")
                    .name("#name", "name")
                    .value(":name", av(name.as_str()));
            }
            Some(None) => {
                write = write.also(Clause::Remove, "#name").name("#name", "name");
            }
        }
        let mut writes = vec![write.build(self, OPERATION)?];
        for audit in audits {
            writes.push(self.audit_write(audit)?);
        }
        if let Some(role) = change.role
            && user.status == crate::domain::UserStatus::Active
        {
            match (user.role == Role::TeamAdmin, role == Role::TeamAdmin) {
                (true, false) => writes.push(self.team_admin_count(OPERATION, -1)?),
                (false, true) => writes.push(self.team_admin_count(OPERATION, 1)?),
                _ => {}
            }
        }
        self.transact(OPERATION, writes).await
    }

    /// Records a successful sign-in on the user, for the list's `last_sign_in_at`. Only on a
    /// user that still exists: a sign-in racing a deletion must not write a bare item.
    pub async fn record_sign_in(
        &self,
        id: &crate::domain::UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "record_sign_in";
        let out = self
            .update_at(keys::user(id))
            .update_expression("SET last_sign_in_at = :at")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", av(items::timestamp(at)))
            .send()
            .await;
        super::applied(OPERATION, out).map(|_| ())
    }
}
