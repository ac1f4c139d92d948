//! Delivery status: the SES events of `events/` (as EventBridge hands them to the
//! `delivery-status` function) become the user's `last_delivery`, in the user list an admin
//! reads; in any order, at least once, and never on another user.

use latchkey_tests::*;
use serde_json::{Value, json};

/// A committed SES event fixture, about the mail to `email` for user `user_id` (`None`: the
/// mail carries no `user_id` tag).
fn ses_event(name: &str, email: &str, user_id: Option<&str>) -> Value {
    let root = std::env::var("LATCHKEY_ROOT").expect("run under latchkey-local test-env");
    let text = std::fs::read_to_string(format!("{root}/events/{name}.json")).unwrap();
    let text = text
        .replace("ada@acme.test", email)
        .replace("REPLACE_WITH_USER_ID", user_id.unwrap_or(""));
    let mut event: Value = serde_json::from_str(&text).unwrap();
    if user_id.is_none() {
        event["detail"]["mail"]["tags"]
            .as_object_mut()
            .unwrap()
            .remove("user_id");
    }
    event
}

/// The same event about a mail sent at `mail_at`, its outcome at `event_at` (RFC 3339).
fn about_mail_sent_at(mut event: Value, mail_at: &str, event_at: &str) -> Value {
    event["detail"]["mail"]["timestamp"] = json!(mail_at);
    for part in ["bounce", "delivery", "complaint"] {
        if event["detail"].get(part).is_some() {
            event["detail"][part]["timestamp"] = json!(event_at);
        }
    }
    event
}

async fn record(stack: &TestStack, event: Value) -> Value {
    stack
        .invoke("delivery-status", event)
        .await
        .expect("the function never fails on an event")
}

/// `last_delivery` of `email` as the tenant's user list shows it.
async fn listed_delivery(api: &Api, admin: &str, tenant: &str, email: &str) -> Value {
    let list = api
        .get(&format!("/v1/tenants/{tenant}/users"), Some(admin))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} not listed: {}", list.text))["last_delivery"]
        .clone()
}

#[tokio::test]
async fn a_bounce_shows_in_the_user_list_with_its_reason() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    assert_eq!(
        listed_delivery(&api, &admin, &tenant, &email).await,
        Value::Null
    );

    let report = record(&stack, ses_event("delivery-status", &email, Some(&id))).await;

    assert_eq!(report["result"], "recorded", "{report}");
    let delivery = listed_delivery(&api, &admin, &tenant, &email).await;
    assert_eq!(delivery["status"], "bounced");
    assert_eq!(delivery["at"], "2026-11-23T13:00:01Z");
    let reason = delivery["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Permanent bounce (General): smtp; 550 5.1.1"),
        "{reason}"
    );
    assert!(delivery.get("seq").is_none(), "the order key is internal");
    let one = api.user(&admin, &id).await;
    assert_eq!(one.json["last_delivery"], delivery);
}

#[tokio::test]
async fn the_newest_outcome_wins_whatever_order_the_events_arrive_in() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    let status =
        || async { listed_delivery(&api, &admin, &tenant, &email).await["status"].clone() };

    // One mail: the complaint (13:05) arrives before its delivery (13:00:01).
    let complaint = ses_event("delivery-status-complaint", &email, Some(&id));
    assert_eq!(
        record(&stack, complaint.clone()).await["result"],
        "recorded"
    );
    let late_delivery = ses_event("delivery-status-delivery", &email, Some(&id));
    assert_eq!(
        record(&stack, late_delivery.clone()).await["result"],
        "skipped"
    );
    assert_eq!(status().await, "complained");

    // Delivered twice (EventBridge delivers at least once): the repeat changes nothing.
    assert_eq!(record(&stack, complaint).await["result"], "skipped");
    assert_eq!(status().await, "complained");

    // A newer mail is delivered; then a bounce of the older mail arrives late.
    let newer = about_mail_sent_at(
        late_delivery,
        "2026-11-23T14:00:00.000Z",
        "2026-11-23T14:00:01.000Z",
    );
    assert_eq!(record(&stack, newer).await["result"], "recorded");
    assert_eq!(status().await, "delivered");
    let old_bounce = ses_event("delivery-status", &email, Some(&id));
    assert_eq!(record(&stack, old_bounce).await["result"], "skipped");
    assert_eq!(status().await, "delivered");
}

#[tokio::test]
async fn of_events_delivered_at_once_the_newest_outcome_wins() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    // Three mails' outcomes, the newest (a complaint about the 15:00 mail) in the middle, each
    // delivered twice, as EventBridge may.
    let outcomes = [
        ("delivery-status-delivery", "2026-11-23T14:00:00.000Z"),
        ("delivery-status-complaint", "2026-11-23T15:00:00.000Z"),
        ("delivery-status", "2026-11-23T13:00:00.000Z"),
    ];
    let events: Vec<Value> = outcomes
        .iter()
        .flat_map(|(fixture, mail_at)| {
            let event = about_mail_sent_at(
                ses_event(fixture, &email, Some(&id)),
                mail_at,
                "2026-11-23T16:00:00.000Z",
            );
            [event.clone(), event]
        })
        .collect();

    let results =
        futures::future::join_all(events.into_iter().map(|event| record(&stack, event))).await;

    let recorded = results.iter().filter(|r| r["result"] == "recorded").count();
    assert!((1..=3).contains(&recorded), "{results:?}");
    assert_eq!(
        listed_delivery(&api, &admin, &tenant, &email).await["status"],
        "complained"
    );
}

#[tokio::test]
async fn an_untagged_event_is_matched_by_its_recipient_address() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, _) = tenant_with_invitee(&stack, &api).await;

    let report = record(&stack, ses_event("delivery-status", &email, None)).await;

    assert_eq!(report["result"], "recorded", "{report}");
    assert_eq!(
        listed_delivery(&api, &admin, &tenant, &email).await["status"],
        "bounced"
    );
}

#[tokio::test]
async fn an_event_never_marks_a_user_it_is_not_about() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, victim_email, victim) = tenant_with_invitee(&stack, &api).await;
    let other_email = unique_email("other");
    api.invite(&admin, &tenant, json!([{"email": other_email}]))
        .await;

    // The victim's id with another user's address; the victim's id with an unknown address.
    for event in [
        ses_event("delivery-status", &other_email, Some(&victim)),
        ses_event("delivery-status", &unique_email("nobody"), Some(&victim)),
        ses_event("delivery-status", &unique_email("nobody"), None),
    ] {
        assert_eq!(record(&stack, event).await["result"], "skipped");
    }
    for email in [&victim_email, &other_email] {
        assert_eq!(
            listed_delivery(&api, &admin, &tenant, email).await,
            Value::Null,
            "{email}"
        );
    }
}

#[tokio::test]
async fn malformed_and_foreign_events_are_skipped_without_a_function_error() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    let bounce = ses_event("delivery-status", &email, Some(&id));
    let mut forged_source = bounce.clone();
    forged_source["source"] = json!("custom.app");
    let mut opened = bounce.clone();
    opened["detail"]["eventType"] = json!("Open");
    let mut wrong_types = bounce.clone();
    wrong_types["detail"]["bounce"]["bouncedRecipients"] = json!("ada");
    let mut huge = bounce.clone();
    huge["detail"]["bounce"]["bouncedRecipients"] =
        json!(vec![json!({"emailAddress": "x@example.com"}); 5000]);

    for event in [
        json!(null),
        json!("a string"),
        json!({}),
        json!({"source": "aws.ses", "detail": {"eventType": "Bounce"}}),
        forged_source,
        opened,
        wrong_types,
        huge,
    ] {
        let report = record(&stack, event).await;
        assert_eq!(report["result"], "skipped", "{report}");
        assert!(
            report["skipped_because"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
    }
    assert_eq!(
        listed_delivery(&api, &admin, &tenant, &email).await,
        Value::Null
    );
}

#[tokio::test]
async fn cargo_lambda_invoke_feeds_a_fixture_to_the_function() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    let file = std::env::temp_dir().join(format!("{}.json", unique("delivery")));
    let event = ses_event("delivery-status-delivery", &email, Some(&id));
    std::fs::write(&file, event.to_string()).unwrap();

    let report = cargo_lambda_invoke(&stack, "delivery-status", &file).await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(report["result"], "recorded", "{report}");
    assert_eq!(
        listed_delivery(&api, &admin, &tenant, &email).await["status"],
        "delivered"
    );
}
