//! The journey of issue 2, through HTTP only: the bootstrap admin signs in, creates a tenant,
//! invites people, sees them, and an invitee follows the mailed link and signs in.

use latchkey_tests::*;
use serde_json::json;

#[tokio::test]
async fn an_invitee_follows_the_mailed_link_sets_a_password_and_signs_in_to_that_tenant_only() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let listed = api.get("/v1/tenants", Some(&admin)).await;
    assert!(
        listed.json["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == tenant.as_str())
    );

    let ada = unique_email("ada");
    let invited = api
        .invite(
            &admin,
            &tenant,
            json!([{"email": ada.to_uppercase(), "role": "admin"}]),
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.text);
    let row = &invited.json["results"][0];
    assert_eq!(row["status"], "invited");
    assert_eq!(row["email"], ada.as_str(), "the address is normalised");
    assert_eq!(row["email_sent"], true);
    let user_id = row["user_id"].as_str().unwrap();

    let users = api
        .get(&format!("/v1/tenants/{tenant}/users"), Some(&admin))
        .await;
    let listed = &users.json["users"][0];
    assert_eq!(
        (
            listed["email"].as_str(),
            listed["status"].as_str(),
            listed["email_verified"].as_bool()
        ),
        (Some(ada.as_str()), Some("invited"), Some(false))
    );
    assert!(listed["invite_expires_at"].is_string() && listed["last_invite_sent_at"].is_string());

    let (link, token) = mailed_link(&stack, &ada, "accept-invite").await.unwrap();
    assert!(
        link.starts_with(&format!("{}/accept-invite#token=", stack.public_base_url())),
        "{link}"
    );
    let page = api.get("/accept-invite", None).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type().starts_with("text/html"));

    let accepted = api.accept(&token, PASSWORD).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.json, json!({"user_id": user_id, "tenant": tenant}));

    let session = api.sign_in(&tenant, &ada, PASSWORD).await;
    assert_eq!(session.status, 200, "{}", session.text);
    assert!(session.json["expires_at"].is_string());
    api.sign_in("admin", &ada, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");

    let user = api.get(&format!("/v1/users/{user_id}"), Some(&admin)).await;
    assert_eq!(
        (
            user.json["status"].as_str(),
            user.json["email_verified"].as_bool()
        ),
        (Some("active"), Some(true))
    );
}

#[tokio::test]
async fn the_accept_page_spends_nothing_when_opened_or_headed() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("page");
    api.invite(&admin, &tenant, json!([{"email": email, "role": "member"}]))
        .await;
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();

    for _ in 0..3 {
        assert_eq!(api.get("/accept-invite", None).await.status, 200);
        let head = api
            .send(reqwest::Method::HEAD, "/accept-invite", None, None, vec![])
            .await
            .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.text.is_empty());
    }

    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn the_accept_page_is_self_contained_and_locked_down() {
    let stack = TestStack::start().await.unwrap();
    let page = Api::new(&stack).get("/accept-invite", None).await;
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers.get("referrer-policy").unwrap(), "no-referrer");
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    for external in ["http://", "https://", "//cdn", "@import"] {
        assert!(
            !page.text.contains(external),
            "the page references {external}"
        );
    }
}

#[tokio::test]
async fn the_table_holds_no_raw_token_and_no_password_after_the_journey() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("scan");
    api.invite(&admin, &tenant, json!([{"email": email}])).await;
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();
    api.accept(&token, PASSWORD).await;

    let secret_part = token.split_once('.').unwrap().1;
    let dump = format!("{:?}", scan_table(&stack).await);
    assert!(!dump.contains(secret_part), "a raw token is stored");
    assert!(!dump.contains(PASSWORD), "a plain password is stored");
    assert!(
        !dump.contains(stack.admin_password()),
        "the bootstrap password is stored"
    );
    assert!(dump.contains("$argon2id$"), "passwords are argon2id hashes");
}
