//! Issue 3: resend, copyable access links, role changes, deletion, audit.

use latchkey_tests::*;
use serde_json::json;

#[tokio::test]
async fn a_resend_mails_a_new_link_and_the_old_one_stops_working() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;
    let first = mailed_tokens(&stack, &email, "accept-invite").await;

    let resp = api.resend(&admin, &id).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.json["expires_at"].is_string());
    let tokens = mailed_tokens(&stack, &email, "accept-invite").await;
    assert_eq!(tokens.len(), 2);
    assert!(
        !invite_token_is_live(&api, &first[0]).await,
        "the old link is dead"
    );
    assert_eq!(api.accept(&tokens[1], PASSWORD).await.status, 200);
}

#[tokio::test]
async fn resending_to_an_active_user_points_to_a_password_reset() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (_, id) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;

    let resp = api.resend(&admin, &id).await;

    resp.assert_problem(409, "user_active");
    assert!(
        resp.json["detail"]
            .as_str()
            .unwrap()
            .contains("password reset")
    );
}

#[tokio::test]
async fn resends_are_limited_per_user_per_hour() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, _, id) = tenant_with_invitee(&stack, &api).await;

    for _ in 0..5 {
        assert_eq!(api.resend(&admin, &id).await.status, 200);
    }
    let refused = api.resend(&admin, &id).await;

    refused.assert_problem(429, "rate_limited");
    assert!(
        refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn one_user_resends_spend_the_tenant_mail_budget_too() {
    let stack = stack_with_mail_budget(2).await;
    let api = Api::new(&stack);
    // The invitation spends the first of the tenant's two mails, this resend the second.
    let (admin, _, email, id) = tenant_with_invitee(&stack, &api).await;
    assert_eq!(api.resend(&admin, &id).await.status, 200);

    let refused = api.resend(&admin, &id).await;

    refused.assert_problem(429, "rate_limited");
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("This tenant may send 2 invitation emails per hour")
    );
    assert!(refused.headers.contains_key("retry-after"));
    let tokens = mailed_tokens(&stack, &email, "accept-invite").await;
    assert_eq!(tokens.len(), 2, "no third mail");
    assert!(
        invite_token_is_live(&api, &tokens[1]).await,
        "the refused resend renewed nothing"
    );
}

#[tokio::test]
async fn a_resend_refused_for_its_user_gives_the_tenant_mail_back() {
    let stack = stack_with_mail_budget(7).await;
    let api = Api::new(&stack);
    // The invitation and five resends spend six of the tenant's seven mails.
    let (admin, tenant, _, id) = tenant_with_invitee(&stack, &api).await;
    for _ in 0..5 {
        assert_eq!(api.resend(&admin, &id).await.status, 200);
    }
    api.resend(&admin, &id)
        .await
        .assert_problem(429, "rate_limited");

    let resp = api
        .invite(&admin, &tenant, json!([{"email": unique_email("grace")}]))
        .await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["results"][0]["email_sent"], true);
}

#[tokio::test]
async fn an_access_link_sends_no_mail_kills_the_mailed_link_and_joins_unverified() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    let mailed = mailed_tokens(&stack, &email, "accept-invite").await;

    let link = api.access_link(&admin, &id).await;

    assert_eq!(link.status, 200, "{}", link.text);
    assert_eq!(link.json["kind"], "invitation");
    let url = link.json["url"].as_str().unwrap();
    let (_, token) = link_in(url, "accept-invite").expect("an accept-invite link");
    assert_eq!(stack.mail_to(&email).await.unwrap().len(), 1, "no new mail");
    assert!(!invite_token_is_live(&api, &mailed[0]).await);
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    let user = api.user(&admin, &id).await;
    assert_eq!(
        (
            user.json["status"].as_str(),
            user.json["email_verified"].as_bool()
        ),
        (Some("active"), Some(false))
    );
    assert_eq!(api.sign_in(&tenant, &email, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn an_access_link_for_an_active_user_is_a_password_reset_link() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (_, id) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;

    let link = api.access_link(&admin, &id).await;

    assert_eq!(link.json["kind"], "password_reset", "{}", link.text);
    assert!(
        link.json["url"]
            .as_str()
            .unwrap()
            .contains("/reset-password#token=")
    );
}

#[tokio::test]
async fn a_role_change_applies_at_once_and_revokes_older_sessions() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (email, id) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    let before = api.token(&tenant, &email, PASSWORD).await;

    let changed = api.patch_role(&admin, &id, "admin").await;

    assert_eq!(
        (changed.status, changed.json["role"].as_str()),
        (200, Some("admin")),
        "{}",
        changed.text
    );
    api.get(&format!("/v1/tenants/{tenant}/users"), Some(&before))
        .await
        .assert_problem(401, "unauthorized");
    let after = api.token(&tenant, &email, PASSWORD).await;
    assert_eq!(
        api.get(&format!("/v1/tenants/{tenant}/users"), Some(&after))
            .await
            .status,
        200,
        "the new role works"
    );
}

#[tokio::test]
async fn role_changes_follow_the_team_admin_rules() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let team_admin = api.admin_token(&stack).await;
    let (admin_email, _) = invite_and_accept(&stack, &api, &team_admin, "admin", "admin").await;
    let admin = api.token("admin", &admin_email, PASSWORD).await;
    let (_, member) = invite_and_accept(&stack, &api, &team_admin, "admin", "member").await;
    let root = api.id_of(&team_admin, "admin", stack.admin_email()).await;
    let customer = api.create_tenant(&team_admin).await;
    let (_, customer_user) =
        invite_and_accept(&stack, &api, &team_admin, &customer, "member").await;

    api.patch_role(&admin, &member, "team_admin")
        .await
        .assert_problem(403, "forbidden_role");
    api.patch_role(&admin, &root, "member")
        .await
        .assert_problem(403, "forbidden_role");
    api.delete_user(&admin, &root)
        .await
        .assert_problem(403, "forbidden_role");
    api.patch_role(&team_admin, &customer_user, "team_admin")
        .await
        .assert_problem(400, "invalid_role");
    api.patch_role(&team_admin, &member, "owner")
        .await
        .assert_problem(400, "invalid_role");
    api.patch_role(&team_admin, &root, "admin")
        .await
        .assert_problem(409, "last_team_admin");
    api.delete_user(&team_admin, &root)
        .await
        .assert_problem(409, "last_team_admin");

    assert_eq!(
        api.patch_role(&team_admin, &member, "team_admin")
            .await
            .status,
        200
    );
    assert_eq!(
        api.patch_role(&team_admin, &root, "admin").await.status,
        200,
        "no longer the last one"
    );
}

#[tokio::test]
async fn deleting_an_invited_user_cancels_the_invitation_and_frees_the_address() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    let token = first_invitation_token(&stack, &email).await;

    assert_eq!(api.delete_user(&admin, &id).await.status, 204);

    api.accept(&token, PASSWORD)
        .await
        .assert_problem(400, "token_invalid");
    api.user(&admin, &id).await.assert_problem(404, "not_found");
    let again = api.invite(&admin, &tenant, json!([{"email": email}])).await;
    assert_eq!(
        again.json["results"][0]["status"], "invited",
        "{}",
        again.text
    );
}

#[tokio::test]
async fn deleting_an_active_user_ends_their_sessions_at_once() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (email, id) = invite_and_accept(&stack, &api, &admin, &tenant, "admin").await;
    let session = api.token(&tenant, &email, PASSWORD).await;

    assert_eq!(api.delete_user(&admin, &id).await.status, 204);

    api.get(&format!("/v1/tenants/{tenant}/users"), Some(&session))
        .await
        .assert_problem(401, "unauthorized");
    api.sign_in(&tenant, &email, PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn lifecycle_routes_refuse_bad_input_and_unknown_users() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, _, id) = tenant_with_invitee(&stack, &api).await;
    let patch = |body: &'static [u8], ct: Option<&'static str>| {
        let (api, admin, id) = (&api, &admin, &id);
        async move {
            api.send(
                reqwest::Method::PATCH,
                &format!("/v1/users/{id}"),
                Some(admin),
                ct,
                body.to_vec(),
            )
            .await
            .unwrap()
        }
    };

    patch(b"{\"role\":", Some("application/json"))
        .await
        .assert_problem(400, "malformed_json");
    patch(
        b"{\"role\":\"admin\",\"email\":\"x@y.co\"}",
        Some("application/json"),
    )
    .await
    .assert_problem(400, "validation_failed");
    patch(b"{\"role\":\"admin\"}", Some("text/plain"))
        .await
        .assert_problem(415, "unsupported_media_type");
    for bad_id in ["AAAAAAAAAAAAAAAAAAAAAA", "..%2F..%2Fetc", "%3Cscript%3E"] {
        api.resend(&admin, bad_id)
            .await
            .assert_problem(404, "not_found");
        api.access_link(&admin, bad_id)
            .await
            .assert_problem(404, "not_found");
        api.delete_user(&admin, bad_id)
            .await
            .assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn managers_of_other_tenants_cannot_touch_a_user() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (operator, _, _, id) = tenant_with_invitee(&stack, &api).await;
    let other = api.create_tenant(&operator).await;
    let (other_admin, _) = invite_and_accept(&stack, &api, &operator, &other, "admin").await;
    let token = api.token(&other, &other_admin, PASSWORD).await;

    api.resend(&token, &id)
        .await
        .assert_problem(404, "not_found");
    api.access_link(&token, &id)
        .await
        .assert_problem(404, "not_found");
    api.patch_role(&token, &id, "admin")
        .await
        .assert_problem(404, "not_found");
    api.delete_user(&token, &id)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn the_audit_trail_records_each_admin_action_newest_first_without_tokens() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;
    api.resend(&admin, &id).await;
    let link = api.access_link(&admin, &id).await;
    let (_, token) = link_in(link.json["url"].as_str().unwrap(), "accept-invite").unwrap();
    api.accept(&token, PASSWORD).await;
    api.patch_role(&admin, &id, "admin").await;
    api.delete_user(&admin, &id).await;

    let audit = api
        .get(&format!("/v1/tenants/{tenant}/audit"), Some(&admin))
        .await;

    assert_eq!(audit.status, 200, "{}", audit.text);
    let actions: Vec<&str> = audit.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user_deleted",
            "role_changed",
            "access_link_created",
            "invitation_resent",
            "invitation_created"
        ]
    );
    let first = &audit.json["events"][4];
    assert_eq!(
        (
            first["actor"]["email"].as_str(),
            first["target"]["email"].as_str()
        ),
        (Some(stack.admin_email()), Some(email.as_str()))
    );
    assert!(
        !audit.text.contains(token.split_once('.').unwrap().1),
        "no token in the audit trail"
    );
    let paged = api
        .get(&format!("/v1/tenants/{tenant}/audit?limit=2"), Some(&admin))
        .await;
    assert_eq!(paged.json["events"].as_array().unwrap().len(), 2);
    assert!(paged.json["next_cursor"].is_string());
}

#[tokio::test]
async fn one_users_history_lists_only_what_was_done_to_them_even_after_deletion() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, _, id) = tenant_with_invitee(&stack, &api).await;
    let other = api
        .invite(&admin, &tenant, json!([{"email": unique_email("other")}]))
        .await;
    let other_id = other.json["results"][0]["user_id"].as_str().unwrap();
    api.resend(&admin, other_id).await;
    api.resend(&admin, &id).await;
    api.access_link(&admin, &id).await;
    api.delete_user(&admin, &id).await;
    let history = |query: String| {
        let (api, admin, tenant) = (&api, &admin, &tenant);
        async move {
            api.get(&format!("/v1/tenants/{tenant}/audit?{query}"), Some(admin))
                .await
        }
    };
    let actions = |resp: &Resp| -> Vec<String> {
        resp.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };

    let theirs = history(format!("user_id={id}")).await;
    let first_page = history(format!("user_id={id}&limit=2")).await;
    let cursor = first_page.json["next_cursor"].as_str().unwrap();
    let second_page = history(format!("user_id={id}&limit=2&cursor={cursor}")).await;
    let elsewhere = api.create_tenant(&admin).await;
    let from_another_tenant = api
        .get(
            &format!("/v1/tenants/{elsewhere}/audit?user_id={id}"),
            Some(&admin),
        )
        .await;
    let malformed = history("user_id=..%2F..".to_owned()).await;

    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(
        actions(&theirs),
        [
            "user_deleted",
            "access_link_created",
            "invitation_resent",
            "invitation_created"
        ]
    );
    assert!(
        theirs.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["target"]["id"] == id.as_str())
    );
    assert_eq!(
        [actions(&first_page), actions(&second_page)].concat(),
        actions(&theirs)
    );
    assert_eq!(from_another_tenant.status, 200);
    assert!(actions(&from_another_tenant).is_empty());
    malformed.assert_problem(400, "validation_failed");
}
