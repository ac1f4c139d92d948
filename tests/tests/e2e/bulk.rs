//! Acting on many invitations in one request: resending them to chase the people who have not
//! joined (`POST /v1/tenants/{tenant}/invitations/resend`), and cancelling them to undo an
//! invitation of the wrong people (`.../invitations/cancel`).

/// The two bulk routes, which share their request shape and their checks.
const ACTIONS: [&str; 2] = ["resend", "cancel"];

use latchkey_tests::*;
use serde_json::json;

/// Each result's `status`, and its error code where it was rejected.
fn outcomes(resp: &Resp) -> Vec<(String, Option<String>)> {
    resp.json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", resp.text))
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["error"]["code"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Checks each row's status and error code against `cases`: (id sent, status, code).
fn assert_outcomes(resp: &Resp, cases: &[(&str, &str, Option<&str>)]) {
    let expected: Vec<(String, Option<String>)> = cases
        .iter()
        .map(|(_, status, code)| (status.to_string(), code.map(str::to_owned)))
        .collect();
    assert_eq!(outcomes(resp), expected, "{}", resp.text);
}

/// How many of `tenant`'s lifecycle events are of `detail_type`, once at least `expected`
/// events of any type have been published.
async fn events_of_type(
    stack: &TestStack,
    tenant: &str,
    expected: usize,
    detail_type: &str,
) -> usize {
    events_of(stack, tenant, expected)
        .await
        .into_iter()
        .filter(|e| e["detail-type"] == detail_type)
        .count()
}

#[tokio::test]
async fn one_request_mails_every_listed_expired_person_a_new_link_that_works() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 3).await;
    for (_, id) in &people[..2] {
        backdate_invitation(&stack, id).await;
    }
    stack.invoke("expiry-sweep", json!({})).await.unwrap();
    let listed = api
        .get(
            &format!("/v1/tenants/{tenant}/users?status=expired&limit=100"),
            Some(&admin),
        )
        .await;
    let expired: Vec<&str> = listed.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(expired.len(), 2, "{}", listed.text);

    let resp = api.resend_many(&admin, &tenant, &expired).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    let results = resp.json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (result, id) in results.iter().zip(&expired) {
        assert_eq!(result["status"], "resent", "{result}");
        assert_eq!(result["user_id"], *id);
        assert_eq!(result["email_sent"], true);
        assert!(result["expires_at"].is_string());
    }
    for (email, id) in &people[..2] {
        assert_eq!(api.user(&admin, id).await.json["status"], "invited");
        let tokens = mailed_tokens(&stack, email, "accept-invite").await;
        assert_eq!(tokens.len(), 2, "the invitation and its resend");
        assert!(!invite_token_is_live(&api, &tokens[0]).await, "old link");
        let (_, token) = mailed_link(&stack, email, "accept-invite").await.unwrap();
        assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    }
    assert_eq!(
        mailed_tokens(&stack, &people[2].0, "accept-invite")
            .await
            .len(),
        1,
        "the person not listed got no second mail"
    );
    let resent = events_of_type(&stack, &tenant, 7, "Invitation Resent").await;
    assert_eq!(resent, 2, "one event per person resent");
}

#[tokio::test]
async fn each_id_gets_its_own_answer_in_order_and_a_refused_one_changes_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 1).await;
    let (pending_email, pending) = &people[0];
    let (active_email, active) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    let (_, other_tenant, others) = tenant_with_invitees(&stack, &api, 1).await;
    let (other_email, other) = &others[0];
    let long = "x".repeat(1000);
    // (id sent, expected status, expected code)
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        (pending, "resent", None),
        (&active, "rejected", Some("user_active")),
        ("../../etc/passwd", "rejected", Some("not_found")),
        ("AAAAAAAAAAAAAAAAAAAAAA", "rejected", Some("not_found")),
        (other, "rejected", Some("not_found")),
        (pending, "rejected", Some("duplicate_in_request")),
        (&long, "rejected", Some("not_found")),
    ];
    let ids: Vec<&str> = cases.iter().map(|(id, _, _)| *id).collect();

    let resp = api.resend_many(&admin, &tenant, &ids).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_outcomes(&resp, &cases);
    let results = resp.json["results"].as_array().unwrap();
    assert_eq!(
        (&results[2]["error"], &results[3]["error"]),
        (&results[4]["error"], &results[4]["error"]),
        "a malformed id, an unknown one and another tenant's read the same"
    );
    assert_eq!(results[6]["user_id"].as_str().unwrap().len(), 64);
    assert!(
        results[1]["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("password reset")
    );
    assert_eq!(
        mailed_tokens(&stack, pending_email, "accept-invite")
            .await
            .len(),
        2,
        "a duplicated id is mailed once"
    );
    assert_eq!(stack.mail_to(&active_email).await.unwrap().len(), 1);
    let other_tokens = mailed_tokens(&stack, other_email, "accept-invite").await;
    assert_eq!(other_tokens.len(), 1, "another tenant's user is not mailed");
    assert!(invite_token_is_live(&api, &other_tokens[0]).await);
    let other_user = api.user(&admin, other).await;
    assert_eq!(other_user.json["tenant"], other_tenant.as_str());
}

#[tokio::test]
async fn a_user_past_their_hourly_resends_is_refused_alone() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 2).await;
    let (tired, fresh) = (&people[0].1, &people[1].1);
    for _ in 0..5 {
        assert_eq!(api.resend(&admin, tired).await.status, 200);
    }

    let resp = api.resend_many(&admin, &tenant, &[tired, fresh]).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        outcomes(&resp),
        vec![
            ("rejected".to_owned(), Some("rate_limited".to_owned())),
            ("resent".to_owned(), None),
        ]
    );
    let detail = resp.json["results"][0]["error"]["detail"].as_str().unwrap();
    assert!(detail.contains("Possible again in"), "{detail}");
    assert_eq!(
        mailed_tokens(&stack, &people[0].0, "accept-invite")
            .await
            .len(),
        6,
        "the invitation and five resends, no seventh"
    );
}

#[tokio::test]
async fn a_request_past_the_tenant_mail_budget_sends_nothing() {
    let stack = stack_with_mail_budget(3).await;
    let api = Api::new(&stack);
    // The two invitations spend two of the tenant's three mails.
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 2).await;
    let ids: Vec<&str> = people.iter().map(|(_, id)| id.as_str()).collect();

    let refused = api.resend_many(&admin, &tenant, &ids).await;

    refused.assert_problem(429, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    for (email, _) in &people {
        let tokens = mailed_tokens(&stack, email, "accept-invite").await;
        assert_eq!(tokens.len(), 1, "no mail went out");
        assert!(
            invite_token_is_live(&api, &tokens[0]).await,
            "nothing renewed"
        );
    }
}

#[tokio::test]
async fn rows_a_bulk_resend_refuses_give_their_mail_back_to_the_tenant() {
    let stack = stack_with_mail_budget(7).await;
    let api = Api::new(&stack);
    // The invitation and five one-user resends spend six of the tenant's seven mails.
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 1).await;
    let id = people[0].1.as_str();
    for _ in 0..5 {
        assert_eq!(api.resend(&admin, id).await.status, 200);
    }
    let resp = api.resend_many(&admin, &tenant, &[id]).await;
    assert_eq!(outcomes(&resp)[0].1.as_deref(), Some("rate_limited"));

    let invited = api
        .invite(&admin, &tenant, json!([{"email": unique_email("grace")}]))
        .await;

    assert_eq!(invited.status, 200, "{}", invited.text);
    assert_eq!(invited.json["results"][0]["email_sent"], true);
}

#[tokio::test]
async fn two_bulk_resends_at_once_leave_each_person_exactly_one_live_link() {
    let stack = TestStack::builder().instances(2).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 4).await;
    let ids: Vec<&str> = people.iter().map(|(_, id)| id.as_str()).collect();

    let (a, b) = tokio::join!(
        api.resend_many(&admin, &tenant, &ids),
        api.resend_many(&admin, &tenant, &ids)
    );

    for resp in [&a, &b] {
        assert_eq!(resp.status, 200, "{}", resp.text);
        for (status, code) in outcomes(resp) {
            assert!(
                status == "resent" || code.as_deref() == Some("conflict"),
                "{status} {code:?}"
            );
        }
    }
    for (email, _) in &people {
        let mut live = 0;
        for token in mailed_tokens(&stack, email, "accept-invite").await {
            live += usize::from(invite_token_is_live(&api, &token).await);
        }
        assert_eq!(live, 1, "{email}: exactly one live link");
    }
}

#[tokio::test]
async fn malformed_bulk_requests_get_precise_problems_and_change_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 1).await;
    let many: Vec<String> = (0..101).map(|_| people[0].1.clone()).collect();
    let huge = json!({"user_ids": ["x".repeat(300 * 1024)]});
    let cases = || -> Vec<Case> {
        vec![
            (
                "malformed JSON",
                Some("application/json"),
                b"{\"user_ids\": [".to_vec(),
                400,
                "malformed_json",
            ),
            (
                "empty body",
                Some("application/json"),
                vec![],
                400,
                "malformed_json",
            ),
            (
                "not an object",
                Some("application/json"),
                b"[1]".to_vec(),
                400,
                "validation_failed",
            ),
            (
                "ids not strings",
                Some("application/json"),
                br#"{"user_ids":[42]}"#.to_vec(),
                400,
                "validation_failed",
            ),
            (
                "unknown field",
                Some("application/json"),
                br#"{"user_ids":["a"],"all":true}"#.to_vec(),
                400,
                "validation_failed",
            ),
            (
                "no ids",
                Some("application/json"),
                br#"{"user_ids":[]}"#.to_vec(),
                400,
                "validation_failed",
            ),
            (
                "more than 100",
                Some("application/json"),
                serde_json::to_vec(&json!({"user_ids": many})).unwrap(),
                400,
                "validation_failed",
            ),
            (
                "oversized",
                Some("application/json"),
                serde_json::to_vec(&huge).unwrap(),
                413,
                "payload_too_large",
            ),
            (
                "wrong content type",
                Some("text/csv"),
                br#"{"user_ids":["a"]}"#.to_vec(),
                415,
                "unsupported_media_type",
            ),
        ]
    };
    let before = scan_table(&stack).await.len();

    for action in ACTIONS {
        let path = format!("/v1/tenants/{tenant}/invitations/{action}");
        api.assert_refused(&path, &admin, cases()).await;
    }

    assert_eq!(scan_table(&stack).await.len(), before, "nothing written");
    assert_eq!(
        mailed_tokens(&stack, &people[0].0, "accept-invite")
            .await
            .len(),
        1
    );
    assert_eq!(api.user(&admin, &people[0].1).await.status, 200);
}

#[tokio::test]
async fn only_managers_of_the_tenant_may_act_on_its_invitations_in_bulk() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 1).await;
    let (email, id) = (&people[0].0, people[0].1.as_str());
    let other_tenant = api.create_tenant(&admin).await;
    let (outsider_email, _) = invite_and_accept(&stack, &api, &admin, &other_tenant, "admin").await;
    let outsider = api.token(&other_tenant, &outsider_email, PASSWORD).await;
    let (member_email, _) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    let member = api.token(&tenant, &member_email, PASSWORD).await;

    for action in ACTIONS {
        api.bulk(&outsider, &tenant, action, &[id])
            .await
            .assert_problem(404, "not_found");
        api.bulk(&member, &tenant, action, &[id])
            .await
            .assert_problem(403, "forbidden");
        api.post(
            &format!("/v1/tenants/{tenant}/invitations/{action}"),
            None,
            &json!({"user_ids": [id]}),
        )
        .await
        .assert_problem(401, "unauthorized");
        api.bulk(&admin, "no-such-tenant", action, &[id])
            .await
            .assert_problem(404, "not_found");
    }

    let tokens = mailed_tokens(&stack, email, "accept-invite").await;
    assert_eq!(tokens.len(), 1, "no refused request mailed anyone");
    assert!(
        invite_token_is_live(&api, &tokens[0]).await,
        "nor cancelled"
    );
}

#[tokio::test]
async fn cancelling_invitations_sent_by_mistake_kills_their_links_and_frees_the_addresses() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 3).await;
    let mistaken: Vec<&str> = people[..2].iter().map(|(_, id)| id.as_str()).collect();

    let resp = api.cancel_many(&admin, &tenant, &mistaken).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    for (result, (email, id)) in resp.json["results"].as_array().unwrap().iter().zip(&people) {
        assert_eq!(result["status"], "cancelled", "{result}");
        assert_eq!(result["user_id"], id.as_str());
        assert_eq!(result["email"], email.as_str());
        api.user(&admin, id).await.assert_problem(404, "not_found");
        let tokens = mailed_tokens(&stack, email, "accept-invite").await;
        assert!(
            !invite_token_is_live(&api, &tokens[0]).await,
            "the link died"
        );
    }
    let kept = mailed_tokens(&stack, &people[2].0, "accept-invite").await;
    assert!(
        invite_token_is_live(&api, &kept[0]).await,
        "the one not listed"
    );
    let again = api
        .invite(&admin, &tenant, json!([{"email": people[0].0}]))
        .await;
    assert_eq!(
        again.json["results"][0]["status"], "invited",
        "{}",
        again.text
    );
    let audit = api
        .get(&format!("/v1/tenants/{tenant}/audit"), Some(&admin))
        .await;
    let deleted = audit.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user_deleted")
        .count();
    assert_eq!(deleted, 2, "{}", audit.text);
    let cancelled = events_of_type(&stack, &tenant, 6, "Invitation Cancelled").await;
    assert_eq!(cancelled, 2, "one event per invitation cancelled");
}

#[tokio::test]
async fn a_bulk_cancel_never_deletes_an_active_user_and_answers_each_id() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 1).await;
    let pending = people[0].1.as_str();
    let (active_email, active) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    let (_, _, others) = tenant_with_invitees(&stack, &api, 1).await;
    let (other_email, other) = (&others[0].0, others[0].1.as_str());
    // (id sent, expected status, expected code)
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        (pending, "cancelled", None),
        (&active, "rejected", Some("user_active")),
        (other, "rejected", Some("not_found")),
        ("not an id", "rejected", Some("not_found")),
        (pending, "rejected", Some("duplicate_in_request")),
    ];
    let ids: Vec<&str> = cases.iter().map(|(id, _, _)| *id).collect();

    let resp = api.cancel_many(&admin, &tenant, &ids).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_outcomes(&resp, &cases);
    assert!(
        resp.json["results"][1]["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("DELETE /v1/users/"),
        "{}",
        resp.text
    );
    assert_eq!(
        api.sign_in(&tenant, &active_email, PASSWORD).await.status,
        200
    );
    let other_tokens = mailed_tokens(&stack, other_email, "accept-invite").await;
    assert!(invite_token_is_live(&api, &other_tokens[0]).await);
}

#[tokio::test]
async fn of_a_bulk_cancel_and_an_accept_at_the_same_moment_exactly_one_wins() {
    let stack = TestStack::builder().instances(2).start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, people) = tenant_with_invitees(&stack, &api, 1).await;
    let (email, id) = (&people[0].0, people[0].1.as_str());
    let (_, token) = mailed_link(&stack, email, "accept-invite").await.unwrap();

    let ids = [id];
    let (cancel, accept) = tokio::join!(
        api.cancel_many(&admin, &tenant, &ids),
        api.accept(&token, PASSWORD)
    );

    assert_eq!(cancel.status, 200, "{}", cancel.text);
    let cancelled = cancel.json["results"][0]["status"] == "cancelled";
    assert_ne!(
        cancelled,
        accept.status == 200,
        "exactly one wins: {} / {}",
        cancel.text,
        accept.text
    );
    let user = api.user(&admin, id).await;
    if cancelled {
        user.assert_problem(404, "not_found");
    } else {
        assert_eq!(user.json["status"], "active", "{}", user.text);
        assert_eq!(api.sign_in(&tenant, email, PASSWORD).await.status, 200);
    }
}
