//! The scheduled expiry sweep: marks invitations past their expiry as `expired`.
//!
//! It reads only the sparse `pending-by-expiry` index (never the table), shard by shard and
//! page by page, and expires each invitation with a conditional write, so it is idempotent
//! and never overrides an accept or a resend that happens at the same moment.

use futures::StreamExt;
use serde::Serialize;

use crate::events::{Actor, EventPublisher, Kind, LifecycleEvent};
use crate::store::items::{PENDING_SHARDS, now};
use crate::store::{Store, StoreError};

/// Updates in flight at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    /// Invitations found past their expiry in the index.
    pub due: u64,
    /// Marked expired by this run.
    pub expired: u64,
    /// Already accepted, resent or expired by someone else in the meantime.
    pub skipped: u64,
}

/// Sweeps every shard, and publishes one `Invitation Expired` event per invitation this run
/// expired (best effort, as every lifecycle event).
pub async fn run(store: &Store, events: &dyn EventPublisher) -> Result<SweepReport, StoreError> {
    let now = now();
    let mut report = SweepReport::default();
    for shard in 0..PENDING_SHARDS {
        let mut start = None;
        loop {
            let (ids, next) = store.due_invitations(shard, now, start).await?;
            report.due += ids.len() as u64;
            let outcomes: Vec<_> =
                futures::stream::iter(ids.iter().map(|id| store.expire_invitation_user(id, now)))
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
            let mut expired = Vec::new();
            for outcome in outcomes {
                match outcome? {
                    Some(user) => {
                        report.expired += 1;
                        expired.push(
                            LifecycleEvent::about(Kind::InvitationExpired, &user, Actor::System)
                                .with_time("expired_at", now),
                        );
                    }
                    None => report.skipped += 1,
                }
            }
            crate::events::emit(events, &expired).await;
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
    }
    tracing::info!(
        due = report.due,
        expired = report.expired,
        skipped = report.skipped,
        "expiry sweep done"
    );
    Ok(report)
}
