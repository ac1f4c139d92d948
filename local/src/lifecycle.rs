//! The lifecycle events the functions published, read back from moto: the local stack
//! archives every event of source `latchkey` on the default bus
//! ([`crate::setup::Aws::ensure_event_archive`]), and moto's `/moto-api/data.json` shows the
//! archive with its events, as EventBridge would hand them to a rule's target.

use anyhow::{Context, Result};
use serde_json::Value;

/// The archive on moto's default bus that keeps every `latchkey` event.
pub const ARCHIVE: &str = "latchkey-lifecycle";

/// Every lifecycle event archived so far, oldest first, as full EventBridge events
/// (`source`, `detail-type`, `time`, `detail`, ...). The emulator is shared: filter by tenant.
pub async fn published(http: &reqwest::Client, moto_url: &str) -> Result<Vec<Value>> {
    let data = crate::emulators::moto_data(http, moto_url)
        .await
        .context("reading moto's data")?;
    let archives = data["events"]["Archive"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(archives
        .into_iter()
        .filter(|a| a["name"] == ARCHIVE)
        .flat_map(|a| a["events"].as_array().cloned().unwrap_or_default())
        .collect())
}
