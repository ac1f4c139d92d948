//! Races on one invitation: resend against accept, resend against resend, sweep against
//! resend, delete against accept, sweep against accept; on one tenant subdomain; on the last
//! team_admin; and on the bootstrap.

use latchkey_tests::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn of_a_resend_and_an_accept_at_the_same_moment_exactly_one_wins() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    for _ in 0..5 {
        let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;
        let token = first_invitation_token(&stack, &email).await;

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
    let token = first_invitation_token(&stack, &email).await;
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
    let (admin, _, people) = tenant_with_invitees(&stack, &api, 12).await;
    let ids: Vec<&String> = people.iter().map(|(_, id)| id).collect();
    tokio::time::sleep(Duration::from_millis(4100)).await;

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

#[tokio::test]
async fn a_delete_racing_an_accept_leaves_either_an_active_account_or_none() {
    // An accept that lands first makes an active user, which the delete may then remove: both
    // may succeed in that order. What may never happen is a claim on the address with no user
    // behind it, a user without its claim, or a deleted user who can still sign in.
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    // Accepting hashes the password before it writes, so an undelayed delete always lands
    // first; the delete is held back a little longer each round to fall on every step of it.
    for round in 0..8 {
        let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
        let token = first_invitation_token(&stack, &email).await;
        let delete = async {
            tokio::time::sleep(Duration::from_millis(20 * round)).await;
            api.delete_user(&admin, &id).await
        };

        let (accepted, deleted) = tokio::join!(api.accept(&token, PASSWORD), delete);

        let user = api.user(&admin, &id).await;
        let claims = items_with_prefix(&stack, &format!("EMAIL#{email}")).await;
        let signed_in = api.sign_in(&tenant, &email, PASSWORD).await.status;
        match (accepted.status, deleted.status) {
            (200, 204) | (400, 204) => {
                user.assert_problem(404, "not_found");
                assert_eq!(claims, 0, "the deleted user's address stays claimed");
                assert_eq!(signed_in, 401, "a deleted user signed in");
            }
            (200, 409) => {
                assert_eq!(deleted.code(), "conflict", "{}", deleted.text);
                assert_eq!(user.json["status"], "active", "{}", user.text);
                assert_eq!(claims, 1);
                assert_eq!(signed_in, 200);
            }
            other => panic!(
                "unexpected outcome {other:?}: {} / {}",
                accepted.text, deleted.text
            ),
        }
        if accepted.status == 400 {
            assert_eq!(accepted.code(), "token_invalid", "{}", accepted.text);
        }
    }
}

#[tokio::test]
async fn a_sweep_racing_accepts_at_the_deadline_expires_only_those_not_accepted() {
    let stack = TestStack::builder()
        .instances(4)
        .env("INVITE_TTL_SECONDS", "5")
        .start()
        .await
        .unwrap();
    let api = Api::new(&stack);
    // The deadline is at least 5 s after this instant, and not much more.
    let asked = Instant::now();
    let (admin, _, people) = tenant_with_invitees(&stack, &api, 8).await;
    let mut tokens = Vec::new();
    for (email, _) in &people {
        tokens.push(first_invitation_token(&stack, email).await);
    }
    // The accepts straddle the deadline, 150 ms apart, with the sweep among them.
    tokio::time::sleep_until((asked + Duration::from_millis(4500)).into()).await;

    let accepts = futures::future::join_all(tokens.iter().enumerate().map(|(i, token)| {
        let api = &api;
        async move {
            tokio::time::sleep(Duration::from_millis(150 * i as u64)).await;
            api.accept(token, PASSWORD).await
        }
    }));
    let sweep = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        stack.invoke("expiry-sweep", json!({})).await
    };
    let (accepted, swept) = tokio::join!(accepts, sweep);
    swept.unwrap();
    // Whatever the first sweep found not yet due, a second one finds due.
    stack.invoke("expiry-sweep", json!({})).await.unwrap();

    for ((_, id), resp) in people.iter().zip(&accepted) {
        let status = api.user(&admin, id).await.json["status"]
            .as_str()
            .unwrap()
            .to_owned();
        match resp.status {
            200 => assert_eq!(status, "active", "an accepted invitation was swept"),
            410 => {
                assert_eq!(resp.code(), "token_expired", "{}", resp.text);
                assert_eq!(status, "expired", "a refused accept left {status}");
            }
            other => panic!("accept answered {other}: {}", resp.text),
        }
    }
    let mut claims = Vec::new();
    for (email, _) in &people {
        claims.push(items_with_prefix(&stack, &format!("EMAIL#{email}")).await);
    }
    assert!(
        claims.iter().all(|c| *c == 1),
        "each address stays claimed, by an account or by its expired invitation: {claims:?}"
    );
}

#[tokio::test]
async fn of_concurrent_creations_of_one_subdomain_exactly_one_succeeds() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let subdomain = unique("claimed");
    let names: Vec<String> = (0..8).map(|i| format!("Claimant {i}")).collect();

    let bodies: Vec<_> = names
        .iter()
        .map(|name| json!({"name": name, "subdomain": subdomain}))
        .collect();

    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|body| api.post("/v1/tenants", Some(&admin), body)),
    )
    .await;

    let winner = the_only_winner(&answers, 201, (409, "tenant_exists"));
    let mut listed = Vec::new();
    let mut path = "/v1/tenants".to_owned();
    loop {
        let page = api.get(&path, Some(&admin)).await;
        let tenants = page.json["tenants"].as_array().unwrap();
        listed.extend(
            tenants
                .iter()
                .filter(|t| t["id"] == subdomain.as_str())
                .cloned(),
        );
        match page.json["next_cursor"].as_str() {
            Some(next) => path = format!("/v1/tenants?cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["name"],
        names[winner].as_str(),
        "the winner's tenant stands"
    );
}

#[tokio::test]
async fn two_team_admins_demoting_each_other_at_once_leave_exactly_one() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let mut lead = api.admin_token(&stack).await;
    let mut lead_id = api.id_of(&lead, "admin", stack.admin_email()).await;
    for _ in 0..3 {
        let (email, id) = invite_and_accept(&stack, &api, &lead, "admin", "admin").await;
        assert_eq!(api.patch_role(&lead, &id, "team_admin").await.status, 200);
        let other = api.token("admin", &email, PASSWORD).await;

        let (by_lead, by_other) = tokio::join!(
            api.patch_role(&lead, &id, "admin"),
            api.patch_role(&other, &lead_id, "admin")
        );

        let texts = format!("{} / {}", by_lead.text, by_other.text);
        let (survivor, survivor_id, loser) = match (by_lead.status, by_other.status) {
            (200, _) => (lead, lead_id, by_other),
            (_, 200) => (other, id, by_lead),
            _ => panic!("neither demotion went through: {texts}"),
        };
        // The loser was refused by the count, or had lost the role before it was read.
        assert!(
            matches!(
                (loser.status, loser.code()),
                (409, "last_team_admin") | (401, _) | (403, "forbidden_role")
            ),
            "both demotions went through, or one failed oddly: {texts}"
        );
        api.patch_role(&survivor, &survivor_id, "admin")
            .await
            .assert_problem(409, "last_team_admin");
        (lead, lead_id) = (survivor, survivor_id);
    }
}

#[tokio::test]
async fn of_bootstraps_run_at_once_and_again_exactly_one_creates_the_first_team_admin() {
    let stack = TestStack::builder()
        .instances(4)
        .bootstrap(false)
        .start()
        .await
        .unwrap();
    // The function ignores its event: whatever the invoker sends, it does the same.
    let events = [json!({}), json!([1, 2]), json!("bootstrap"), json!(null)];

    let outcomes = futures::future::join_all(
        events
            .iter()
            .map(|event| stack.invoke("bootstrap", event.clone())),
    )
    .await;
    let again = stack.invoke("bootstrap", json!({})).await.unwrap();

    let created: Vec<bool> = outcomes
        .into_iter()
        .map(|o| o.unwrap()["created"].as_bool().expect("an outcome"))
        .collect();
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert_eq!(again["created"], false, "{again}");
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let id = api.id_of(&admin, "admin", stack.admin_email()).await;
    api.patch_role(&admin, &id, "admin")
        .await
        .assert_problem(409, "last_team_admin");
    assert_eq!(
        items_with_prefix(&stack, "EMAIL#").await,
        1,
        "one account for the address"
    );
}
