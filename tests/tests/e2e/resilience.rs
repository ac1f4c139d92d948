//! Resilience: the real functions reach DynamoDB Local through a fault-injecting proxy
//! (`latchkey_local::faults`) that throttles, fails, drops or slows their requests. A few
//! faults are absorbed by the SDK's retries; persistent ones give a clear answer (503
//! problem with Retry-After for a whole request, a `service_unavailable` row for an invite
//! row), never a bare 500; and whatever happened, the table is left consistent.
//!
//! Stacks whose test keeps failing DynamoDB set `AWS_MAX_ATTEMPTS=2` for their functions
//! (the SDK reads it at start-up) so that a request gives up well within the 10 s Lambda
//! timeout; the tests of absorbed faults keep the SDK's default (3 attempts).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use latchkey_local::faults::{Fault, FaultPlan, FaultProxy};
use latchkey_tests::*;
use serde_json::{Value, json};

const TRANSACT: &str = "TransactWriteItems";
const GET: &str = "GetItem";
const UPDATE: &str = "UpdateItem";
const BATCH_GET: &str = "BatchGetItem";

/// A stack whose functions go through a fault proxy; `env` is for every function.
async fn stack(env: &[(&str, &str)]) -> (TestStack, FaultProxy) {
    let mut builder = TestStack::builder();
    for (name, value) in env {
        builder = builder.env(*name, *value);
    }
    builder.start_with_fault_proxy().await.unwrap()
}

/// SDK retries bounded so that persistent faults end well within the Lambda timeout.
const FEW_ATTEMPTS: &[(&str, &str)] = &[("AWS_MAX_ATTEMPTS", "2")];

fn s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Checks, over the whole table, what no fault may ever leave behind: two accounts for one
/// address, an `EMAIL#` claim without its `USER#` item or the reverse, a half-accepted
/// invitation (active without a password hash, or still holding invitation fields), an
/// invitation without its expiry.
async fn assert_table_consistent(stack: &TestStack) {
    let items = scan_table(stack).await;
    let users: BTreeMap<String, &HashMap<String, AttributeValue>> = items
        .iter()
        .filter(|i| s(i, "PK").is_some_and(|pk| pk.starts_with("USER#")))
        .map(|i| (s(i, "PK").unwrap()["USER#".len()..].to_owned(), i))
        .collect();
    let claims: BTreeMap<String, &HashMap<String, AttributeValue>> = items
        .iter()
        .filter(|i| s(i, "PK").is_some_and(|pk| pk.starts_with("EMAIL#")))
        .map(|i| (s(i, "PK").unwrap()["EMAIL#".len()..].to_owned(), i))
        .collect();
    let mut problems = Vec::new();

    let mut accounts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, user) in &users {
        let Some(email) = s(user, "email") else {
            problems.push(format!("user {id} has no email"));
            continue;
        };
        accounts.entry(email).or_default().push(id);
        match claims.get(email) {
            None => problems.push(format!("user {id} ({email}) has no EMAIL# claim")),
            Some(claim) if s(claim, "user_id") != Some(id) => problems.push(format!(
                "the claim of {email} names {:?}, not its user {id}",
                s(claim, "user_id")
            )),
            Some(claim) if s(claim, "tenant") != s(user, "tenant") => problems.push(format!(
                "the claim of {email} is in tenant {:?}, its user {id} in {:?}",
                s(claim, "tenant"),
                s(user, "tenant")
            )),
            Some(_) => {}
        }
        let has = |name: &str| user.contains_key(name);
        match s(user, "status") {
            Some("active") => {
                if !has("password_hash") {
                    problems.push(format!("active user {id} has no password_hash"));
                }
                for leftover in ["invite_token_hash", "invite_expires_at", "GSI2PK"] {
                    if has(leftover) {
                        problems.push(format!("active user {id} still has {leftover}"));
                    }
                }
            }
            Some("invited") => {
                if !has("invite_expires_at") || !has("GSI2PK") {
                    problems.push(format!(
                        "invited user {id} has no invite_expires_at or is not in the expiry index"
                    ));
                }
                if has("password_hash") {
                    problems.push(format!("invited user {id} already has a password_hash"));
                }
            }
            Some("expired") => {}
            other => problems.push(format!("user {id} has status {other:?}")),
        }
    }
    for (email, ids) in &accounts {
        if ids.len() > 1 {
            problems.push(format!("{email} has {} accounts: {ids:?}", ids.len()));
        }
    }
    for (email, claim) in &claims {
        match s(claim, "user_id") {
            Some(id) if users.contains_key(id) => {}
            other => problems.push(format!("the claim of {email} names missing user {other:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "the table is inconsistent:\n{}",
        problems.join("\n")
    );
}

/// A response that is never a bare failure: no 500, always JSON the client can read.
#[track_caller]
fn assert_clear_answer(resp: &Resp) {
    assert_ne!(resp.status, 500, "a bare 500: {}", resp.text);
    assert_ne!(resp.status, 502, "the function crashed: {}", resp.text);
    assert!(
        resp.content_type() == "application/json"
            || resp.content_type() == "application/problem+json",
        "content type {:?}: {}",
        resp.content_type(),
        resp.text
    );
    assert!(resp.json.is_object(), "not JSON: {}", resp.text);
}

/// A 503 problem `service_unavailable` with a Retry-After in seconds.
#[track_caller]
fn assert_unavailable(resp: &Resp) {
    assert_clear_answer(resp);
    resp.assert_problem(503, "service_unavailable");
    let retry_after = resp
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After: {:?}",
        resp.headers.get("retry-after")
    );
}

fn row_statuses(resp: &Resp) -> Vec<String> {
    resp.json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", resp.text))
        .iter()
        .map(|r| {
            r["error"]["code"]
                .as_str()
                .unwrap_or(r["status"].as_str().unwrap_or("?"))
                .to_owned()
        })
        .collect()
}

fn rows<S: AsRef<str>>(emails: &[S]) -> Value {
    emails
        .iter()
        .map(|e| json!({"email": e.as_ref(), "role": "member"}))
        .collect()
}

#[tokio::test]
async fn a_few_throttled_requests_are_absorbed_by_the_sdk_retries() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("throttled");

    proxy.reset_counts();
    proxy.set(FaultPlan::new().next(TRANSACT, Fault::Throttling, 2));
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_clear_answer(&resp);
    assert_eq!(row_statuses(&resp), ["invited"], "{}", resp.text);
    assert_eq!(
        proxy.count(TRANSACT),
        3,
        "two throttled attempts, then the one that went through: {:?}",
        proxy.counts()
    );

    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();
    proxy.reset_counts();
    proxy.set(FaultPlan::new().next(GET, Fault::Throttling, 1).next(
        TRANSACT,
        Fault::ProvisionedThroughputExceeded,
        2,
    ));
    let accepted = api.accept(&token, PASSWORD).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(proxy.count(TRANSACT), 3, "{:?}", proxy.counts());
    assert!(proxy.count(GET) >= 2, "{:?}", proxy.counts());
    assert_eq!(proxy.injected().values().sum::<u64>(), 3);

    proxy.clear();
    api.token(&tenant, &email, PASSWORD).await;
    assert_table_consistent(&stack).await;
}

/// Every invite transaction fails with `fault`: each row is refused on its own, with a code
/// the client can act on, and nothing of it is stored, so the same rows succeed later.
async fn invite_rows_while_every_transaction_fails(fault: Fault) {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let emails = [unique_email("down-a"), unique_email("down-b")];

    proxy.reset_counts();
    proxy.set(FaultPlan::new().always(TRANSACT, fault));
    let started = Instant::now();
    let resp = api.invite(&admin, &tenant, rows(&emails)).await;
    let took = started.elapsed();
    assert_clear_answer(&resp);
    assert_eq!(resp.status, 200, "a per-row answer: {}", resp.text);
    assert_eq!(
        row_statuses(&resp),
        ["service_unavailable", "service_unavailable"],
        "{}",
        resp.text
    );
    for (row, email) in resp.json["results"].as_array().unwrap().iter().zip(&emails) {
        assert_eq!(row["status"], "rejected");
        assert_eq!(row["email"], email.as_str());
        assert!(row["user_id"].is_null());
        assert!(
            row["error"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("retry")),
            "{row}"
        );
    }
    assert!(
        proxy.count(TRANSACT) >= 2 * emails.len() as u64,
        "each row's transaction was retried: {:?}",
        proxy.counts()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    for email in &emails {
        assert!(stack.mail_to(email).await.unwrap().is_empty());
    }
    assert_eq!(
        items_with_prefix(&stack, "EMAIL#").await,
        1,
        "only the admin's claim"
    );

    proxy.clear();
    let again = api.invite(&admin, &tenant, rows(&emails)).await;
    assert_eq!(
        row_statuses(&again),
        ["invited", "invited"],
        "{}",
        again.text
    );
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn persistent_throttling_of_the_invite_transaction_rejects_each_row_as_service_unavailable() {
    invite_rows_while_every_transaction_fails(Fault::Throttling).await;
}

#[tokio::test]
async fn persistent_500s_on_the_invite_transaction_reject_each_row_as_service_unavailable() {
    invite_rows_while_every_transaction_fails(Fault::InternalServerError).await;
}

#[tokio::test]
async fn a_store_outage_before_the_rows_fails_the_whole_invite_with_503_and_retry_after() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("outage");

    // Reading the caller (authentication) and the tenant.
    proxy.set(FaultPlan::new().always(GET, Fault::Throttling));
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_unavailable(&resp);

    // The mail budget (rate limit) update.
    proxy.set(FaultPlan::new().always(UPDATE, Fault::InternalServerError));
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_unavailable(&resp);
    assert!(proxy.injected().keys().any(|t| t.ends_with(UPDATE)));

    proxy.clear();
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_eq!(row_statuses(&resp), ["invited"], "{}", resp.text);
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn a_bulk_resend_whose_renewals_fail_rejects_each_row_and_the_old_links_still_work() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let emails = [unique_email("chase-a"), unique_email("chase-b")];
    let invited = api.invite(&admin, &tenant, rows(&emails)).await;
    let ids: Vec<&str> = invited.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap())
        .collect();

    proxy.set(FaultPlan::new().always(TRANSACT, Fault::Throttling));
    let resp = api.resend_many(&admin, &tenant, &ids).await;

    assert_clear_answer(&resp);
    assert_eq!(
        row_statuses(&resp),
        ["service_unavailable", "service_unavailable"],
        "{}",
        resp.text
    );
    assert!(
        resp.json["results"][0]["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("retry")),
        "{}",
        resp.text
    );
    for email in &emails {
        let tokens = mailed_tokens(&stack, email, "accept-invite").await;
        assert_eq!(tokens.len(), 1, "no mail for a renewal that failed");
        assert!(invite_token_is_live(&api, &tokens[0]).await);
    }
    assert_table_consistent(&stack).await;

    proxy.clear();
    let again = api.resend_many(&admin, &tenant, &ids).await;
    assert_eq!(row_statuses(&again), ["resent", "resent"], "{}", again.text);
}

#[tokio::test]
async fn a_bulk_cancel_whose_deletes_fail_keeps_every_invitation_whole() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;

    proxy.set(FaultPlan::new().always(TRANSACT, Fault::InternalServerError));
    let resp = api.cancel_many(&admin, &tenant, &[&id]).await;

    assert_clear_answer(&resp);
    assert_eq!(
        row_statuses(&resp),
        ["service_unavailable"],
        "{}",
        resp.text
    );
    proxy.clear();
    assert_table_consistent(&stack).await;
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();
    assert!(invite_token_is_live(&api, &token).await, "not cancelled");
    let again = api.cancel_many(&admin, &tenant, &[&id]).await;
    assert_eq!(row_statuses(&again), ["cancelled"], "{}", again.text);
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn a_bulk_resend_that_cannot_read_its_users_answers_503_and_sends_nothing() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_invitee(&stack, &api).await;

    proxy.set(FaultPlan::new().always(BATCH_GET, Fault::InternalServerError));
    let resp = api.resend_many(&admin, &tenant, &[&id]).await;

    assert_unavailable(&resp);
    assert!(proxy.injected().keys().any(|t| t.ends_with(BATCH_GET)));
    assert_eq!(
        mailed_tokens(&stack, &email, "accept-invite").await.len(),
        1
    );
    proxy.clear();
    let again = api.resend_many(&admin, &tenant, &[&id]).await;
    assert_eq!(row_statuses(&again), ["resent"], "{}", again.text);
}

#[tokio::test]
async fn accept_while_its_transaction_is_throttled_answers_503_and_the_link_still_works_later() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_invitee(&stack, &api).await;
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();

    proxy.set(FaultPlan::new().always(TRANSACT, Fault::Throttling));
    let resp = api.accept(&token, PASSWORD).await;
    assert_unavailable(&resp);
    assert_table_consistent(&stack).await;
    assert!(
        invite_token_is_live(&api, &token).await,
        "a failed accept does not spend the link"
    );

    proxy.clear();
    let accepted = api.accept(&token, PASSWORD).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    api.token(&tenant, &email, PASSWORD).await;
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn dropped_connections_on_get_item_during_sign_in_answer_503_with_retry_after() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;

    proxy.reset_counts();
    proxy.set(FaultPlan::new().always(GET, Fault::Drop));
    let started = Instant::now();
    let resp = api.sign_in(&tenant, &email, PASSWORD).await;
    let took = started.elapsed();
    assert_unavailable(&resp);
    assert!(
        proxy.count(GET) >= 2,
        "the SDK retried the dropped read: {:?}",
        proxy.counts()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    proxy.clear();
    api.token(&tenant, &email, PASSWORD).await;
    assert_table_consistent(&stack).await;
}

/// A sign-in takes its places in the failure windows before the password is checked: when
/// they cannot be taken, it neither lets the guess through unlimited nor counts it, and
/// answers 503.
#[tokio::test]
async fn a_sign_in_unable_to_take_its_places_answers_503_and_counts_nothing() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;

    proxy.reset_counts();
    proxy.set(FaultPlan::new().always(UPDATE, Fault::Throttling));
    let guess = api.sign_in(&tenant, &email, "wrong password guess").await;
    let right = api.sign_in(&tenant, &email, PASSWORD).await;

    assert_unavailable(&guess);
    assert_unavailable(&right);
    assert!(proxy.count(UPDATE) >= 2, "{:?}", proxy.counts());
    proxy.clear();
    assert_eq!(
        api.user(&admin, &id).await.json["sign_in"]["failures"],
        0,
        "the guess that was never checked is not counted"
    );
    api.token(&tenant, &email, PASSWORD).await;
}

/// A sign-in whose account cannot be read gives back the places it took: the guess was never
/// checked, so it does not count.
#[tokio::test]
async fn a_sign_in_whose_account_cannot_be_read_gives_its_places_back() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant, email, id) = tenant_with_active_user(&stack, &api).await;

    proxy.set(FaultPlan::new().always(GET, Fault::InternalServerError));
    let guess = api.sign_in(&tenant, &email, "wrong password guess").await;
    proxy.clear();

    assert_unavailable(&guess);
    assert_eq!(
        api.user(&admin, &id).await.json["sign_in"]["failures"],
        0,
        "the guess that was never checked is not counted"
    );
}

#[tokio::test]
async fn a_single_dropped_connection_during_sign_in_is_retried_by_the_sdk() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;

    proxy.reset_counts();
    proxy.set(FaultPlan::new().next(GET, Fault::Drop, 1));
    let resp = api.sign_in(&tenant, &email, PASSWORD).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(proxy.injected().values().sum::<u64>(), 1);
    assert!(
        proxy.count(GET) >= 3,
        "claim, user, and the retried one: {:?}",
        proxy.counts()
    );
    assert_table_consistent(&stack).await;
}

/// Sign-in takes its places in the failure windows (the address's and the source IP's) and
/// reads the email claim at once, not one after the other: with every request held for a
/// while by the proxy, three are in flight together. A right password gives both places back
/// while `last_sign_in_at` is recorded.
#[tokio::test]
async fn sign_in_takes_its_places_in_the_failure_windows_beside_the_account_read() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;

    proxy.reset_counts();
    proxy.set(
        FaultPlan::new()
            .always(GET, Fault::Latency(Duration::from_millis(300)))
            .always(UPDATE, Fault::Latency(Duration::from_millis(300))),
    );
    let resp = api.sign_in(&tenant, &email, PASSWORD).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    let counts = proxy.counts();
    assert_eq!(
        (proxy.count(UPDATE), proxy.count(GET)),
        (5, 2),
        "two places taken and given back beside the sign-in's record on the user, the claim \
         and the user: {counts:?}"
    );
    assert_eq!(counts.values().sum::<u64>(), 7, "{counts:?}");
    assert_eq!(proxy.peak_in_flight_all(), 3, "{counts:?}");
}

#[tokio::test]
async fn a_failed_sign_in_makes_the_same_requests_whether_or_not_the_address_has_an_account() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;

    let mut requests = Vec::new();
    for address in [email, unique_email("nobody")] {
        proxy.reset_counts();
        let resp = api
            .sign_in(&tenant, &address, "not the password of anyone")
            .await;
        resp.assert_problem(401, "invalid_credentials");
        requests.push(proxy.counts());
    }

    assert_eq!(requests[0], requests[1]);
}

#[tokio::test]
async fn latency_of_200_ms_on_every_request_slows_the_service_but_breaks_nothing() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let emails = [unique_email("slow-a"), unique_email("slow-b")];

    proxy.reset_counts();
    proxy.set(FaultPlan::new().always_any(Fault::Latency(Duration::from_millis(200))));
    let started = Instant::now();
    let resp = api.invite(&admin, &tenant, rows(&emails)).await;
    assert_eq!(row_statuses(&resp), ["invited", "invited"], "{}", resp.text);
    // Authentication, tenant, mail budget, then the rows (in parallel): at least 4 in a row.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );

    for email in &emails {
        let (_, token) = mailed_link(&stack, email, "accept-invite").await.unwrap();
        let accepted = api.accept(&token, PASSWORD).await;
        assert_eq!(accepted.status, 200, "{}", accepted.text);
        api.token(&tenant, email, PASSWORD).await;
    }
    let listed = api
        .get(&format!("/v1/tenants/{tenant}/users"), Some(&admin))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.json["users"].as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.text
    );
    assert!(
        proxy.counts().values().sum::<u64>() >= 10,
        "{:?}",
        proxy.counts()
    );
    assert!(proxy.injected().is_empty());
    proxy.clear();
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn random_throttling_and_dropped_connections_never_leave_a_half_written_account() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let emails: Vec<String> = (0..8).map(|i| unique_email(&format!("chaos{i}"))).collect();

    proxy.set(
        FaultPlan::new()
            .seed(20_250_101)
            .sometimes(TRANSACT, Fault::Throttling, 0.4)
            .sometimes(TRANSACT, Fault::Drop, 0.2)
            .sometimes(UPDATE, Fault::InternalServerError, 0.2),
    );
    let resp = api.invite(&admin, &tenant, rows(&emails)).await;
    assert_clear_answer(&resp);
    if resp.status == 200 {
        for status in row_statuses(&resp) {
            assert!(
                status == "invited" || status == "service_unavailable",
                "{status}: {}",
                resp.text
            );
        }
    } else {
        assert_unavailable(&resp);
    }
    assert!(!proxy.injected().is_empty(), "{:?}", proxy.counts());

    let first = if resp.status == 200 {
        row_statuses(&resp)
    } else {
        vec!["service_unavailable".to_owned(); emails.len()]
    };

    proxy.clear();
    assert_table_consistent(&stack).await;
    // Whatever was not stored can be invited now; what was stored is already invited.
    let again = api.invite(&admin, &tenant, rows(&emails)).await;
    for (status, first) in row_statuses(&again).iter().zip(first) {
        let expected = if first == "invited" {
            "already_invited"
        } else {
            "invited"
        };
        assert_eq!(status, expected, "{}", again.text);
    }
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn an_invite_whose_transaction_answer_is_lost_is_still_reported_as_invited() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("lost");

    proxy.reset_counts();
    proxy.set(FaultPlan::new().next(TRANSACT, Fault::LoseResponse, 1));
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_clear_answer(&resp);
    // The SDK's retry carries the same ClientRequestToken, so DynamoDB answers it as the
    // write it already applied instead of failing the address's claim.
    assert_eq!(row_statuses(&resp), ["invited"], "{}", resp.text);
    assert_eq!(proxy.count(TRANSACT), 2, "{:?}", proxy.counts());
    assert_eq!(
        mailed_tokens(&stack, &email, "accept-invite").await.len(),
        1
    );
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn an_accept_whose_transaction_answer_is_lost_still_succeeds() {
    let (stack, proxy) = stack(&[]).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_invitee(&stack, &api).await;
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();

    proxy.reset_counts();
    proxy.set(FaultPlan::new().next(TRANSACT, Fault::LoseResponse, 1));
    let resp = api.accept(&token, PASSWORD).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(proxy.count(TRANSACT), 2, "{:?}", proxy.counts());
    api.token(&tenant, &email, PASSWORD).await;
    assert_table_consistent(&stack).await;
}

/// The first attempt is throttled, the second applied but its answer lost: with
/// `AWS_MAX_ATTEMPTS=2` the SDK gives up there, and the store's own retry (`Store::transact`)
/// must send the transaction again with the same `ClientRequestToken`, so that DynamoDB
/// reports the write it already applied as a success instead of failing its own conditions.
fn lost_after_the_sdk_gave_up() -> FaultPlan {
    FaultPlan::new()
        .next(TRANSACT, Fault::Throttling, 1)
        .next(TRANSACT, Fault::LoseResponse, 1)
}

#[tokio::test]
async fn an_invite_applied_after_the_sdk_gave_up_is_reported_as_invited_and_mailed() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("lost-late");

    proxy.set(lost_after_the_sdk_gave_up());
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_clear_answer(&resp);
    assert_table_consistent(&stack).await;
    // Not `already_exists` for the account this very request created, and mailed once.
    assert_eq!(row_statuses(&resp), ["invited"], "{}", resp.text);
    assert_eq!(
        mailed_tokens(&stack, &email, "accept-invite").await.len(),
        1
    );
}

#[tokio::test]
async fn an_accept_applied_after_the_sdk_gave_up_is_answered_200() {
    let (stack, proxy) = stack(FEW_ATTEMPTS).await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_invitee(&stack, &api).await;
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();

    proxy.set(lost_after_the_sdk_gave_up());
    let resp = api.accept(&token, PASSWORD).await;
    assert_clear_answer(&resp);
    assert_table_consistent(&stack).await;
    // Not 409 `token_used` for the password this very request set.
    assert_eq!(resp.status, 200, "{}", resp.text);
    api.token(&tenant, &email, PASSWORD).await;
}

// SES v2 through its own fault proxy (in front of moto): mail is a side effect. Whatever
// SES does, what the mail was about is stored, the caller is told `email_sent: false` with a
// reason, never a 5xx, and once SES is back a fresh link goes out and works.

/// How SES fails, each for every send until the proxy is cleared.
#[derive(Debug, Clone, Copy)]
enum SesOutage {
    /// Every connection is closed without an answer.
    Down,
    /// Every send is refused with 429 `TooManyRequestsException`, SES's throttling answer.
    Throttling,
    /// Every send hangs for longer than `latchkey::mail::SEND_TIMEOUT`, and longer than the
    /// test: a mail that hung is never delivered late.
    Slow,
}

const SES_OUTAGES: [SesOutage; 3] = [SesOutage::Down, SesOutage::Throttling, SesOutage::Slow];

impl SesOutage {
    fn plan(self) -> FaultPlan {
        let fault = match self {
            Self::Down => Fault::Drop,
            Self::Throttling => Fault::TooManyRequests,
            Self::Slow => Fault::Latency(Duration::from_secs(120)),
        };
        FaultPlan::new().always_any(fault)
    }
}

/// A stack whose functions send mail through a fault proxy; everything else is direct.
async fn ses_stack() -> (TestStack, FaultProxy) {
    TestStack::builder()
        .start_with_ses_fault_proxy()
        .await
        .unwrap()
}

/// What a mail-sending route reports for a mail SES did not take: not sent, and a reason
/// that says the link itself is saved.
#[track_caller]
fn assert_reported_unsent(answer: &Value, outage: SesOutage) {
    assert_eq!(answer["email_sent"], false, "{outage:?}: {answer}");
    assert_eq!(
        answer["email_error"]["code"], "email_unavailable",
        "{outage:?}: {answer}"
    );
    assert!(
        answer["email_error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("saved")),
        "{outage:?}: the reason says nothing is lost: {answer}"
    );
}

/// The send gave up in time: the answer came well within the 10 s Lambda timeout.
#[track_caller]
fn assert_answered_in_time(started: Instant, outage: SesOutage) {
    let took = started.elapsed();
    assert!(took < Duration::from_secs(9), "{outage:?}: took {took:?}");
}

/// The outage was real: the functions' sends went through the proxy (so a test cannot pass
/// with mail going around it).
#[track_caller]
fn assert_ses_was_reached(proxy: &FaultProxy, outage: SesOutage) {
    assert!(
        proxy.counts().values().sum::<u64>() > 0,
        "{outage:?}: no request reached SES through the proxy"
    );
}

async fn invitation_during_an_ses_outage_is_stored_and_resent_after_it(outage: SesOutage) {
    let (stack, proxy) = ses_stack().await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let email = unique_email("ses-invite");

    proxy.reset_counts();
    proxy.set(outage.plan());
    let started = Instant::now();
    let resp = api.invite(&admin, &tenant, rows(&[&email])).await;
    assert_answered_in_time(started, outage);
    assert_clear_answer(&resp);
    let row = &resp.json["results"][0];
    assert_eq!(row["status"], "invited", "{outage:?}: {}", resp.text);
    assert_reported_unsent(row, outage);
    assert_ses_was_reached(&proxy, outage);
    assert!(stack.mail_to(&email).await.unwrap().is_empty());
    let user_id = row["user_id"].as_str().unwrap();
    let user = api.user(&admin, user_id).await;
    assert_eq!(user.json["status"], "invited", "{}", user.text);
    assert_eq!(
        user.json["last_delivery"]["status"], "send_failed",
        "the admin sees why: {}",
        user.text
    );

    proxy.clear();
    let resent = api.resend(&admin, user_id).await;
    assert_eq!(resent.status, 200, "{}", resent.text);
    assert_eq!(resent.json["email_sent"], true, "{}", resent.text);
    let (_, token) = mailed_link(&stack, &email, "accept-invite").await.unwrap();
    let accepted = api.accept(&token, PASSWORD).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    api.token(&tenant, &email, PASSWORD).await;
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn an_invitation_while_ses_is_down_is_stored_unsent_and_resent_once_ses_is_back() {
    invitation_during_an_ses_outage_is_stored_and_resent_after_it(SesOutage::Down).await;
}

#[tokio::test]
async fn an_invitation_while_ses_throttles_is_stored_unsent_and_resent_once_ses_is_back() {
    invitation_during_an_ses_outage_is_stored_and_resent_after_it(SesOutage::Throttling).await;
}

#[tokio::test]
async fn an_invitation_while_ses_hangs_is_stored_unsent_and_resent_once_ses_is_back() {
    invitation_during_an_ses_outage_is_stored_and_resent_after_it(SesOutage::Slow).await;
}

#[tokio::test]
async fn admin_resets_during_each_ses_outage_are_reported_unsent_and_work_once_ses_is_back() {
    let (stack, proxy) = ses_stack().await;
    let api = Api::new(&stack);
    let (admin, tenant, email, user_id) = tenant_with_active_user(&stack, &api).await;
    let mails_before = stack.mail_to(&email).await.unwrap().len();
    proxy.reset_counts();

    for outage in SES_OUTAGES {
        proxy.set(outage.plan());
        let started = Instant::now();
        let resp = api.admin_reset(&admin, &user_id).await;
        assert_answered_in_time(started, outage);
        assert_clear_answer(&resp);
        assert_eq!(resp.status, 202, "{outage:?}: {}", resp.text);
        assert_reported_unsent(&resp.json, outage);
        assert_ses_was_reached(&proxy, outage);
        proxy.clear();
        proxy.reset_counts();
    }
    assert_eq!(
        stack.mail_to(&email).await.unwrap().len(),
        mails_before,
        "no reset mail went out during the outages"
    );

    let resp = api.admin_reset(&admin, &user_id).await;
    assert_eq!(resp.status, 202, "{}", resp.text);
    assert_eq!(resp.json["email_sent"], true, "{}", resp.text);
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    let reset = api.reset_password(&token, "a brand new passphrase").await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    api.token(&tenant, &email, "a brand new passphrase").await;
    assert_table_consistent(&stack).await;
}

#[tokio::test]
async fn forgot_password_during_each_ses_outage_still_answers_202_and_works_once_ses_is_back() {
    let (stack, proxy) = ses_stack().await;
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_active_user(&stack, &api).await;
    let mails_before = stack.mail_to(&email).await.unwrap().len();
    proxy.reset_counts();

    for outage in SES_OUTAGES {
        proxy.set(outage.plan());
        let forgot = api.forgot(&tenant, &email).await;
        assert_clear_answer(&forgot);
        assert_eq!(forgot.status, 202, "{outage:?}: {}", forgot.text);
        assert_ses_was_reached(&proxy, outage);
        proxy.clear();
        proxy.reset_counts();
    }
    assert_eq!(stack.mail_to(&email).await.unwrap().len(), mails_before);

    let forgot = api.forgot(&tenant, &email).await;
    assert_eq!(forgot.status, 202, "{}", forgot.text);
    let (_, token) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    let reset = api.reset_password(&token, "a brand new passphrase").await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    api.token(&tenant, &email, "a brand new passphrase").await;
}

/// The signing secret is fetched beside the runtime's first poll, not before it; while it
/// cannot be read, each request gets a clear 503, and the first request after it appears is
/// served by the same instances, with no restart.
#[tokio::test]
async fn requests_while_the_signing_secret_cannot_be_read_answer_503_until_it_can() {
    let secret = unique("late-secret");
    let stack = TestStack::builder()
        .env("JWT_SECRET_ARN", secret.as_str())
        .bootstrap(false)
        .start()
        .await
        .unwrap();
    let api = Api::new(&stack);

    let before = api.sign_in("admin", "nobody@example.com", PASSWORD).await;
    assert_unavailable(&before);

    stack
        .aws()
        .secrets
        .create_secret()
        .name(&secret)
        .secret_string(unique("a-signing-secret-of-enough-length"))
        .send()
        .await
        .unwrap();
    // As a client honouring the 503's Retry-After would (the instance does not fetch the
    // secret again within `latchkey::app::RETRY_PAUSE` of a failure).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = api.sign_in("admin", "nobody@example.com", PASSWORD).await;
    assert_clear_answer(&after);
    assert_eq!(after.status, 401, "{}", after.text);
}
