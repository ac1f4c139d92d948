//! Roles and tenant scoping as API.md states them, through the real functions.

use latchkey_tests::*;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_valid_session_get_401() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    for token in [
        None,
        Some("not-a-jwt"),
        Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
    ] {
        api.get("/v1/tenants", token)
            .await
            .assert_problem(401, "unauthorized");
        api.invite(token.unwrap_or(""), "admin", json!([{"email": "a@b.co"}]))
            .await
            .assert_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn wrong_password_unknown_email_and_wrong_tenant_get_the_same_answer() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let wrong_password = api
        .sign_in("admin", stack.admin_email(), "not the password at all")
        .await;
    let unknown_email = api
        .sign_in("admin", &unique_email("nobody"), "not the password at all")
        .await;
    let wrong_tenant = api
        .sign_in("acme", stack.admin_email(), stack.admin_password())
        .await;

    wrong_password.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong_password.text, unknown_email.text);
    assert_eq!(wrong_password.text, wrong_tenant.text);
}

#[tokio::test]
async fn a_customer_admin_manages_their_tenant_and_cannot_see_others() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let operator = api.admin_token(&stack).await;
    let acme = api.create_tenant(&operator).await;
    let globex = api.create_tenant(&operator).await;
    let (_, globex_user) = invite_and_accept(&stack, &api, &operator, &globex, "member").await;
    let (acme_admin, _) = invite_and_accept(&stack, &api, &operator, &acme, "admin").await;
    let token = api.token(&acme, &acme_admin, PASSWORD).await;

    assert_eq!(
        api.get(&format!("/v1/tenants/{acme}/users"), Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(
        api.invite(&token, &acme, json!([{"email": unique_email("ok")}]))
            .await
            .status,
        200
    );
    api.get(&format!("/v1/tenants/{globex}/users"), Some(&token))
        .await
        .assert_problem(404, "not_found");
    api.get(&format!("/v1/users/{globex_user}"), Some(&token))
        .await
        .assert_problem(404, "not_found");
    api.invite(&token, &globex, json!([{"email": unique_email("no")}]))
        .await
        .assert_problem(404, "not_found");
    api.get("/v1/tenants/admin/users", Some(&token))
        .await
        .assert_problem(404, "not_found");
    api.get("/v1/tenants", Some(&token))
        .await
        .assert_problem(403, "forbidden");
    let unknown = api
        .get("/v1/tenants/no-such-tenant/users", Some(&token))
        .await;
    assert_eq!(
        unknown.text,
        api.get(&format!("/v1/tenants/{globex}/users"), Some(&token))
            .await
            .text,
        "another tenant looks exactly like no tenant"
    );
}

#[tokio::test]
async fn a_member_may_not_manage_users() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let operator = api.admin_token(&stack).await;
    let acme = api.create_tenant(&operator).await;
    let (member, _) = invite_and_accept(&stack, &api, &operator, &acme, "member").await;
    let (_, colleague) = invite_and_accept(&stack, &api, &operator, &acme, "member").await;
    let token = api.token(&acme, &member, PASSWORD).await;

    api.get(&format!("/v1/tenants/{acme}/users"), Some(&token))
        .await
        .assert_problem(403, "forbidden");
    api.get(&format!("/v1/users/{colleague}"), Some(&token))
        .await
        .assert_problem(403, "forbidden");
    api.invite(&token, &acme, json!([{"email": unique_email("m")}]))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn an_operator_member_may_not_manage_users_or_tenants() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let operator = api.admin_token(&stack).await;
    let acme = api.create_tenant(&operator).await;
    let (member, _) = invite_and_accept(&stack, &api, &operator, "admin", "member").await;
    let token = api.token("admin", &member, PASSWORD).await;

    api.get(&format!("/v1/tenants/{acme}/users"), Some(&token))
        .await
        .assert_problem(403, "forbidden");
    api.post(
        "/v1/tenants",
        Some(&token),
        &json!({"name": "X", "subdomain": unique("x")}),
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn user_listing_filters_by_status_and_pages_with_a_cursor() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let operator = api.admin_token(&stack).await;
    let acme = api.create_tenant(&operator).await;
    let rows: Vec<_> = (0..7)
        .map(|_| json!({"email": unique_email("p")}))
        .collect();
    api.invite(&operator, &acme, json!(rows)).await;
    invite_and_accept(&stack, &api, &operator, &acme, "member").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/{acme}/users?status=invited&limit=3&cursor={c}"),
            None => format!("/v1/tenants/{acme}/users?status=invited&limit=3"),
        };
        let page = api.get(&path, Some(&operator)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for user in page.json["users"].as_array().unwrap() {
            assert_eq!(user["status"], "invited");
            seen.push(user["id"].as_str().unwrap().to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
    api.get(
        &format!("/v1/tenants/{acme}/users?status=gone"),
        Some(&operator),
    )
    .await
    .assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_limited_alike_for_known_and_unknown_addresses() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let nobody = unique_email("nobody");

    for email in [stack.admin_email(), nobody.as_str()] {
        for _ in 0..10 {
            api.sign_in("admin", email, "wrong password guess")
                .await
                .assert_problem(401, "invalid_credentials");
        }
        let limited = api.sign_in("admin", email, "wrong password guess").await;
        limited.assert_problem(429, "rate_limited");
        assert!(limited.headers.contains_key("retry-after"));
    }
    api.sign_in("admin", stack.admin_email(), stack.admin_password())
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn failed_sign_ins_across_many_addresses_are_limited_per_source_ip() {
    let stack = TestStack::start().await.unwrap();
    let guesser = Api::from_address(&stack, [127, 0, 0, 2]);
    let elsewhere = Api::from_address(&stack, [127, 0, 0, 3]);

    stuff_credentials(|_| guesser.clone()).await;
    let limited = guesser
        .sign_in("admin", stack.admin_email(), stack.admin_password())
        .await;

    limited.assert_problem(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert!(
        limited.json["detail"].as_str().unwrap().contains("network"),
        "{}",
        limited.text
    );
    let signed_in = elsewhere
        .sign_in("admin", stack.admin_email(), stack.admin_password())
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
}

#[tokio::test]
async fn wrong_guesses_at_one_address_sent_at_once_get_no_more_tries_than_its_limit() {
    // Each instance answers one request at a time, as on Lambda: 8 let the guesses overlap.
    let stack = TestStack::builder().instances(8).start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;

    let tried = guesses_at_once(40, |_| api.sign_in(&tenant, &email, "wrong password guess")).await;

    assert_eq!(tried, 10, "the limit per address is 10 failures");
    api.sign_in(&tenant, &email, PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn wrong_guesses_from_one_source_sent_at_once_get_no_more_tries_than_its_limit() {
    let stack = TestStack::builder().instances(8).start().await.unwrap();
    let guesser = Api::from_address(&stack, [127, 0, 0, 12]);
    let addresses: Vec<String> = (0..130).map(|_| unique_email("stuffed")).collect();

    let tried = guesses_at_once(addresses.len(), |i| {
        guesser.sign_in("admin", &addresses[i], "leaked password 1")
    })
    .await;

    assert_eq!(tried, 100, "the limit per source is 100 failures");
}

#[tokio::test]
async fn sign_ins_refused_for_a_locked_address_do_not_count_against_their_source() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;
    let guesser = Api::from_address(&stack, [127, 0, 0, 13]);
    lock_out(&guesser, &tenant, &email).await;

    for _ in 0..95 {
        guesser
            .sign_in(&tenant, &email, "wrong password guess")
            .await
            .assert_problem(429, "rate_limited");
    }

    guesser
        .sign_in(&tenant, &unique_email("other"), "wrong password guess")
        .await
        .assert_problem(401, "invalid_credentials");
}

/// Sends `n` sign-ins at once, the `i`th made by `guess(i)`, each meant to fail; returns how
/// many were tried (401), after checking that every other was refused unheard (429).
async fn guesses_at_once<F: std::future::Future<Output = Resp>>(
    n: usize,
    guess: impl Fn(usize) -> F,
) -> usize {
    let answers = futures::future::join_all((0..n).map(guess)).await;
    for answer in answers.iter().filter(|a| a.status != 401) {
        answer.assert_problem(429, "rate_limited");
    }
    answers.iter().filter(|a| a.status == 401).count()
}

#[tokio::test]
async fn forgot_password_is_limited_per_source_ip_across_addresses() {
    // Each answer is held to a second: enough instances to answer the 30 asks at once.
    let stack = TestStack::builder().instances(8).start().await.unwrap();
    let asker = Api::from_address(&stack, [127, 0, 0, 4]);
    let elsewhere = Api::from_address(&stack, [127, 0, 0, 5]);

    ask_for_30_resets(&asker).await;
    let refused = asker.forgot("admin", &unique_email("nobody")).await;

    refused.assert_problem(429, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        elsewhere
            .forgot("admin", &unique_email("nobody"))
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn forgot_password_refused_for_its_address_does_not_spend_the_networks_budget() {
    let stack = TestStack::builder().instances(8).start().await.unwrap();
    let asker = Api::from_address(&stack, [127, 0, 0, 14]);
    let impatient = unique_email("impatient");
    let first_five = (0..5).map(|_| async { asker.forgot("admin", &impatient).await.status });
    assert_eq!(futures::future::join_all(first_five).await, [202; 5]);
    for _ in 0..10 {
        asker
            .forgot("admin", &impatient)
            .await
            .assert_problem(429, "rate_limited");
    }

    let others = (0..25).map(|_| async {
        let nobody = unique_email("nobody");
        asker.forgot("admin", &nobody).await.status
    });
    let statuses = futures::future::join_all(others).await;

    assert_eq!(statuses, [202; 25], "the network has 25 of its 30 left");
}

#[tokio::test]
async fn a_network_refused_for_failed_sign_ins_is_logged_and_counted_for_the_operator() {
    let stack = TestStack::start().await.unwrap();
    let guesser = Api::from_address(&stack, [127, 0, 0, 8]);

    stuff_credentials(|_| guesser.clone()).await;
    guesser
        .sign_in("admin", stack.admin_email(), stack.admin_password())
        .await
        .assert_problem(429, "rate_limited");

    let output = stack.function_output();
    assert_eq!(metric_lines(&output, "SignInFailed").len(), 100);
    let refused = metric_lines(&output, "SignInRefused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["Limit"], "source");
    assert!(
        output
            .iter()
            .any(|line| line.contains("sign-in refused") && line.contains("\"127.0.0.8\"")),
        "no log line names the refused network"
    );
}

#[tokio::test]
async fn a_forged_forwarded_for_does_not_escape_the_per_source_limit() {
    let stack = TestStack::start().await.unwrap();
    let guesser = Api::from_address(&stack, [127, 0, 0, 6]);

    // No proxy is trusted by default: each guess claims another address, in vain.
    stuff_credentials(|n| guesser.forwarding_for(&format!("192.0.2.{n}"))).await;
    let limited = guesser
        .forwarding_for("192.0.2.200")
        .sign_in("admin", stack.admin_email(), stack.admin_password())
        .await;

    limited.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_per_source_limit_counts_the_caller_it_forwards() {
    let stack = stack_with("TRUSTED_PROXY_COUNT", "1").await;
    let proxy = Api::from_address(&stack, [127, 0, 0, 7]);

    // The guesser forges an entry of its own; the proxy appends the address it saw.
    stuff_credentials(|n| proxy.forwarding_for(&format!("192.0.2.{n}, 203.0.113.7"))).await;
    let limited = proxy
        .forwarding_for("203.0.113.7")
        .sign_in("admin", stack.admin_email(), stack.admin_password())
        .await;
    let someone_else = proxy
        .forwarding_for("203.0.113.8")
        .sign_in("admin", stack.admin_email(), stack.admin_password())
        .await;

    limited.assert_problem(429, "rate_limited");
    assert_eq!(someone_else.status, 200, "{}", someone_else.text);
}

/// One wrong guess at each of 100 made-up addresses, the `n`th sent by `client(n)`: none comes
/// near its own limit of 10, and together they reach the limit of their source.
async fn stuff_credentials(client: impl Fn(usize) -> Api) {
    for n in 0..100 {
        client(n)
            .sign_in("admin", &unique_email("stuffed"), "leaked password 1")
            .await
            .assert_problem(401, "invalid_credentials");
    }
}

#[tokio::test]
async fn a_network_refused_forgot_password_is_logged_and_counted_for_the_operator() {
    // Each answer is held to a second: enough instances to answer the 30 asks at once.
    let stack = TestStack::builder().instances(8).start().await.unwrap();
    let asker = Api::from_address(&stack, [127, 0, 0, 10]);

    ask_for_30_resets(&asker).await;
    asker
        .forgot("admin", &unique_email("nobody"))
        .await
        .assert_problem(429, "rate_limited");

    let output = stack.function_output();
    let refused = metric_lines(&output, "ForgotPasswordRefused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["Limit"], "source");
    assert!(
        output.iter().any(
            |line| line.contains("forgot password refused") && line.contains("\"127.0.0.10\"")
        ),
        "no log line names the refused network"
    );
}

/// 30 "forgot password" asks at once from `asker`, for as many made-up addresses: each is
/// answered 202, and together they spend the source's hourly limit.
async fn ask_for_30_resets(asker: &Api) {
    let asks = (0..30).map(|_| async {
        let nobody = unique_email("nobody");
        asker.forgot("admin", &nobody).await.status
    });
    let statuses = futures::future::join_all(asks).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
}

/// Ten failed sign-ins of `email` in `tenant`, then the proof that the address is locked.
async fn lock_out(api: &Api, tenant: &str, email: &str) {
    for _ in 0..10 {
        api.sign_in(tenant, email, "wrong password guess")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    api.sign_in(tenant, email, "wrong password guess")
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn a_completed_password_reset_lifts_the_sign_in_lock_it_points_to() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;
    lock_out(&api, &tenant, &email).await;
    let locked = api.sign_in(&tenant, &email, PASSWORD).await;
    locked.assert_problem(429, "rate_limited");
    assert!(
        locked.json["detail"].as_str().unwrap().contains("reset"),
        "{}",
        locked.text
    );

    assert_eq!(api.forgot(&tenant, &email).await.status, 202);
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    let reset = api
        .reset_password(&token, "an entirely new passphrase")
        .await;
    assert_eq!(reset.status, 200, "{}", reset.text);

    let signed_in = api
        .sign_in(&tenant, &email, "an entirely new passphrase")
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
}

/// An invitee's address locked by guesses, then the invitation accepted through its mail;
/// returns (tenant, email).
async fn locked_then_accepted(stack: &TestStack, api: &Api) -> (String, String) {
    let (_, tenant, email, _) = tenant_with_invitee(stack, api).await;
    lock_out(api, &tenant, &email).await;
    let (_, token) = mailed_link(stack, &email, "accept-invite").await.unwrap();
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    (tenant, email)
}

#[tokio::test]
async fn accepting_an_invitation_lifts_a_sign_in_lock_on_the_address() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);

    let (tenant, email) = locked_then_accepted(&stack, &api).await;

    let signed_in = api.sign_in(&tenant, &email, PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
}

#[tokio::test]
async fn a_wrong_guess_after_an_unlock_counts_again_from_zero() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (tenant, email) = locked_then_accepted(&stack, &api).await;

    lock_out(&api, &tenant, &email).await;

    api.sign_in(&tenant, &email, PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn an_admin_sees_a_users_failed_sign_ins_and_until_when_they_are_locked_out() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;
    let sign_in = |resp: Resp| resp.json["sign_in"].clone();
    assert_eq!(
        sign_in(api.user(&admin, &id).await),
        json!({"failures": 0, "locked_until": null})
    );
    for _ in 0..3 {
        api.sign_in(&tenant, &email, "wrong password guess").await;
    }
    assert_eq!(
        sign_in(api.user(&admin, &id).await),
        json!({"failures": 3, "locked_until": null})
    );

    for _ in 3..10 {
        api.sign_in(&tenant, &email, "wrong password guess").await;
    }

    let state = sign_in(api.user(&admin, &id).await);
    assert_eq!(state["failures"], 10, "{state}");
    let until = chrono::DateTime::parse_from_rfc3339(state["locked_until"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ahead = until - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::zero() && ahead <= chrono::Duration::minutes(15),
        "{state}"
    );
    assert_eq!(api.admin_reset(&admin, &id).await.status, 202);
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    assert_eq!(
        api.reset_password(&token, "an entirely new passphrase")
            .await
            .status,
        200
    );
    assert_eq!(
        sign_in(api.user(&admin, &id).await),
        json!({"failures": 0, "locked_until": null}),
        "the reset lifted the lock"
    );
}

#[tokio::test]
async fn successful_sign_ins_are_not_counted_as_failures() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    for _ in 0..12 {
        assert_eq!(
            api.sign_in("admin", stack.admin_email(), stack.admin_password())
                .await
                .status,
            200
        );
    }
}
