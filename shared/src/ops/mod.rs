//! One module per operation: its request shape, its error enum, its handler.

use crate::auth::Caller;
use crate::store::items::now;
use crate::store::{AuditEvent, Party, User};

pub mod accept;
pub mod access_link;
pub mod audit;
pub mod bootstrap;
pub mod invite;
pub mod pages;
pub mod resend;
pub mod sessions;
pub mod sweep;
pub mod tenants;
pub mod users;

/// The audit record of an admin action by `caller` on `target`.
pub fn audit(caller: &Caller, action: &str, target: &User, detail: Option<String>) -> AuditEvent {
    AuditEvent {
        at: now(),
        tenant: target.tenant.clone(),
        actor: Party::of(&caller.user),
        action: action.to_owned(),
        target: Party::of(target),
        detail,
    }
}
