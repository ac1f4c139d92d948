//! The scheduled expiry sweep: marks invitations past their expiry as `expired`.
//!
//! It reads only the sparse `pending-by-expiry` index (never the table), shard by shard and
//! page by page, and expires each invitation with a conditional write, so it is idempotent
//! and never overrides an accept or a resend that happens at the same moment.

use futures::StreamExt;
use serde::Serialize;

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

pub async fn run(store: &Store) -> Result<SweepReport, StoreError> {
    let now = now();
    let mut report = SweepReport::default();
    for shard in 0..PENDING_SHARDS {
        let mut start = None;
        loop {
            let (ids, next) = store.due_invitations(shard, now, start).await?;
            report.due += ids.len() as u64;
            let outcomes: Vec<Result<bool, StoreError>> =
                futures::stream::iter(ids.iter().map(|id| store.expire_invitation(id, now)))
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
            for outcome in outcomes {
                if outcome? {
                    report.expired += 1;
                } else {
                    report.skipped += 1;
                }
            }
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
