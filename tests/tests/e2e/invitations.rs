//! The invite route's per-row rules, and one account per email address under concurrency.

use latchkey_tests::*;
use serde_json::{Value, json};

fn codes(resp: &Resp) -> Vec<String> {
    resp.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["error"]["code"]
                .as_str()
                .unwrap_or(r["status"].as_str().unwrap())
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn each_row_gets_its_own_result_in_request_order() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let existing = unique_email("existing");
    api.invite(&admin, &tenant, json!([{"email": existing}]))
        .await;

    let fresh = unique_email("fresh");
    let resp = api
        .invite(
            &admin,
            &tenant,
            json!([
                {"email": fresh, "role": "member"},
                {"email": "not-an-email", "role": "member"},
                {"email": unique_email("role"), "role": "owner"},
                {"email": unique_email("team"), "role": "team_admin"},
                {"email": format!(" {} ", fresh.to_uppercase()), "role": "admin"},
                {"email": existing, "role": "member"},
                {"email": "ada@example.com\r\nBcc: victim@example.com", "role": "member"},
                {"email": format!("{}@example.com", "a".repeat(10_000)), "role": "member"},
            ]),
        )
        .await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        codes(&resp),
        [
            "invited",
            "invalid_email",
            "invalid_role",
            "invalid_role",
            "duplicate_in_request",
            "already_invited",
            "invalid_email",
            "invalid_email"
        ]
    );
    let long_echo = resp.json["results"][7]["email"].as_str().unwrap();
    assert!(
        long_echo.len() <= 254,
        "a 10 KB address is not echoed in full"
    );
    for row in resp.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "rejected")
    {
        assert!(!row["error"]["detail"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn only_a_team_admin_may_invite_a_team_admin() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let team_admin = api.admin_token(&stack).await;
    let (admin_email, _) = invite_and_accept(&stack, &api, &team_admin, "admin", "admin").await;
    let admin = api.token("admin", &admin_email, PASSWORD).await;

    let refused = api
        .invite(
            &admin,
            "admin",
            json!([{"email": unique_email("x"), "role": "team_admin"}]),
        )
        .await;
    assert_eq!(codes(&refused), ["forbidden_role"]);
    let allowed = api
        .invite(
            &team_admin,
            "admin",
            json!([{"email": unique_email("y"), "role": "team_admin"}]),
        )
        .await;
    assert_eq!(codes(&allowed), ["invited"]);
}

#[tokio::test]
async fn a_hundred_concurrent_invites_of_one_address_create_exactly_one_account() {
    let stack = TestStack::builder().instances(4).start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let tenant_a = api.create_tenant(&admin).await;
    let tenant_b = api.create_tenant(&admin).await;
    let email = unique_email("race");

    let calls = (0..100).map(|i| {
        let (api, admin, email) = (&api, &admin, &email);
        let tenant = if i % 2 == 0 { &tenant_a } else { &tenant_b };
        let variant = if i % 3 == 0 {
            email.to_uppercase()
        } else {
            email.clone()
        };
        async move {
            api.invite(admin, tenant, json!([{"email": variant, "role": "member"}]))
                .await
        }
    });
    let responses = futures::future::join_all(calls).await;

    let mut outcome: Vec<String> = Vec::new();
    for resp in &responses {
        assert_eq!(resp.status, 200, "no 5xx under contention: {}", resp.text);
        outcome.extend(codes(resp));
    }
    assert_eq!(
        outcome.iter().filter(|c| *c == "invited").count(),
        1,
        "{outcome:?}"
    );
    // The winner's tenant (50 requests) hears the other 49 are already invited there; the
    // other tenant hears only that the address is taken.
    assert_eq!(
        outcome.iter().filter(|c| *c == "already_invited").count(),
        49,
        "{outcome:?}"
    );
    assert_eq!(
        outcome.iter().filter(|c| *c == "already_exists").count(),
        50,
        "{outcome:?}"
    );
    assert_eq!(
        items_with_prefix(&stack, &format!("EMAIL#{email}")).await,
        1
    );
    let users = scan_table(&stack).await;
    let accounts = users
        .iter()
        .filter(|i| {
            i.get("email").and_then(|v| v.as_s().ok()) == Some(&email)
                && i.get("SK").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("PROFILE")
        })
        .count();
    assert_eq!(accounts, 1);
    assert_eq!(
        stack.mail_to(&email).await.unwrap().len(),
        1,
        "exactly one mail"
    );
}

#[tokio::test]
async fn an_invitation_refused_by_ses_is_stored_with_the_reason() {
    // moto refuses mail from a sender whose identity was never created.
    let stack = stack_with("SENDER_EMAIL", "unverified@nowhere.example.com").await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("bounce");

    let resp = api.invite(&admin, &tenant, json!([{"email": email}])).await;

    let row = &resp.json["results"][0];
    assert_eq!(
        (row["status"].as_str(), row["email_sent"].as_bool()),
        (Some("invited"), Some(false)),
        "{}",
        resp.text
    );
    assert_eq!(row["email_error"]["code"], "email_rejected");
    let user = api
        .get(
            &format!("/v1/users/{}", row["user_id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(user.json["status"], "invited");
    assert_eq!(user.json["last_delivery"]["status"], "send_failed");
    assert_eq!(user.json["last_invite_sent_at"], Value::Null);
}

#[tokio::test]
async fn inviting_without_email_stores_the_invitation_and_sends_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("quiet");

    let resp = api
        .post(
            &format!("/v1/tenants/{tenant}/invitations"),
            Some(&admin),
            &json!({"invitations": [{"email": email}], "send_email": false}),
        )
        .await;

    assert_eq!(resp.json["results"][0]["email_sent"], false);
    assert!(stack.mail_to(&email).await.unwrap().is_empty());
}

#[tokio::test]
async fn rows_that_send_no_mail_give_their_share_of_the_tenant_budget_back() {
    let stack = stack_with_mail_budget(2).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let ada = unique_email("ada");
    assert_eq!(
        api.invite(&admin, &tenant, json!([{"email": ada}]))
            .await
            .status,
        200
    );
    let again = api.invite(&admin, &tenant, json!([{"email": ada}])).await;
    assert_eq!(again.json["results"][0]["error"]["code"], "already_invited");

    let grace = unique_email("grace");
    let resp = api.invite(&admin, &tenant, json!([{"email": grace}])).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["results"][0]["email_sent"], true);
    let refused = api
        .invite(&admin, &tenant, json!([{"email": unique_email("bob")}]))
        .await;
    refused.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn the_tenant_mail_budget_refuses_a_request_that_would_exceed_it() {
    let stack = stack_with_mail_budget(3).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let rows = |n: usize| {
        json!(
            (0..n)
                .map(|_| json!({"email": unique_email("rl")}))
                .collect::<Vec<_>>()
        )
    };

    assert_eq!(api.invite(&admin, &tenant, rows(2)).await.status, 200);
    let refused = api.invite(&admin, &tenant, rows(2)).await;

    refused.assert_problem(429, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        items_with_prefix(&stack, "EMAIL#").await,
        3,
        "only the admin and the first two"
    );
}

#[tokio::test]
async fn invitations_sent_at_once_never_mail_past_the_tenant_budget() {
    let stack = TestStack::builder()
        .instances(4)
        .env("INVITE_MAIL_PER_HOUR", "10")
        .start()
        .await
        .unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let batches: Vec<Vec<String>> = (0..6)
        .map(|_| (0..3).map(|_| unique_email("burst")).collect())
        .collect();
    let bodies: Vec<Value> = batches
        .iter()
        .map(|emails| {
            json!(
                emails
                    .iter()
                    .map(|e| json!({"email": e}))
                    .collect::<Vec<_>>()
            )
        })
        .collect();

    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|rows| api.invite(&admin, &tenant, rows.clone())),
    )
    .await;

    let mut mailed = 0;
    for (answer, emails) in answers.iter().zip(&batches) {
        if answer.status == 200 {
            for email in emails {
                mailed += stack.mail_to(email).await.unwrap().len();
            }
        } else {
            answer.assert_problem(429, "rate_limited");
            for email in emails {
                assert!(
                    stack.mail_to(email).await.unwrap().is_empty(),
                    "a refused request mailed"
                );
            }
        }
    }
    let invited = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        (invited, mailed),
        (3, 9),
        "three requests of three fit in ten mails"
    );
}
