//! Delivery status: what SES says happened to a mail, recorded on its user so that the admin
//! list shows `bounced` and the admin knows to hand over an access link instead.
//!
//! Every mail is sent with the SES configuration set (`SES_CONFIGURATION_SET`) and tagged with
//! its user's id. SES publishes the set's events to the default EventBridge bus, and a rule
//! hands sends, deliveries, bounces, complaints, rejects and delays to the `delivery-status`
//! function, which calls [`handle`].
//!
//! - **Which user**: the mail's `user_id` tag, else the recipient's address through its
//!   `EMAIL#` claim. Either way the write is conditioned on the recipient being that user's
//!   address (or the one they are moving to), so no event can mark another user.
//! - **Order**: outcomes are ordered by when the mail was sent, then by when the event
//!   happened ([`Delivery::seq_of`]); the write is conditioned on being newer than what is
//!   recorded, so a late or repeated event changes nothing. Events arrive out of order and
//!   at least once; the result is the same in any order.
//! - **Anything else** (another source, an event type that is not an outcome, a malformed
//!   or hostile body, an unknown user) is logged and skipped: never an error, so EventBridge
//!   does not retry it. Only a failing table is an error, and is retried.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Email, UserId};
use crate::store::{Delivery, Store, StoreError};

/// The name of the SES message tag that carries the user's id.
pub const USER_TAG: &str = "user_id";

/// Recipients looked at per event: our mails have one; a hostile event may list thousands.
const MAX_RECIPIENTS: usize = 10;
/// Longest reason kept (SMTP diagnostics can be long).
const MAX_REASON: usize = 300;

/// What happened to a mail, as the user list shows it in `last_delivery.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// SES accepted it and will try to deliver it.
    Sent,
    /// The recipient's mail server accepted it.
    Delivered,
    /// The recipient's mail server refused it (hard bounce, or soft after SES gave up).
    Bounced,
    /// The recipient marked it as spam.
    Complained,
    /// SES refused to send it (e.g. it found a virus).
    Rejected,
    /// Delivery is delayed; SES keeps trying.
    Delayed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Rejected => "rejected",
            Self::Delayed => "delayed",
        }
    }

    /// From `detail.eventType` of an SES event.
    fn from_event_type(event_type: &str) -> Option<Self> {
        Some(match event_type {
            "Send" => Self::Sent,
            "Delivery" => Self::Delivered,
            "Bounce" => Self::Bounced,
            "Complaint" => Self::Complained,
            "Reject" => Self::Rejected,
            "DeliveryDelay" => Self::Delayed,
            _ => return None,
        })
    }
}

/// Why an event was skipped. Each is logged; none is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("not an SES event")]
    NotSes,
    #[error("SES event type {0:?} is not a delivery outcome")]
    NotAnOutcome(String),
    #[error("malformed SES event: {0}")]
    Malformed(&'static str),
    #[error("no recipient of the mail is a known user")]
    UnknownUser,
    #[error("not applied: a newer outcome is recorded, or the recipient is not the user's address")]
    NotApplied,
}

/// Why [`handle`] failed: only the table. Everything about the event itself is a [`Skip`].
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An SES event, parsed: everything the rule needs and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesEvent {
    pub outcome: Outcome,
    /// From the `user_id` tag, when it is a well-formed user id.
    pub user_id: Option<UserId>,
    /// The recipients the outcome is about (at most [`MAX_RECIPIENTS`], each a valid address).
    pub recipients: Vec<Email>,
    pub mail_at: DateTime<Utc>,
    pub event_at: DateTime<Utc>,
    pub reason: Option<String>,
}

// The wire shape of an SES event on EventBridge: the envelope, and in `detail` the SES event
// publishing record. Unknown fields are ignored; missing optional ones default.

#[derive(Deserialize)]
struct Envelope {
    source: String,
    #[serde(default)]
    time: Option<String>,
    detail: Detail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    event_type: String,
    mail: MailPart,
    #[serde(default)]
    bounce: Option<BouncePart>,
    #[serde(default)]
    complaint: Option<ComplaintPart>,
    #[serde(default)]
    delivery: Option<DeliveryPart>,
    #[serde(default)]
    reject: Option<RejectPart>,
    #[serde(default)]
    delivery_delay: Option<DelayPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailPart {
    timestamp: String,
    #[serde(default)]
    destination: Vec<String>,
    #[serde(default)]
    tags: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BouncePart {
    #[serde(default)]
    bounce_type: Option<String>,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<Recipient>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComplaintPart {
    #[serde(default)]
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryPart {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct RejectPart {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayPart {
    #[serde(default)]
    delay_type: Option<String>,
    #[serde(default)]
    delayed_recipients: Vec<Recipient>,
    #[serde(default)]
    timestamp: Option<String>,
}

fn time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reasons are shown to admins: one line, no control characters, bounded.
fn clean(reason: &str) -> Option<String> {
    let line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    let line = line.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

fn addresses<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<Email> {
    raw.take(MAX_RECIPIENTS)
        .filter_map(|a| Email::parse(a).ok())
        .collect()
}

impl SesEvent {
    /// Parses an EventBridge event carrying an SES event, or says why it is not one to record.
    pub fn parse(event: &Value) -> Result<Self, Skip> {
        if event.get("source").and_then(Value::as_str) != Some("aws.ses") {
            return Err(Skip::NotSes);
        }
        let envelope: Envelope = serde_json::from_value(event.clone())
            .map_err(|_| Skip::Malformed("not the shape of an SES event"))?;
        debug_assert_eq!(envelope.source, "aws.ses");
        let detail = envelope.detail;
        let outcome = Outcome::from_event_type(&detail.event_type)
            .ok_or_else(|| Skip::NotAnOutcome(detail.event_type.chars().take(40).collect()))?;
        let mail_at =
            time(&detail.mail.timestamp).ok_or(Skip::Malformed("mail.timestamp is not a time"))?;
        let envelope_at = envelope.time.as_deref().and_then(time);
        let user_id = detail
            .mail
            .tags
            .get(USER_TAG)
            .and_then(|v| v.first())
            .and_then(|raw| UserId::parse(raw));
        let destination = || addresses(detail.mail.destination.iter().map(String::as_str));
        let (recipients, event_at, reason) = match outcome {
            Outcome::Sent => (destination(), Some(mail_at), None),
            Outcome::Rejected => {
                let reason = detail.reject.and_then(|r| r.reason);
                (
                    destination(),
                    envelope_at,
                    reason.as_deref().and_then(clean),
                )
            }
            Outcome::Delivered => {
                let part = detail
                    .delivery
                    .ok_or(Skip::Malformed("a Delivery event without delivery"))?;
                let at = part.timestamp.as_deref().and_then(time);
                (
                    addresses(part.recipients.iter().map(String::as_str)),
                    at,
                    None,
                )
            }
            Outcome::Bounced => {
                let part = detail
                    .bounce
                    .ok_or(Skip::Malformed("a Bounce event without bounce"))?;
                let kind = format!(
                    "{} bounce ({})",
                    part.bounce_type.as_deref().unwrap_or("Undetermined"),
                    part.bounce_sub_type.as_deref().unwrap_or("Undetermined")
                );
                let reason = match part
                    .bounced_recipients
                    .iter()
                    .find_map(|r| r.diagnostic_code.as_deref())
                {
                    Some(diagnostic) => format!("{kind}: {diagnostic}"),
                    None => kind,
                };
                (
                    addresses(
                        part.bounced_recipients
                            .iter()
                            .map(|r| r.email_address.as_str()),
                    ),
                    part.timestamp.as_deref().and_then(time),
                    clean(&reason),
                )
            }
            Outcome::Complained => {
                let part = detail
                    .complaint
                    .ok_or(Skip::Malformed("a Complaint event without complaint"))?;
                let reason = match part.complaint_feedback_type.as_deref() {
                    Some(kind) => format!("marked as spam ({kind})"),
                    None => "marked as spam".to_owned(),
                };
                (
                    addresses(
                        part.complained_recipients
                            .iter()
                            .map(|r| r.email_address.as_str()),
                    ),
                    part.timestamp.as_deref().and_then(time),
                    clean(&reason),
                )
            }
            Outcome::Delayed => {
                let part = detail.delivery_delay.ok_or(Skip::Malformed(
                    "a DeliveryDelay event without deliveryDelay",
                ))?;
                let reason = part.delay_type.as_deref().and_then(clean);
                (
                    addresses(
                        part.delayed_recipients
                            .iter()
                            .map(|r| r.email_address.as_str()),
                    ),
                    part.timestamp.as_deref().and_then(time),
                    reason,
                )
            }
        };
        if recipients.is_empty() {
            return Err(Skip::Malformed("no valid recipient address"));
        }
        Ok(Self {
            outcome,
            user_id,
            recipients,
            mail_at,
            // An event cannot precede its mail; a missing time counts as the mail's.
            event_at: event_at.or(envelope_at).unwrap_or(mail_at).max(mail_at),
            reason,
        })
    }

    pub fn delivery(&self) -> Delivery {
        Delivery {
            status: self.outcome.as_str().to_owned(),
            at: DateTime::from_timestamp(self.event_at.timestamp(), 0).unwrap_or(self.event_at),
            reason: self.reason.clone(),
            seq: Some(Delivery::seq_of(self.mail_at, self.event_at)),
        }
    }
}

/// What one invocation did; the function returns it (visible in `cargo lambda invoke`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    /// `recorded` or `skipped`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
}

impl Report {
    fn skipped(skip: &Skip, outcome: Option<Outcome>) -> Self {
        Self {
            result: "skipped",
            outcome,
            skipped_because: Some(skip.to_string()),
        }
    }
}

/// Records one SES event on its user, or logs why not. Errs only when the table fails (so
/// that EventBridge retries); a hostile or malformed event is skipped.
pub async fn handle(store: &Store, event: &Value) -> Result<Report, DeliveryError> {
    let parsed = match SesEvent::parse(event) {
        Ok(parsed) => parsed,
        Err(skip) => {
            tracing::warn!(reason = %skip, "SES event skipped");
            return Ok(Report::skipped(&skip, None));
        }
    };
    let delivery = parsed.delivery();
    let mut applied = false;
    let mut known = false;
    for recipient in &parsed.recipients {
        let user = match &parsed.user_id {
            Some(id) => Some(id.clone()),
            None => store.find_user_id(recipient).await?,
        };
        let Some(user) = user else { continue };
        known = true;
        if store
            .record_delivery_outcome(&user, recipient, &delivery)
            .await?
        {
            applied = true;
            tracing::info!(
                user_id = %user,
                outcome = parsed.outcome.as_str(),
                recipient = %recipient.redacted(),
                "delivery outcome recorded"
            );
            crate::telemetry::metric("DeliveryOutcome", &[("Outcome", parsed.outcome.as_str())]);
        }
    }
    if applied {
        return Ok(Report {
            result: "recorded",
            outcome: Some(parsed.outcome),
            skipped_because: None,
        });
    }
    let skip = if known {
        Skip::NotApplied
    } else {
        Skip::UnknownUser
    };
    tracing::info!(
        user_id = parsed.user_id.as_ref().map(UserId::as_str),
        outcome = parsed.outcome.as_str(),
        reason = %skip,
        "SES event skipped"
    );
    Ok(Report::skipped(&skip, Some(parsed.outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn with_user(mut event: Value, user: &str) -> Value {
        event["detail"]["mail"]["tags"][USER_TAG] = json!([user]);
        event
    }

    #[test]
    fn each_fixture_parses_to_its_outcome() {
        for (name, outcome) in [
            ("delivery-status", Outcome::Bounced),
            ("delivery-status-complaint", Outcome::Complained),
            ("delivery-status-delivery", Outcome::Delivered),
        ] {
            let event = SesEvent::parse(&with_user(fixture(name), USER)).unwrap();
            assert_eq!(event.outcome, outcome, "{name}");
            assert_eq!(event.user_id.as_ref().map(UserId::as_str), Some(USER));
            assert_eq!(event.recipients.len(), 1, "{name}");
            assert!(event.event_at >= event.mail_at, "{name}");
        }
    }

    #[test]
    fn a_bounce_says_why() {
        let event = SesEvent::parse(&fixture("delivery-status")).unwrap();
        let reason = event.reason.unwrap();
        assert!(reason.starts_with("Permanent bounce (General)"), "{reason}");
        assert!(reason.contains("550"), "{reason}");
    }

    #[test]
    fn a_later_event_about_the_same_mail_sorts_after_an_earlier_one() {
        let delivered = SesEvent::parse(&fixture("delivery-status-delivery")).unwrap();
        let complained = SesEvent::parse(&fixture("delivery-status-complaint")).unwrap();
        assert_eq!(delivered.mail_at, complained.mail_at);
        assert!(delivered.delivery().seq < complained.delivery().seq);
    }

    #[test]
    fn a_later_mail_sorts_after_any_event_of_an_earlier_mail() {
        let old = DateTime::from_timestamp(1_000, 0).unwrap();
        let late_event = DateTime::from_timestamp(9_000, 0).unwrap();
        let new = DateTime::from_timestamp(1_001, 0).unwrap();
        assert!(Delivery::seq_of(old, late_event) < Delivery::seq_of(new, new));
    }

    #[test]
    fn hostile_and_foreign_events_are_skipped_with_a_reason() {
        let bounce = fixture("delivery-status");
        let mut not_ses = bounce.clone();
        not_ses["source"] = json!("latchkey");
        let mut opened = bounce.clone();
        opened["detail"]["eventType"] = json!("Open");
        let mut no_bounce = bounce.clone();
        no_bounce["detail"]
            .as_object_mut()
            .unwrap()
            .remove("bounce");
        let mut bad_time = bounce.clone();
        bad_time["detail"]["mail"]["timestamp"] = json!("yesterday");
        let mut bad_recipient = bounce.clone();
        bad_recipient["detail"]["bounce"]["bouncedRecipients"] =
            json!([{"emailAddress": "x\r\nBcc: y"}]);
        let mut wrong_types = bounce.clone();
        wrong_types["detail"]["mail"] = json!("a string");
        for (event, expected) in [
            (json!(null), Skip::NotSes),
            (json!([1, 2]), Skip::NotSes),
            (json!({"source": "aws.ses"}), Skip::Malformed("")),
            (not_ses, Skip::NotSes),
            (opened, Skip::NotAnOutcome("Open".into())),
            (no_bounce, Skip::Malformed("")),
            (bad_time, Skip::Malformed("")),
            (bad_recipient, Skip::Malformed("")),
            (wrong_types, Skip::Malformed("")),
        ] {
            let got = SesEvent::parse(&event).unwrap_err();
            match expected {
                Skip::Malformed(_) => assert!(matches!(got, Skip::Malformed(_)), "{got:?}"),
                other => assert_eq!(got, other),
            }
        }
    }

    #[test]
    fn a_malformed_user_tag_is_ignored_and_the_address_decides() {
        let event = SesEvent::parse(&with_user(fixture("delivery-status"), "USER#x")).unwrap();
        assert_eq!(event.user_id, None);
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        let mut event = fixture("delivery-status");
        event["detail"]["bounce"]["bouncedRecipients"][0]["diagnosticCode"] =
            json!(format!("smtp;\r\n550 {}", "x".repeat(5000)));
        let reason = SesEvent::parse(&event).unwrap().reason.unwrap();
        assert!(reason.chars().count() <= MAX_REASON);
        assert!(!reason.contains('\n') && !reason.contains('\r'));
    }
}
