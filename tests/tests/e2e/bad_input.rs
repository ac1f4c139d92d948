//! Malformed, oversized, hostile input: a precise problem for each, and nothing written.

use latchkey_tests::*;
use serde_json::json;

/// (what, content type, body, expected status, expected code)
fn invite_cases() -> Vec<Case> {
    let many: Vec<_> = (0..501)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();
    let huge = format!(
        r#"{{"invitations":[{{"email":"{}@example.com"}}]}}"#,
        "a".repeat(300 * 1024)
    );
    vec![
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"invitations\": [".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "not an object",
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            400,
            "validation_failed",
        ),
        (
            "empty body",
            Some("application/json"),
            vec![],
            400,
            "malformed_json",
        ),
        (
            "trailing garbage",
            Some("application/json"),
            br#"{"invitations":[{"email":"a@b.co"}]} x"#.to_vec(),
            400,
            "malformed_json",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            br#"{"invitations":[{"email":"a@b.co"}]}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            br#"{"invitations":[{"email":"a@b.co"}]}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown top-level field",
            Some("application/json"),
            br#"{"invitations":[{"email":"a@b.co"}],"admin":true}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "unknown row field",
            Some("application/json"),
            br#"{"invitations":[{"email":"a@b.co","password":"x"}]}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "email is not a string",
            Some("application/json"),
            br#"{"invitations":[{"email":42}]}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "empty list",
            Some("application/json"),
            br#"{"invitations":[]}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "too many rows",
            Some("application/json"),
            serde_json::to_vec(&json!({"invitations": many})).unwrap(),
            400,
            "too_many_invitations",
        ),
        (
            "oversized body",
            Some("application/json"),
            huge.into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            vec![b'{', 0xff, 0xfe, b'}'],
            400,
            "malformed_json",
        ),
    ]
}

#[tokio::test]
async fn malformed_invite_requests_get_precise_problems_and_write_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let before = scan_table(&stack).await.len();

    api.assert_refused(
        &format!("/v1/tenants/{tenant}/invitations"),
        &admin,
        invite_cases(),
    )
    .await;

    let after = scan_table(&stack).await;
    let users = after
        .iter()
        .filter(|i| i["PK"].as_s().unwrap().starts_with("USER#"))
        .count();
    assert_eq!(users, 1, "only the bootstrap admin exists");
    assert!(
        after.len() <= before + 1,
        "at most the rate-limit window item was added"
    );
}

#[tokio::test]
async fn the_too_many_rows_problem_states_the_limit() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let rows: Vec<_> = (0..501)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();

    let resp = api.invite(&admin, "admin", json!(rows)).await;

    resp.assert_problem(400, "too_many_invitations");
    assert!(resp.json["detail"].as_str().unwrap().contains("500"));
}

#[tokio::test]
async fn hostile_tenant_names_are_stored_as_text_and_escaped_in_mail() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let subdomain = unique("h");
    let name = "<img src=x onerror=alert(1)> & Co";
    let created = api
        .post(
            "/v1/tenants",
            Some(&admin),
            &json!({"name": name, "subdomain": subdomain}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["name"], name);
    let email = unique_email("hostile");
    api.invite(&admin, &subdomain, json!([{"email": email}]))
        .await;

    let mail = &stack.mail_to(&email).await.unwrap()[0];

    assert!(!mail.html.contains("<img src=x"), "{}", mail.html);
    assert!(mail.html.contains("&lt;img"));
}

#[tokio::test]
async fn malformed_tenant_requests_get_precise_problems() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let taken = api.create_tenant(&admin).await;
    let cases = [
        (
            json!({"name": "Acme", "subdomain": "Not A Label"}),
            400,
            "invalid_tenant",
        ),
        (
            json!({"name": "Acme", "subdomain": "admin"}),
            400,
            "invalid_tenant",
        ),
        (
            json!({"name": "", "subdomain": unique("e")}),
            400,
            "validation_failed",
        ),
        (
            json!({"name": "line\r\nbreak", "subdomain": unique("e")}),
            400,
            "validation_failed",
        ),
        (
            json!({"name": "x".repeat(101), "subdomain": unique("e")}),
            400,
            "validation_failed",
        ),
        (json!({"name": "Acme"}), 400, "validation_failed"),
        (
            json!({"name": "Acme", "subdomain": taken}),
            409,
            "tenant_exists",
        ),
    ];
    for (body, status, code) in cases {
        api.post("/v1/tenants", Some(&admin), &body)
            .await
            .assert_problem(status, code);
    }
}

#[tokio::test]
async fn malformed_sign_in_and_accept_requests_get_precise_problems() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let cases = [
        (
            "/v1/sessions",
            json!({"tenant": "admin", "email": "a@b.co"}),
            400,
            "validation_failed",
        ),
        (
            "/v1/sessions",
            json!({"tenant": "admin", "email": "a@b.co", "password": "x", "mfa": 1}),
            400,
            "validation_failed",
        ),
        (
            "/v1/invitations/accept",
            json!({"token": "garbage", "password": PASSWORD}),
            400,
            "token_invalid",
        ),
        (
            "/v1/invitations/accept",
            json!({"token": format!("{}.{}", "A".repeat(22), "B".repeat(43)), "password": PASSWORD}),
            400,
            "token_invalid",
        ),
        (
            "/v1/invitations/accept",
            json!({"token": 12}),
            400,
            "validation_failed",
        ),
    ];
    for (path, body, status, code) in cases {
        api.post(path, None, &body)
            .await
            .assert_problem(status, code);
    }
}
