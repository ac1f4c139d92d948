//! Issue 4: admin-triggered and self-service password resets, email verification, and
//! moving a user to a new address when the old mailbox is lost.

use latchkey_tests::*;
use serde_json::json;
use std::time::Duration;

const NEW_PASSWORD: &str = "an entirely new passphrase";

#[tokio::test]
async fn an_admin_triggered_reset_mails_a_link_that_sets_a_new_password_and_ends_sessions() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;
    let session = api.token(&tenant, &email, PASSWORD).await;

    let sent = api.admin_reset(&admin, &id).await;

    assert_eq!(
        (sent.status, sent.json["email_sent"].as_bool()),
        (202, Some(true)),
        "{}",
        sent.text
    );
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    let done = api.reset_password(&token, NEW_PASSWORD).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json["user_id"], id.as_str());
    api.get(&format!("/v1/users/{id}"), Some(&session))
        .await
        .assert_problem(401, "unauthorized");
    api.sign_in(&tenant, &email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(api.sign_in(&tenant, &email, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_reset_link_works_once_and_an_older_one_dies_when_a_newer_is_sent() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_active_user(&stack, &api).await;
    api.admin_reset(&admin, &id).await;
    let (_, old) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    api.admin_reset(&admin, &id).await;
    let tokens = mailed_tokens(&stack, &email, "reset-password").await;
    let newest = tokens.last().unwrap();
    assert_ne!(&old, newest);

    api.reset_password(&old, NEW_PASSWORD)
        .await
        .assert_problem(400, "token_invalid");
    assert_eq!(api.reset_password(newest, NEW_PASSWORD).await.status, 200);
    api.reset_password(newest, "yet another passphrase")
        .await
        .assert_problem(409, "token_used");
}

#[tokio::test]
async fn a_weak_new_password_is_refused_without_spending_the_link() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_active_user(&stack, &api).await;
    api.admin_reset(&admin, &id).await;
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();

    api.reset_password(&token, "short")
        .await
        .assert_problem(400, "weak_password");

    assert_eq!(api.reset_password(&token, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn an_expired_reset_link_says_to_ask_again() {
    let stack = stack_with("RESET_TTL_SECONDS", "1").await;
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_active_user(&stack, &api).await;
    api.admin_reset(&admin, &id).await;
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    api.reset_password(&token, NEW_PASSWORD)
        .await
        .assert_problem(410, "token_expired");
}

#[tokio::test]
async fn an_invited_user_gets_no_reset_and_the_admin_is_told_to_resend() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, _, id) = tenant_with_invitee(&stack, &api).await;

    let resp = api.admin_reset(&admin, &id).await;

    resp.assert_problem(409, "user_not_active");
    assert!(
        resp.json["detail"]
            .as_str()
            .unwrap()
            .contains("Resend the invitation")
    );
}

#[tokio::test]
async fn admin_resets_sent_at_once_mail_no_more_than_the_hourly_limit_per_user() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_active_user(&stack, &api).await;

    let answers = futures::future::join_all((0..8).map(|_| api.admin_reset(&admin, &id))).await;

    for refused in answers.iter().filter(|a| a.status != 202) {
        refused.assert_problem(429, "rate_limited");
    }
    let sent = answers.iter().filter(|a| a.status == 202).count();
    assert_eq!(sent, 5, "five resets per user an hour");
    assert_eq!(
        mailed_tokens(&stack, &email, "reset-password").await.len(),
        5
    );
}

#[tokio::test]
async fn forgot_password_answers_identically_for_known_and_unknown_addresses() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;
    let other = api.create_tenant(&api.admin_token(&stack).await).await;

    let known = api.forgot(&tenant, &email).await;
    let unknown = api.forgot(&tenant, &unique_email("nobody")).await;
    let wrong_tenant = api.forgot(&other, &email).await;
    let no_tenant = api.forgot("no-such-tenant", &email).await;

    assert_eq!(known.status, 202);
    for other in [&unknown, &wrong_tenant, &no_tenant] {
        assert_eq!((other.status, &other.text), (known.status, &known.text));
    }
    let mails = mailed_tokens(&stack, &email, "reset-password").await;
    assert_eq!(
        mails.len(),
        1,
        "mail only to the real account in that tenant"
    );
    assert_eq!(
        api.reset_password(&mails[0], NEW_PASSWORD).await.status,
        200
    );
    assert_eq!(api.sign_in(&tenant, &email, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn forgot_password_is_limited_per_address_whether_or_not_it_exists() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;
    let nobody = unique_email("nobody");

    for address in [&email, &nobody] {
        for _ in 0..5 {
            assert_eq!(api.forgot(&tenant, address).await.status, 202);
        }
        let refused = api.forgot(&tenant, address).await;
        refused.assert_problem(429, "rate_limited");
        assert!(refused.headers.contains_key("retry-after"));
    }
    assert_eq!(
        mailed_tokens(&stack, &email, "reset-password").await.len(),
        5,
        "the inbox gets at most five"
    );
}

#[tokio::test]
async fn forgot_password_is_limited_per_source_address() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let mut statuses = Vec::new();
    for _ in 0..31 {
        statuses.push(api.forgot("admin", &unique_email("spray")).await.status);
    }
    assert!(statuses[..30].iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(statuses[30], 429);
}

#[tokio::test]
async fn a_user_who_joined_by_copied_link_verifies_their_address_by_mail() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;
    let link = api.access_link(&admin, &id).await;
    let (_, token) = link_in(link.json["url"].as_str().unwrap(), "accept-invite").unwrap();
    api.accept(&token, PASSWORD).await;
    assert_eq!(api.user(&admin, &id).await.json["email_verified"], false);

    let sent = api
        .post(
            &format!("/v1/users/{id}/resend-verification"),
            Some(&admin),
            &json!({}),
        )
        .await;

    assert_eq!(sent.status, 202, "{}", sent.text);
    let (_, verify) = mailed_link(&stack, &email, "verify-email").await.unwrap();
    assert_eq!(
        api.get("/verify-email", None).await.status,
        200,
        "opening the page spends nothing"
    );
    let done = api.verify_email(&verify).await;
    assert_eq!(
        (done.status, done.json["kind"].as_str()),
        (200, Some("verified")),
        "{}",
        done.text
    );
    assert_eq!(api.user(&admin, &id).await.json["email_verified"], true);
    api.verify_email(&verify)
        .await
        .assert_problem(409, "token_used");
    api.post(
        &format!("/v1/users/{id}/resend-verification"),
        Some(&admin),
        &json!({}),
    )
    .await
    .assert_problem(409, "already_verified");
}

#[tokio::test]
async fn a_lost_mailbox_moves_the_same_user_to_a_new_address_on_confirmation() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, old, id) = tenant_with_active_user(&stack, &api).await;
    api.patch_role(&admin, &id, "admin").await;
    let new = unique_email("moved");

    let asked = api.email_change(&admin, &id, &new).await;

    assert_eq!(asked.status, 202, "{}", asked.text);
    assert_eq!(
        api.user(&admin, &id).await.json["email"],
        old.as_str(),
        "nothing moves before confirmation"
    );
    let (_, token) = mailed_link(&stack, &new, "verify-email").await.unwrap();
    let done = api.verify_email(&token).await;
    assert_eq!(
        (
            done.status,
            done.json["kind"].as_str(),
            done.json["email"].as_str()
        ),
        (200, Some("email_changed"), Some(new.as_str())),
        "{}",
        done.text
    );
    let user = api.user(&admin, &id).await;
    assert_eq!(
        (
            user.json["email"].as_str(),
            user.json["role"].as_str(),
            user.json["email_verified"].as_bool()
        ),
        (Some(new.as_str()), Some("admin"), Some(true))
    );
    assert_eq!(api.sign_in(&tenant, &new, PASSWORD).await.status, 200);
    api.sign_in(&tenant, &old, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert!(
        stack
            .mail_to(&old)
            .await
            .unwrap()
            .iter()
            .any(|m| m.subject.contains("sign-in address was changed")),
        "the old address is told"
    );
    assert_eq!(
        items_with_prefix(&stack, &format!("EMAIL#{old}")).await,
        0,
        "the old address is free"
    );
    let reinvite = api.invite(&admin, &tenant, json!([{"email": old}])).await;
    assert_eq!(reinvite.json["results"][0]["status"], "invited");
}

#[tokio::test]
async fn an_email_change_to_a_taken_address_is_refused_before_and_at_confirmation() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, _, id) = tenant_with_active_user(&stack, &api).await;
    let (taken, _) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    api.email_change(&admin, &id, &taken)
        .await
        .assert_problem(409, "already_exists");
    let new = unique_email("race");
    api.email_change(&admin, &id, &new).await;
    let (_, token) = mailed_link(&stack, &new, "verify-email").await.unwrap();
    api.invite(&admin, &tenant, json!([{"email": new}])).await;

    api.verify_email(&token)
        .await
        .assert_problem(409, "already_exists");

    assert_eq!(
        items_with_prefix(&stack, &format!("EMAIL#{new}")).await,
        1,
        "still one account per address"
    );
}

#[tokio::test]
async fn of_concurrent_resets_with_one_link_exactly_one_password_stands() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;
    api.admin_reset(&admin, &id).await;
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    let passwords: Vec<String> = (0..4)
        .map(|i| format!("candidate passphrase {i}"))
        .collect();

    let results =
        futures::future::join_all(passwords.iter().map(|p| api.reset_password(&token, p))).await;

    let winner = the_only_winner(&results, 200, (409, "token_used"));
    for (i, password) in passwords.iter().enumerate() {
        let expected = if i == winner { 200 } else { 401 };
        assert_eq!(
            api.sign_in(&tenant, &email, password).await.status,
            expected,
            "password {i}"
        );
    }
}

#[tokio::test]
async fn of_two_accounts_confirming_a_move_to_one_address_at_once_exactly_one_moves() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    for _ in 0..3 {
        let mut people = Vec::new();
        for _ in 0..2 {
            people.push(invite_and_accept(&stack, &api, &admin, &tenant, "member").await);
        }
        let wanted = unique_email("wanted");
        for (_, id) in &people {
            assert_eq!(api.email_change(&admin, id, &wanted).await.status, 202);
        }
        let tokens = mailed_tokens(&stack, &wanted, "verify-email").await;
        assert_eq!(tokens.len(), 2);

        let (a, b) = tokio::join!(api.verify_email(&tokens[0]), api.verify_email(&tokens[1]));

        the_only_winner(&[a, b], 200, (409, "already_exists"));
        let mut moved = 0;
        for (old, id) in &people {
            let now = api.user(&admin, id).await.json["email"]
                .as_str()
                .unwrap()
                .to_owned();
            let (claims_of_old, signs_in_as) = if now == wanted {
                moved += 1;
                (0, &wanted)
            } else {
                assert_eq!(&now, old, "the account that lost keeps its address");
                (1, old)
            };
            assert_eq!(
                items_with_prefix(&stack, &format!("EMAIL#{old}")).await,
                claims_of_old
            );
            assert_eq!(
                api.sign_in(&tenant, signs_in_as, PASSWORD).await.status,
                200
            );
        }
        assert_eq!(moved, 1);
        assert_eq!(
            items_with_prefix(&stack, &format!("EMAIL#{wanted}")).await,
            1
        );
    }
}

#[tokio::test]
async fn a_move_confirmed_while_its_address_is_invited_leaves_the_address_to_exactly_one_account() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let mut outcomes = Vec::new();
    // The invite signs in and checks more before it writes, so an undelayed confirmation
    // always lands first; it is held back a little longer each round to fall on every step.
    for round in 0..8 {
        let (old, id) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
        let contested = unique_email("contested");
        api.email_change(&admin, &id, &contested).await;
        let (_, token) = mailed_link(&stack, &contested, "verify-email")
            .await
            .unwrap();

        let confirm = async {
            tokio::time::sleep(Duration::from_millis(2 * round)).await;
            api.verify_email(&token).await
        };

        let (moved, invited) = tokio::join!(
            confirm,
            api.invite(&admin, &tenant, json!([{"email": contested}]))
        );

        let row = &invited.json["results"][0];
        let email = api.user(&admin, &id).await.json["email"].clone();
        match (moved.status, row["status"].as_str()) {
            (200, Some("rejected")) => {
                assert_eq!(row["error"]["code"], "already_exists", "{row}");
                assert_eq!(email, contested.as_str());
            }
            (409, Some("invited")) => {
                moved.assert_problem(409, "already_exists");
                assert_eq!(email, old.as_str());
            }
            other => panic!("both or neither took it: {other:?} {} {row}", moved.text),
        }
        assert_eq!(
            items_with_prefix(&stack, &format!("EMAIL#{contested}")).await,
            1,
            "one account per address"
        );
        outcomes.push(moved.status);
    }
    eprintln!("confirmation outcomes: {outcomes:?}");
}

#[tokio::test]
async fn recovery_routes_refuse_bad_input() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, _, id) = tenant_with_active_user(&stack, &api).await;
    let cases = [
        (
            "/v1/password/forgot",
            None,
            json!({"tenant": "admin"}),
            400,
            "validation_failed",
        ),
        (
            "/v1/password/forgot",
            None,
            json!({"tenant": "admin", "email": "x\r\nBcc: y@z.co"}),
            400,
            "invalid_email",
        ),
        (
            "/v1/password/reset",
            None,
            json!({"token": "nope", "password": PASSWORD}),
            400,
            "token_invalid",
        ),
        (
            "/v1/password/reset",
            None,
            json!({"token": "nope", "password": PASSWORD, "admin": true}),
            400,
            "validation_failed",
        ),
        (
            "/v1/email/verify",
            None,
            json!({"token": "<script>"}),
            400,
            "token_invalid",
        ),
        (
            "/v1/email/verify",
            None,
            json!({}),
            400,
            "validation_failed",
        ),
    ];
    for (path, token, body, status, code) in cases {
        api.post(path, token, &body)
            .await
            .assert_problem(status, code);
    }
    let change = format!("/v1/users/{id}/email-change");
    api.post(
        &change,
        Some(&admin),
        &json!({"new_email": "not-an-address"}),
    )
    .await
    .assert_problem(400, "invalid_email");
    api.post(
        &change,
        Some(&admin),
        &json!({"new_email": "a@b.co", "password": "x"}),
    )
    .await
    .assert_problem(400, "validation_failed");
    api.post(&change, None, &json!({"new_email": "a@b.co"}))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn no_route_lets_an_admin_set_a_password() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;
    let with_password =
        serde_json::to_vec(&json!({"role": "member", "password": "set by admin 123"})).unwrap();

    let patch = api
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/users/{id}"),
            Some(&admin),
            Some("application/json"),
            with_password,
        )
        .await
        .unwrap();
    let reset = api
        .post(
            &format!("/v1/users/{id}/password-reset"),
            Some(&admin),
            &json!({"password": "set by admin 123"}),
        )
        .await;

    patch.assert_problem(400, "validation_failed");
    assert_eq!(
        reset.status, 202,
        "the body is ignored: an admin can only send a link"
    );
    api.sign_in(&tenant, &email, "set by admin 123")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(api.sign_in(&tenant, &email, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn the_table_holds_no_raw_recovery_token_and_no_password_after_every_flow() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;
    api.admin_reset(&admin, &id).await;
    api.forgot(&tenant, &email).await;
    let resets = mailed_tokens(&stack, &email, "reset-password").await;
    api.reset_password(resets.last().unwrap(), NEW_PASSWORD)
        .await;
    let new = unique_email("scan");
    api.email_change(&admin, &id, &new).await;
    let change = mailed_tokens(&stack, &new, "verify-email").await;
    api.verify_email(&change[0]).await;
    let link = api.access_link(&admin, &id).await;
    let (_, copied) = link_in(link.json["url"].as_str().unwrap(), "reset-password").unwrap();

    let dump = format!("{:?}", scan_table(&stack).await);

    let mut tokens = resets.clone();
    tokens.extend(change);
    tokens.push(copied);
    for token in &tokens {
        assert!(
            !dump.contains(token.split_once('.').unwrap().1),
            "a raw token is stored"
        );
    }
    for password in [PASSWORD, NEW_PASSWORD, stack.admin_password()] {
        assert!(!dump.contains(password), "a plain password is stored");
    }
}
