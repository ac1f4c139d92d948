//! Inviting someone who is already invited: a row that says so and names the user, a resend
//! when asked for, and "forgot password" that mails a fresh invitation to someone who never
//! joined. An address with an account in another tenant reveals nothing more.

use latchkey_tests::*;
use serde_json::{Value, json};

/// Invites `rows` into `tenant` with the request's options.
async fn invite_with(api: &Api, token: &str, tenant: &str, rows: Value, options: Value) -> Resp {
    let mut body = json!({"invitations": rows});
    for (key, value) in options.as_object().unwrap() {
        body[key] = value.clone();
    }
    api.post(
        &format!("/v1/tenants/{tenant}/invitations"),
        Some(token),
        &body,
    )
    .await
}

async fn mails_to(stack: &TestStack, email: &str) -> usize {
    stack.mail_to(email).await.unwrap().len()
}

#[tokio::test]
async fn inviting_an_invited_address_again_says_already_invited_with_the_user_and_mails_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;

    let again = api
        .invite(&admin, &tenant, json!([{"email": email.to_uppercase()}]))
        .await;

    assert_eq!(again.status, 200, "{}", again.text);
    let row = &again.json["results"][0];
    assert_eq!(
        (
            &row["status"],
            &row["error"]["code"],
            &row["user_id"],
            &row["user_status"]
        ),
        (
            &json!("rejected"),
            &json!("already_invited"),
            &json!(id),
            &json!("invited")
        ),
        "{row}"
    );
    assert!(row["error"]["detail"].as_str().unwrap().contains("resend"));
    assert!(!row["error"]["detail"].as_str().unwrap().contains("sign in"));
    assert_eq!(
        mails_to(&stack, &email).await,
        1,
        "only the first invitation"
    );
    assert_eq!(items_with_prefix(&stack, "USER#").await, 2);
}

#[tokio::test]
async fn an_expired_invitation_is_already_invited_with_its_status() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    backdate_invitation(&stack, &id).await;

    let again = api.invite(&admin, &tenant, json!([{"email": email}])).await;

    let row = &again.json["results"][0];
    assert_eq!(row["error"]["code"], "already_invited", "{row}");
    assert_eq!(row["user_status"], "expired");
}

#[tokio::test]
async fn resend_existing_mails_a_fresh_invitation_and_the_old_link_dies() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("again");
    let first = api
        .invite(
            &admin,
            &tenant,
            json!([{"email": email, "role": "admin", "name": "Ada"}]),
        )
        .await;
    let id = first.user_ids()[0].clone();
    backdate_invitation(&stack, &id).await;
    let old = first_invitation_token(&stack, &email).await;
    let new_person = unique_email("new");

    let again = invite_with(
        &api,
        &admin,
        &tenant,
        json!([{"email": email, "role": "member"}, {"email": new_person}]),
        json!({"resend_existing": true}),
    )
    .await;

    let row = &again.json["results"][0];
    assert_eq!(
        (&row["status"], &row["user_id"], &row["email_sent"]),
        (&json!("resent"), &json!(id), &json!(true)),
        "{}",
        again.text
    );
    assert_eq!(again.json["results"][1]["status"], "invited");
    let tokens = mailed_tokens(&stack, &email, "accept-invite").await;
    assert_eq!(tokens.len(), 2);
    assert!(
        !invite_token_is_live(&api, &old).await,
        "the old link is dead"
    );
    let user = api.user(&admin, &id).await.json;
    assert_eq!(user["status"], "invited", "pending again");
    assert_eq!(user["expires_at"], row["expires_at"]);
    assert_eq!(
        (&user["role"], &user["name"]),
        (&json!("admin"), &json!("Ada")),
        "a resend keeps the invitation as it was"
    );
    assert_eq!(api.accept(&tokens[1], PASSWORD).await.status, 200);
}

#[tokio::test]
async fn resend_existing_is_held_to_the_users_hourly_resends() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    for _ in 0..5 {
        assert_eq!(api.resend(&admin, &id).await.status, 200);
    }

    let again = invite_with(
        &api,
        &admin,
        &tenant,
        json!([{"email": email}]),
        json!({"resend_existing": true}),
    )
    .await;

    let row = &again.json["results"][0];
    assert_eq!(
        (&row["status"], &row["error"]["code"], &row["user_id"]),
        (&json!("rejected"), &json!("rate_limited"), &json!(id)),
        "{row}"
    );
    assert_eq!(mails_to(&stack, &email).await, 6, "no seventh mail");
}

#[tokio::test]
async fn resend_existing_without_mail_is_refused_whole() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;

    let refused = invite_with(
        &api,
        &admin,
        &tenant,
        json!([{"email": unique_email("x")}]),
        json!({"resend_existing": true, "send_email": false}),
    )
    .await;

    refused.assert_problem(400, "validation_failed");
    for bad in [json!("yes"), json!(1), json!(null)] {
        invite_with(
            &api,
            &admin,
            &tenant,
            json!([{"email": unique_email("x")}]),
            json!({ "resend_existing": bad }),
        )
        .await
        .assert_problem(400, "validation_failed");
    }
    assert_eq!(
        items_with_prefix(&stack, "USER#").await,
        1,
        "nobody invited"
    );
}

#[tokio::test]
async fn a_member_of_this_tenant_is_already_exists_with_the_user_and_another_tenants_account_says_nothing_more()
 {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (operator, tenant, member_email, member_id) = tenant_with_active_user(&stack, &api).await;
    let other = api.create_tenant(&operator).await;
    let (elsewhere, _) = invite_and_accept(&stack, &api, &operator, &other, "member").await;
    let (pending_elsewhere, _) = {
        let email = unique_email("pending");
        api.invite(&operator, &other, json!([{"email": email}]))
            .await;
        (email, ())
    };

    let resp = invite_with(
        &api,
        &operator,
        &tenant,
        json!([{"email": member_email}, {"email": elsewhere}, {"email": pending_elsewhere}]),
        json!({"resend_existing": true}),
    )
    .await;

    let rows = resp.json["results"].as_array().unwrap();
    assert_eq!(
        (
            &rows[0]["error"]["code"],
            &rows[0]["user_id"],
            &rows[0]["user_status"]
        ),
        (
            &json!("already_exists"),
            &json!(member_id),
            &json!("active")
        ),
        "{}",
        resp.text
    );
    for row in &rows[1..] {
        assert_eq!(row["error"]["code"], "already_exists", "{row}");
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["email", "error", "status"], "nothing more: {row}");
    }
    assert_eq!(
        rows[1]["error"], rows[2]["error"],
        "an invitation elsewhere reads as an account elsewhere"
    );
}

#[tokio::test]
async fn the_same_address_invited_at_once_with_resend_existing_has_one_user() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("racing");
    let rows = json!([{"email": email}]);

    let answers = futures::future::join_all((0..8).map(|_| {
        invite_with(
            &api,
            &admin,
            &tenant,
            rows.clone(),
            json!({"resend_existing": true}),
        )
    }))
    .await;

    let statuses: Vec<&str> = answers
        .iter()
        .map(|a| a.json["results"][0]["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "invited").count(),
        1,
        "{statuses:?}"
    );
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .filter_map(|a| a.json["results"][0]["user_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "every row names the one user: {statuses:?}");
    assert_eq!(items_with_prefix(&stack, "USER#").await, 2);
    assert_eq!(items_with_prefix(&stack, "EMAIL#").await, 2);
    let tokens = mailed_tokens(&stack, &email, "accept-invite").await;
    let live = futures::future::join_all(tokens.iter().map(|t| invite_token_is_live(&api, t)))
        .await
        .into_iter()
        .filter(|live| *live)
        .count();
    assert_eq!(live, 1, "one link survives of {} mailed", tokens.len());
}

#[tokio::test]
async fn forgot_password_mails_a_fresh_invitation_to_someone_who_never_joined() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    backdate_invitation(&stack, &id).await;
    let old = first_invitation_token(&stack, &email).await;
    let unknown = api.forgot(&tenant, &unique_email("nobody")).await;

    let started = std::time::Instant::now();
    let asked = api.forgot(&tenant, &email).await;

    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "padded as always"
    );
    assert_eq!(
        (asked.status, &asked.text),
        (202, &unknown.text),
        "the same answer"
    );
    let tokens = mailed_tokens(&stack, &email, "accept-invite").await;
    assert_eq!(tokens.len(), 2, "a fresh invitation");
    assert!(!invite_token_is_live(&api, &old).await);
    assert_eq!(api.accept(&tokens[1], PASSWORD).await.status, 200);
    assert_eq!(api.sign_in(&tenant, &email, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn forgot_password_for_an_invitation_of_another_tenant_mails_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, _) = tenant_with_invitee(&stack, &api).await;
    let other = api.create_tenant(&admin).await;

    assert_eq!(api.forgot(&other, &email).await.status, 202);
    assert_eq!(api.forgot("no-such-tenant", &email).await.status, 202);

    assert_eq!(
        mails_to(&stack, &email).await,
        1,
        "only the first invitation"
    );
}

#[tokio::test]
async fn forgot_password_invitations_are_held_to_the_users_hourly_resends() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    for _ in 0..4 {
        assert_eq!(api.resend(&admin, &id).await.status, 200);
    }

    for _ in 0..3 {
        assert_eq!(api.forgot(&tenant, &email).await.status, 202);
    }

    assert_eq!(
        mails_to(&stack, &email).await,
        6,
        "1 invitation and 5 resends, no more"
    );
}

#[tokio::test]
async fn forgot_password_invitations_are_held_to_the_tenants_mail_budget() {
    let stack = stack_with_mail_budget(1).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_invitee(&stack, &api).await;

    let asked = api.forgot(&tenant, &email).await;

    assert_eq!(asked.status, 202);
    assert_eq!(
        mails_to(&stack, &email).await,
        1,
        "the tenant's one mail was the invitation"
    );
}
