//! What admins see of each person: a display name they can edit, who invited them and when,
//! when the invitation expires, when they joined and when they last signed in.

use latchkey_tests::*;
use serde_json::{Value, json};

/// `PATCH /v1/users/{id}` with a JSON body.
async fn patch(api: &Api, token: &str, id: &str, body: &Value) -> Resp {
    api.send(
        reqwest::Method::PATCH,
        &format!("/v1/users/{id}"),
        Some(token),
        Some("application/json"),
        serde_json::to_vec(body).unwrap(),
    )
    .await
    .unwrap()
}

/// The one user of `tenant` with `email`, as the list shows them.
async fn listed(api: &Api, token: &str, tenant: &str, email: &str) -> Value {
    let page = api
        .get(
            &format!("/v1/tenants/{tenant}/users?email_prefix={email}"),
            Some(token),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    page.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} is not listed: {}", page.text))
        .clone()
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn an_invited_person_shows_their_name_who_invited_them_and_when_it_expires() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let admin_id = api.id_of(&admin, "admin", stack.admin_email()).await;
    let email = unique_email("ada");
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);

    let invited = api
        .invite(
            &admin,
            &tenant,
            json!([{"email": email, "role": "member", "name": "  Ada Lovelace "}]),
        )
        .await;

    let id = &invited.user_ids()[0];
    let shown = listed(&api, &admin, &tenant, &email).await;
    let alone = api.user(&admin, id).await;
    for user in [&shown, &alone.json] {
        assert_eq!(user["name"], "Ada Lovelace", "trimmed: {user}");
        assert_eq!(user["status"], "invited");
        assert!(time(&user["invited_at"]) >= before);
        assert_eq!(
            user["invited_by"],
            json!({"id": admin_id, "email": stack.admin_email()}),
            "operators see which operator invited someone"
        );
        assert_eq!(user["expires_at"], invited.json["results"][0]["expires_at"]);
        assert_eq!(user["expires_at"], user["invite_expires_at"]);
        assert_eq!(user["accepted_at"], Value::Null);
        assert_eq!(user["last_sign_in_at"], Value::Null);
        assert_eq!(user["suspended_at"], Value::Null);
    }
}

#[tokio::test]
async fn accepting_records_when_and_each_sign_in_records_the_last_one() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (email, id) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    let joined = api.user(&admin, &id).await.json;
    assert!(joined["accepted_at"].is_string(), "{joined}");
    assert_eq!(joined["expires_at"], Value::Null, "no pending invitation");
    assert_eq!(joined["last_sign_in_at"], Value::Null, "not signed in yet");

    let signed_in_from = chrono::Utc::now() - chrono::Duration::seconds(1);
    api.token(&tenant, &email, PASSWORD).await;
    let first = time(&api.user(&admin, &id).await.json["last_sign_in_at"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.token(&tenant, &email, PASSWORD).await;
    let wrong = api
        .sign_in(&tenant, &email, "not the password at all")
        .await;
    assert_eq!(wrong.status, 401);

    let last = time(&listed(&api, &admin, &tenant, &email).await["last_sign_in_at"]);
    assert!(first >= signed_in_from);
    assert!(
        last > first,
        "the second sign-in is the last: {first} then {last}"
    );
    assert!(
        last <= chrono::Utc::now(),
        "a failed sign-in records nothing"
    );
}

#[tokio::test]
async fn customer_admins_see_operator_staff_who_invited_someone_only_as_the_operator() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (operator, tenant) = api.admin_and_tenant(&stack).await;
    let (admin_email, admin_id) =
        invite_and_accept(&stack, &api, &operator, &tenant, "admin").await;
    let customer = api.token(&tenant, &admin_email, PASSWORD).await;
    let by_customer = unique_email("colleague");
    api.invite(&customer, &tenant, json!([{"email": by_customer}]))
        .await;

    let operator_invited = listed(&api, &customer, &tenant, &admin_email).await;
    let customer_invited = listed(&api, &customer, &tenant, &by_customer).await;
    let as_operator_sees = listed(&api, &operator, &tenant, &admin_email).await;

    assert_eq!(operator_invited["invited_by"], json!({"operator": true}));
    assert!(
        !api.user(&customer, &admin_id)
            .await
            .text
            .contains(stack.admin_email()),
        "no operator address reaches a customer"
    );
    assert_eq!(
        customer_invited["invited_by"],
        json!({"id": admin_id, "email": admin_email})
    );
    assert_eq!(as_operator_sees["invited_by"]["email"], stack.admin_email());
}

#[tokio::test]
async fn an_admin_sets_changes_and_removes_a_name_and_each_change_is_audited() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;

    let set = patch(&api, &admin, &id, &json!({"name": "Grace Hopper"})).await;
    let renamed = patch(&api, &admin, &id, &json!({"name": "Rear Admiral Grace"})).await;
    let same = patch(&api, &admin, &id, &json!({"name": "Rear Admiral Grace"})).await;
    let removed = patch(&api, &admin, &id, &json!({"name": null})).await;
    let blank_set = patch(&api, &admin, &id, &json!({"name": "Grace"})).await;
    let blanked = patch(&api, &admin, &id, &json!({"name": "   "})).await;

    assert_eq!(
        (set.status, &set.json["name"]),
        (200, &json!("Grace Hopper"))
    );
    assert_eq!(renamed.json["name"], "Rear Admiral Grace");
    assert_eq!(same.status, 200);
    assert_eq!((removed.status, &removed.json["name"]), (200, &Value::Null));
    assert_eq!(blank_set.json["name"], "Grace");
    assert_eq!(blanked.json["name"], Value::Null, "a blank name is no name");
    assert_eq!(
        listed(&api, &admin, &tenant, &email).await["name"],
        Value::Null
    );
    let history = api
        .get(
            &format!("/v1/tenants/{tenant}/audit?user_id={id}"),
            Some(&admin),
        )
        .await;
    let renames: Vec<&str> = history.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "name_changed")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        renames,
        [
            "name \"Grace\" -> none",
            "name none -> \"Grace\"",
            "name \"Rear Admiral Grace\" -> none",
            "name \"Grace Hopper\" -> \"Rear Admiral Grace\"",
            "name none -> \"Grace Hopper\"",
        ],
        "one record per change, newest first; setting the same name records nothing"
    );
}

#[tokio::test]
async fn a_name_and_a_role_change_in_one_request_apply_together() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, _, id) = tenant_with_active_user(&stack, &api).await;

    let changed = patch(&api, &admin, &id, &json!({"role": "admin", "name": "Ada"})).await;

    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(
        (&changed.json["role"], &changed.json["name"]),
        (&json!("admin"), &json!("Ada"))
    );
}

#[tokio::test]
async fn hostile_or_malformed_names_are_refused_and_change_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, _, _, id) = tenant_with_invitee(&stack, &api).await;
    assert_eq!(
        patch(&api, &admin, &id, &json!({"name": "Kept"}))
            .await
            .status,
        200
    );
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a line break",
            json!({"name": "Ada\r\nBcc: x@evil.test"}),
            "invalid_name",
        ),
        ("a NUL", json!({"name": "Ada\u{0}"}), "invalid_name"),
        (
            "a right-to-left override",
            json!({"name": "evil\u{202E}gnp.exe"}),
            "invalid_name",
        ),
        (
            "101 characters",
            json!({"name": "a".repeat(101)}),
            "invalid_name",
        ),
        (
            "10,000 characters",
            json!({"name": "b".repeat(10_000)}),
            "invalid_name",
        ),
        ("a number", json!({"name": 42}), "validation_failed"),
        (
            "an object",
            json!({"name": {"first": "Ada"}}),
            "validation_failed",
        ),
        ("nothing to change", json!({}), "validation_failed"),
        (
            "an unknown field",
            json!({"nickname": "Ada"}),
            "validation_failed",
        ),
        (
            "a bad role beside a good name",
            json!({"name": "New", "role": "owner"}),
            "invalid_role",
        ),
        (
            "a bad name beside a good role",
            json!({"name": "\u{7}", "role": "admin"}),
            "invalid_name",
        ),
    ];

    for (what, body, code) in cases {
        let refused = patch(&api, &admin, &id, &body).await;
        assert_eq!(
            (refused.status, refused.code()),
            (400, code),
            "{what}: {}",
            refused.text
        );
    }

    let user = api.user(&admin, &id).await.json;
    assert_eq!(
        (&user["name"], &user["role"]),
        (&json!("Kept"), &json!("member"))
    );
}

#[tokio::test]
async fn an_invite_row_with_a_bad_name_is_rejected_alone() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (good, bad, unnamed) = (
        unique_email("good"),
        unique_email("bad"),
        unique_email("anon"),
    );

    let resp = api
        .invite(
            &admin,
            &tenant,
            json!([
                {"email": good, "name": "Ada"},
                {"email": bad, "name": "x\u{2066}y"},
                {"email": unnamed, "name": null},
            ]),
        )
        .await;

    let results = resp.json["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "invited");
    assert_eq!(results[1]["error"]["code"], "invalid_name", "{}", resp.text);
    assert_eq!(results[2]["status"], "invited");
    assert_eq!(listed(&api, &admin, &tenant, &good).await["name"], "Ada");
    assert_eq!(
        listed(&api, &admin, &tenant, &unnamed).await["name"],
        Value::Null
    );
    assert_eq!(
        items_with_prefix(&stack, "USER#").await,
        3,
        "the bootstrap admin and two"
    );
}

#[tokio::test]
async fn renaming_follows_the_role_rules_and_other_tenants_get_404() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let team_admin = api.admin_token(&stack).await;
    let (tenant, other) = (
        api.create_tenant(&team_admin).await,
        api.create_tenant(&team_admin).await,
    );
    let (_, invitee) = {
        let email = unique_email("target");
        let resp = api
            .invite(&team_admin, &tenant, json!([{"email": email}]))
            .await;
        (email, resp.user_ids()[0].clone())
    };
    let (member_email, _) = invite_and_accept(&stack, &api, &team_admin, &tenant, "member").await;
    let member = api.token(&tenant, &member_email, PASSWORD).await;
    let (other_email, _) = invite_and_accept(&stack, &api, &team_admin, &other, "admin").await;
    let other_admin = api.token(&other, &other_email, PASSWORD).await;
    let (op_admin_email, _) = invite_and_accept(&stack, &api, &team_admin, "admin", "admin").await;
    let operator_admin = api.token("admin", &op_admin_email, PASSWORD).await;
    let root = api.id_of(&team_admin, "admin", stack.admin_email()).await;
    let name = json!({"name": "Renamed"});

    patch(&api, &member, &invitee, &name)
        .await
        .assert_problem(403, "forbidden");
    patch(&api, &other_admin, &invitee, &name)
        .await
        .assert_problem(404, "not_found");
    patch(&api, &other_admin, &root, &name)
        .await
        .assert_problem(404, "not_found");
    patch(&api, &operator_admin, &root, &name)
        .await
        .assert_problem(403, "forbidden_role");
    patch(&api, &api_token_less(), &invitee, &name)
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(
        patch(&api, &operator_admin, &invitee, &name).await.status,
        200
    );
    assert_eq!(
        patch(&api, &team_admin, &root, &json!({"name": "Root"}))
            .await
            .status,
        200
    );
}

fn api_token_less() -> String {
    "not-a-session".to_owned()
}

#[tokio::test]
async fn concurrent_renames_each_apply_once_and_leave_one_of_the_names() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, _, id) = tenant_with_invitee(&stack, &api).await;
    let names: Vec<String> = (0..8).map(|i| format!("Name {i}")).collect();

    let bodies: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
    let answers =
        futures::future::join_all(bodies.iter().map(|body| patch(&api, &admin, &id, body))).await;

    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    let kept = api.user(&admin, &id).await.json["name"].clone();
    assert!(names.iter().any(|n| kept == *n), "one of the names: {kept}");
    let history = api
        .get(
            &format!("/v1/tenants/{tenant}/audit?user_id={id}"),
            Some(&admin),
        )
        .await;
    let renames = history.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "name_changed")
        .count();
    assert_eq!(renames, 8, "each rename is recorded with its change");
}
