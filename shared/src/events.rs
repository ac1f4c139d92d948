//! Lifecycle events on EventBridge, so that operators can hook in Slack, a CRM or a SIEM
//! with a rule on their bus instead of touching this code.
//!
//! Every event has `source: "latchkey"`, a `detail-type` such as `Invitation Created`, and a
//! `detail` of one documented shape ([`LifecycleEvent`]; the README lists every type).
//! Publishing is best effort after the change is stored: a failure is logged as a warning
//! and never fails the user's request. Each published event is also counted as a CloudWatch
//! metric of the same name (embedded metric format, see [`crate::telemetry::metric`]).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::domain::{TenantId, UserId};
use crate::store::User;
use crate::store::items::timestamp;

/// `source` of every event this service publishes.
pub const SOURCE: &str = "latchkey";
/// Version of the `detail` shape; bumped only on a breaking change.
pub const DETAIL_VERSION: u32 = 1;
/// PutEvents takes at most this many entries per call.
const BATCH: usize = 10;
/// PutEvents calls in flight at once.
const CALLS_IN_FLIGHT: usize = 8;

/// What happened. Each is one `detail-type` and one CloudWatch metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    InvitationCreated,
    InvitationResent,
    InvitationAccepted,
    InvitationExpired,
    InvitationCancelled,
    PasswordResetRequested,
    PasswordResetCompleted,
    ImportCompleted,
}

impl Kind {
    pub const ALL: [Self; 8] = [
        Self::InvitationCreated,
        Self::InvitationResent,
        Self::InvitationAccepted,
        Self::InvitationExpired,
        Self::InvitationCancelled,
        Self::PasswordResetRequested,
        Self::PasswordResetCompleted,
        Self::ImportCompleted,
    ];

    /// The EventBridge `detail-type`, e.g. `Invitation Created`.
    pub fn detail_type(self) -> &'static str {
        match self {
            Self::InvitationCreated => "Invitation Created",
            Self::InvitationResent => "Invitation Resent",
            Self::InvitationAccepted => "Invitation Accepted",
            Self::InvitationExpired => "Invitation Expired",
            Self::InvitationCancelled => "Invitation Cancelled",
            Self::PasswordResetRequested => "Password Reset Requested",
            Self::PasswordResetCompleted => "Password Reset Completed",
            Self::ImportCompleted => "Import Completed",
        }
    }

    /// The CloudWatch metric name, e.g. `InvitationCreated`.
    pub fn metric(self) -> String {
        self.detail_type().replace(' ', "")
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// An admin, by id.
    User { id: UserId },
    /// The person the event is about, through a link or a self-service route.
    Subject,
    /// The service itself (the expiry sweep, the import).
    System,
}

/// The `detail` of every lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleEvent {
    #[serde(skip)]
    pub kind: Kind,
    pub version: u32,
    /// `invitation.created`, ...: the same as `detail-type`, for consumers that see only
    /// the detail.
    pub event: String,
    pub at: String,
    pub tenant: TenantId,
    pub actor: Actor,
    /// The user the event is about (absent for `import_completed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Subject>,
    /// Event-specific facts, e.g. `expires_at`, `email_sent`, `via`, or an import's counts.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub id: UserId,
    pub email: String,
    pub role: &'static str,
}

impl Actor {
    /// The admin who made the request.
    pub fn admin(caller: &crate::auth::Caller) -> Self {
        Self::User {
            id: caller.id().clone(),
        }
    }
}

impl LifecycleEvent {
    /// An event about `user` (its tenant, id, address and role), now.
    pub fn about(kind: Kind, user: &User, actor: Actor) -> Self {
        let mut event = Self::in_tenant(kind, &user.tenant, actor);
        event.user = Some(Subject {
            id: user.id.clone(),
            email: user.email.to_string(),
            role: user.role.as_str(),
        });
        event
    }

    /// An event about a tenant as a whole (e.g. an import), now.
    pub fn in_tenant(kind: Kind, tenant: &TenantId, actor: Actor) -> Self {
        let name = kind.detail_type().to_lowercase();
        let event = match name.split_once(' ') {
            Some((what, rest)) => format!("{what}.{}", rest.replace(' ', "_")),
            None => name,
        };
        Self {
            kind,
            version: DETAIL_VERSION,
            event,
            at: timestamp(crate::store::items::now()),
            tenant: tenant.clone(),
            actor,
            user: None,
            data: serde_json::Map::new(),
        }
    }

    /// Adds one event-specific fact.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_time(self, key: &str, at: DateTime<Utc>) -> Self {
        self.with(key, timestamp(at))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("eventbridge PutEvents failed: {0}")]
    Service(String),
    #[error("eventbridge refused {failed} of {total} events: {first}")]
    Refused {
        failed: usize,
        total: usize,
        first: String,
    },
}

/// Where lifecycle events go. Object-safe, so [`crate::app::App`] holds any of them.
pub trait EventPublisher: Send + Sync {
    fn publish<'a>(
        &'a self,
        events: &'a [LifecycleEvent],
    ) -> BoxFuture<'a, Result<(), PublishError>>;
}

/// Publishes to an EventBridge bus (`EVENT_BUS_NAME`, default `default`).
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// One PutEvents call per 10 events, a few at a time (an import announces hundreds).
    async fn put(&self, events: &[LifecycleEvent]) -> Result<(), PublishError> {
        use futures::StreamExt;
        // Built up front as boxed futures: a closure in the stream trips the compiler's
        // higher-ranked lifetime check on the `Send` future this must be.
        let calls: Vec<BoxFuture<'_, Result<(), PublishError>>> = events
            .chunks(BATCH)
            .map(|chunk| Box::pin(self.put_chunk(chunk)) as BoxFuture<'_, _>)
            .collect();
        let results: Vec<_> = futures::stream::iter(calls)
            .buffer_unordered(CALLS_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn put_chunk(&self, chunk: &[LifecycleEvent]) -> Result<(), PublishError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let entries = chunk
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(e.kind.detail_type())
                    .detail(serde_json::to_string(e).unwrap_or_default())
                    .build()
            })
            .collect::<Vec<_>>();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                PublishError::Service(
                    aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        let failed = out.failed_entry_count() as usize;
        if failed > 0 {
            let first = out
                .entries()
                .iter()
                .find_map(|r| r.error_message().map(str::to_owned))
                .unwrap_or_default();
            return Err(PublishError::Refused {
                failed,
                total: chunk.len(),
                first,
            });
        }
        Ok(())
    }
}

impl EventPublisher for EventBridgePublisher {
    fn publish<'a>(
        &'a self,
        events: &'a [LifecycleEvent],
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(self.put(events))
    }
}

/// Publishes nothing: for functions whose role may not publish (no `events:PutEvents` in
/// `infra/template.yaml`; they have no events to publish), so that they link no EventBridge
/// client, and for unit tests.
pub struct NoEvents;

impl EventPublisher for NoEvents {
    fn publish<'a>(&'a self, _: &'a [LifecycleEvent]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Publishes `events` and counts each as a metric. Never fails: a publishing failure is a
/// warning in the log (with the event types and tenant, never an address or a token), because
/// the change it reports is already stored and the caller's request must succeed.
pub async fn emit(publisher: &dyn EventPublisher, events: &[LifecycleEvent]) {
    if events.is_empty() {
        return;
    }
    // One metric line per kind, not per event: an import's batch announces hundreds.
    for kind in Kind::ALL {
        let count = events.iter().filter(|e| e.kind == kind).count() as u64;
        if count > 0 {
            crate::telemetry::metric_count(&kind.metric(), &[], count);
        }
    }
    if let Err(e) = publisher.publish(events).await {
        tracing::warn!(
            error = %e,
            tenant = %events[0].tenant,
            detail_type = events[0].kind.detail_type(),
            count = events.len(),
            "lifecycle events not published"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        let now = crate::store::items::now();
        serde_json::from_value(serde_json::json!({
            "id": UserId::generate().to_string(),
            "tenant": "acme",
            "email": "ada@acme.test",
            "role": "member",
            "status": "invited",
            "email_verified": false,
            "created_at": timestamp(now),
            "updated_at": timestamp(now),
        }))
        .unwrap()
    }

    #[test]
    fn the_detail_has_the_documented_shape() {
        let user = user();
        let admin = UserId::generate();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let event = LifecycleEvent::about(
            Kind::InvitationCreated,
            &user,
            Actor::User { id: admin.clone() },
        )
        .with_time("expires_at", at)
        .with("email_sent", true);
        let detail = serde_json::to_value(&event).unwrap();
        assert_eq!(detail["version"], 1);
        assert_eq!(detail["event"], "invitation.created");
        assert_eq!(detail["tenant"], "acme");
        assert_eq!(detail["actor"]["type"], "user");
        assert_eq!(detail["actor"]["id"], admin.to_string());
        assert_eq!(detail["user"]["id"], user.id.to_string());
        assert_eq!(detail["user"]["email"], "ada@acme.test");
        assert_eq!(detail["user"]["role"], "member");
        assert_eq!(detail["data"]["expires_at"], "2027-01-15T08:00:00Z");
        assert_eq!(detail["data"]["email_sent"], true);
        assert!(detail.get("kind").is_none());
    }

    #[test]
    fn every_kind_has_a_detail_type_an_event_name_and_a_metric() {
        let names: Vec<_> = Kind::ALL
            .iter()
            .map(|k| LifecycleEvent::in_tenant(*k, &TenantId::admin(), Actor::System).event)
            .collect();
        assert_eq!(
            names,
            [
                "invitation.created",
                "invitation.resent",
                "invitation.accepted",
                "invitation.expired",
                "invitation.cancelled",
                "password.reset_requested",
                "password.reset_completed",
                "import.completed"
            ]
        );
        assert_eq!(
            Kind::PasswordResetRequested.metric(),
            "PasswordResetRequested"
        );
    }
}
