//! Accepting an invitation: single use, expiry, weak passwords, concurrent accepts.

use latchkey_tests::*;
use serde_json::json;

async fn invited(stack: &TestStack, api: &Api) -> (String, String, String) {
    let admin = api.admin_token(stack).await;
    let tenant = api.create_tenant(&admin).await;
    let email = unique_email("acc");
    api.invite(&admin, &tenant, json!([{"email": email}])).await;
    let (_, token) = mailed_link(stack, &email, "accept-invite").await.unwrap();
    (tenant, email, token)
}

#[tokio::test]
async fn a_weak_password_is_refused_and_the_link_still_works() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, email, token) = invited(&stack, &api).await;

    for weak in ["short", &"x".repeat(257), &email] {
        api.accept(&token, weak)
            .await
            .assert_problem(400, "weak_password");
    }

    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn an_invitation_link_works_once() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (tenant, email, token) = invited(&stack, &api).await;
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);

    api.accept(&token, "another long passphrase")
        .await
        .assert_problem(409, "token_used");

    assert_eq!(
        api.sign_in(&tenant, &email, PASSWORD).await.status,
        200,
        "the first password stands"
    );
}

#[tokio::test]
async fn two_concurrent_accepts_of_one_link_let_exactly_one_win() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (tenant, email, token) = invited(&stack, &api).await;
    let passwords: Vec<String> = (0..4).map(|i| format!("candidate password {i}")).collect();

    let results = futures::future::join_all(passwords.iter().map(|p| api.accept(&token, p))).await;

    let winner = the_only_winner(&results, 200, (409, "token_used"));
    assert_eq!(
        api.sign_in(&tenant, &email, &passwords[winner])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_expired_invitation_says_to_ask_for_a_new_one() {
    let stack = stack_with("INVITE_TTL_SECONDS", "1").await;
    let api = Api::new(&stack);
    let (_, _, token) = invited(&stack, &api).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let resp = api.accept(&token, PASSWORD).await;

    resp.assert_problem(410, "token_expired");
    assert!(
        resp.json["detail"]
            .as_str()
            .unwrap()
            .contains("new invitation")
    );
}

#[tokio::test]
async fn an_invited_user_cannot_sign_in_before_accepting() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (tenant, email, _) = invited(&stack, &api).await;

    api.sign_in(&tenant, &email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
}
