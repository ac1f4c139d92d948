//! Issue 3's races: resend against accept, resend against resend, sweep against resend.

use latchkey_tests::*;
use serde_json::json;

#[tokio::test]
async fn of_a_resend_and_an_accept_at_the_same_moment_exactly_one_wins() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    for _ in 0..5 {
        let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;
        let token = mailed_tokens(&stack, &email, "accept-invite")
            .await
            .remove(0);

        let (accepted, resent) =
            tokio::join!(api.accept(&token, PASSWORD), api.resend(&admin, &id));

        let status = api.user(&admin, &id).await.json["status"]
            .as_str()
            .unwrap()
            .to_owned();
        match (accepted.status, resent.status) {
            (200, 409) => assert_eq!(status, "active"),
            (400, 200) => {
                assert_eq!(accepted.code(), "token_invalid");
                assert_eq!(status, "invited");
            }
            other => panic!(
                "both or neither won: {other:?} {} {}",
                accepted.text, resent.text
            ),
        }
    }
}

#[tokio::test]
async fn after_two_concurrent_resends_exactly_one_link_survives() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;

    let (a, b) = tokio::join!(api.resend(&admin, &id), api.resend(&admin, &id));

    for r in [&a, &b] {
        assert!(r.status == 200 || r.code() == "conflict", "{}", r.text);
    }
    let mut live = 0;
    for token in mailed_tokens(&stack, &email, "accept-invite").await {
        if invite_token_is_live(&api, &token).await {
            live += 1;
        }
    }
    assert_eq!(live, 1);
}

#[tokio::test]
async fn the_sweep_expires_due_invitations_once_and_accepting_then_says_expired() {
    let stack = stack_with("INVITE_TTL_SECONDS", "1").await;
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    let token = mailed_tokens(&stack, &email, "accept-invite")
        .await
        .remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let report = stack.invoke("expiry-sweep", json!({})).await.unwrap();
    let again = stack.invoke("expiry-sweep", json!({})).await.unwrap();

    assert_eq!(
        (report["due"].as_u64(), report["expired"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(
        (again["due"].as_u64(), again["expired"].as_u64()),
        (Some(0), Some(0)),
        "the expired invitation left the index: {again}"
    );
    let listed = api
        .get(
            &format!("/v1/tenants/{tenant}/users?status=expired"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        listed.json["users"][0]["id"],
        id.as_str(),
        "{}",
        listed.text
    );
    let refused = api.accept(&token, PASSWORD).await;
    refused.assert_problem(410, "token_expired");
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("new invitation")
    );
}

#[tokio::test]
async fn resending_an_expired_invitation_makes_it_pending_again() {
    // The default TTL, so that the resent link outlives a slow machine; the first invitation
    // is made past due in the table instead of by waiting for a short TTL.
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;
    backdate_invitation(&stack, &id).await;
    stack.invoke("expiry-sweep", json!({})).await.unwrap();
    assert_eq!(api.user(&admin, &id).await.json["status"], "expired");

    assert_eq!(api.resend(&admin, &id).await.status, 200);

    assert_eq!(api.user(&admin, &id).await.json["status"], "invited");
    let tokens = mailed_tokens(&stack, &email, "accept-invite").await;
    assert_eq!(
        api.accept(tokens.last().unwrap(), PASSWORD).await.status,
        200
    );
}

#[tokio::test]
async fn a_sweep_racing_resends_never_expires_a_fresh_invitation() {
    let stack = TestStack::builder()
        .instances(4)
        .env("INVITE_TTL_SECONDS", "4")
        .start()
        .await
        .unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let rows: Vec<_> = (0..12)
        .map(|_| json!({"email": unique_email("sw")}))
        .collect();
    let invited = api.invite(&admin, &tenant, json!(rows)).await;
    let ids: Vec<String> = invited.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;

    let resends = futures::future::join_all(ids.iter().map(|id| api.resend(&admin, id)));
    let (resent, sweep) = tokio::join!(resends, stack.invoke("expiry-sweep", json!({})));

    sweep.unwrap();
    let client = stack.dynamodb_client();
    for (id, resp) in ids.iter().zip(&resent) {
        assert_eq!(resp.status, 200, "{}", resp.text);
        let item = client
            .get_item()
            .table_name(stack.table_name())
            .key(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{id}")),
            )
            .key(
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let stored = item.item().unwrap()["status"].as_s().unwrap().clone();
        assert_eq!(
            stored, "invited",
            "a resent invitation was expired by the sweep"
        );
    }
}
