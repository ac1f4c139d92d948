//! Lifecycle events on EventBridge: each change publishes one event of the documented shape
//! (source `latchkey`) to the bus, which the local stack archives on moto; and a bus that
//! refuses them never fails the request.

use std::time::Duration;

use latchkey_tests::*;
use serde_json::{Value, json};

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_invitation_publishes_created_resent_accepted_and_cancelled() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    assert_eq!(api.resend(&admin, &id).await.status, 200);
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    let other = unique_email("cancelled");
    let invited = api.invite(&admin, &tenant, json!([{"email": other}])).await;
    let other_id = invited.json["results"][0]["user_id"].as_str().unwrap();
    assert_eq!(api.delete_user(&admin, other_id).await.status, 204);

    let events = events_of(&stack, &tenant, 5).await;

    assert_eq!(
        types(&events),
        [
            "Invitation Created",
            "Invitation Resent",
            "Invitation Accepted",
            "Invitation Created",
            "Invitation Cancelled"
        ]
    );
    let created = &events[0];
    assert_eq!(created["source"], "latchkey");
    let detail = &created["detail"];
    assert_eq!(detail["version"], 1);
    assert_eq!(detail["event"], "invitation.created");
    assert_eq!(detail["user"]["id"], id.as_str());
    assert_eq!(detail["user"]["email"], email.as_str());
    assert_eq!(detail["user"]["role"], "member");
    assert_eq!(detail["actor"]["type"], "user");
    assert!(detail["actor"]["id"].as_str().is_some());
    assert_eq!(detail["data"]["email_sent"], true);
    assert!(detail["data"]["expires_at"].as_str().is_some());
    assert_eq!(events[2]["detail"]["actor"], json!({"type": "subject"}));
    assert_eq!(events[4]["detail"]["user"]["id"], other_id);
    assert_eq!(events[4]["detail"]["data"]["status"], "invited");
    for event in &events {
        let text = event.to_string();
        assert!(!text.contains(&token), "no event carries a token");
        assert!(!text.contains(PASSWORD), "no event carries a password");
    }
}

#[tokio::test]
async fn password_resets_publish_requested_and_completed() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;

    assert_eq!(api.admin_reset(&admin, &id).await.status, 202);
    assert_eq!(api.forgot(&tenant, &email).await.status, 202);
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    assert_eq!(
        api.reset_password(&token, "a-brand-new-passphrase")
            .await
            .status,
        200
    );

    let events = events_of(&stack, &tenant, 5).await;
    let resets: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail"]["user"]["id"] == id.as_str())
        .filter(|e| {
            e["detail"]["event"]
                .as_str()
                .unwrap()
                .starts_with("password.")
        })
        .collect();
    let kinds: Vec<(&str, &str)> = resets
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap(),
                e["detail"]["actor"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("Password Reset Requested", "user"),
            ("Password Reset Requested", "subject"),
            ("Password Reset Completed", "subject")
        ]
    );
}

#[tokio::test]
async fn the_sweep_publishes_one_expired_event_per_invitation_it_expires() {
    let stack = stack_with("INVITE_TTL_SECONDS", "1").await;
    let api = Api::new(&stack);
    let (_, tenant, _, id) = tenant_with_invitee(&stack, &api).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let report = stack.invoke("expiry-sweep", json!({})).await.unwrap();
    assert!(report["expired"].as_u64().unwrap() >= 1, "{report}");
    stack.invoke("expiry-sweep", json!({})).await.unwrap();

    let events = events_of(&stack, &tenant, 2).await;
    let expired: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == "Invitation Expired")
        .collect();
    assert_eq!(expired.len(), 1, "a second sweep publishes nothing new");
    assert_eq!(expired[0]["detail"]["user"]["id"], id.as_str());
    assert_eq!(expired[0]["detail"]["actor"], json!({"type": "system"}));
}

#[tokio::test]
async fn a_bus_that_refuses_the_events_never_fails_the_request() {
    let stack = stack_with("EVENT_BUS_NAME", "no-such-bus").await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("unpublished");

    let resp = api.invite(&admin, &tenant, json!([{"email": email}])).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["results"][0]["status"], "invited");
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    assert!(events_of(&stack, &tenant, 1).await.is_empty());
}
