//! Issue 29 §5: separate, rotating keys. The `rotate-keys` function is driven through the four
//! steps Secrets Manager sends it, against moto's Secrets Manager; then sessions and links
//! issued before a rotation are used after it, as their holders would.
//!
//! Each test rotates a secret of its own (the stack's functions get it as `JWT_SECRET_ARN`), so
//! that no other test sees its keys change.

use std::collections::BTreeMap;
use std::time::Duration;

use latchkey::secrets::{Keyring, Keys, LEGACY_KID};
use latchkey_local::setup::{Aws, Endpoints, rotate_keys, rotation_token};
use latchkey_tests::*;
use serde_json::json;

/// A secret holding a plain value, as CloudFormation creates it and as every deployment had
/// before keyrings; returns its ARN and value.
async fn plain_secret() -> (String, String) {
    let endpoints = Endpoints::from_env().expect("run under latchkey-local test-env");
    let value: String = (0..64)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random::<usize>() % 36]))
        .collect();
    let created = Aws::local(&endpoints)
        .await
        .secrets
        .create_secret()
        .name(unique("latchkey/keys"))
        .secret_string(&value)
        .send()
        .await
        .unwrap();
    (created.arn().unwrap().to_owned(), value)
}

/// The stages of every version of the secret: version id → labels (sorted).
async fn stages(stack: &TestStack, arn: &str) -> BTreeMap<String, Vec<String>> {
    let described = stack
        .aws()
        .secrets
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .unwrap();
    described
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .map(|(version, labels)| {
            let mut labels = labels.clone();
            labels.sort();
            (version.clone(), labels)
        })
        .collect()
}

async fn keyring(stack: &TestStack, arn: &str, stage: &str) -> Keyring {
    let value = stack
        .aws()
        .secrets
        .get_secret_value()
        .secret_id(arn)
        .version_stage(stage)
        .send()
        .await
        .unwrap();
    Keyring::parse(value.secret_string().unwrap()).unwrap()
}

fn kids(ring: &Keyring) -> Vec<String> {
    ring.kids().map(str::to_owned).collect()
}

async fn step(
    stack: &TestStack,
    arn: &str,
    token: &str,
    step: &str,
) -> anyhow::Result<serde_json::Value> {
    stack
        .invoke(
            "rotate-keys",
            json!({"Step": step, "SecretId": arn, "ClientRequestToken": token}),
        )
        .await
}

/// The `kid` a session token's header names.
fn kid(token: &str) -> String {
    latchkey::session::kid_of(token).unwrap()
}

/// The stored invitation hash of the user with `id`.
async fn stored_invite_hash(stack: &TestStack, id: &str) -> String {
    let item = stack
        .dynamodb_client()
        .get_item()
        .table_name(stack.table_name())
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{id}")),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()),
        )
        .send()
        .await
        .unwrap();
    item.item().unwrap()["invite_token_hash"]
        .as_s()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_four_rotation_steps_stage_a_new_keyring_and_make_it_current() {
    let stack = TestStack::start().await.unwrap();
    let (arn, _) = plain_secret().await;
    let before = stages(&stack, &arn).await;
    let old_version = before.keys().next().unwrap().clone();
    assert_eq!(before[&old_version], ["AWSCURRENT"]);
    let token = rotation_token();

    let created = step(&stack, &arn, &token, "createSecret").await.unwrap();

    assert_eq!(created["result"], "created", "{created}");
    let after_create = stages(&stack, &arn).await;
    assert_eq!(
        after_create[&old_version],
        ["AWSCURRENT"],
        "nothing moves yet"
    );
    assert_eq!(after_create[&token], ["AWSPENDING"]);
    let pending = keyring(&stack, &arn, "AWSPENDING").await;
    assert_eq!(pending.len(), 2);
    assert_eq!(
        kids(&pending)[1],
        LEGACY_KID,
        "the plain value is kept as a generation"
    );
    let again = step(&stack, &arn, &token, "createSecret").await.unwrap();
    assert_eq!(
        again["result"], "already_created",
        "a retried step does nothing"
    );
    assert_eq!(
        kids(&keyring(&stack, &arn, "AWSPENDING").await),
        kids(&pending)
    );

    for (name, result) in [
        ("setSecret", "nothing_to_set"),
        ("testSecret", "tested"),
        ("finishSecret", "finished"),
    ] {
        let done = step(&stack, &arn, &token, name).await.unwrap();
        assert_eq!(done["result"], result, "{name}: {done}");
    }

    let after = stages(&stack, &arn).await;
    assert_eq!(after[&token], ["AWSCURRENT"]);
    assert_eq!(after[&old_version], ["AWSPREVIOUS"]);
    assert_eq!(
        kids(&keyring(&stack, &arn, "AWSCURRENT").await),
        kids(&pending)
    );
    let finished_again = step(&stack, &arn, &token, "finishSecret").await.unwrap();
    assert_eq!(finished_again["result"], "already_current");
    assert!(
        step(&stack, &arn, &rotation_token(), "testSecret")
            .await
            .is_err(),
        "a step of a version that is not pending fails"
    );
}

#[tokio::test]
async fn the_test_step_refuses_a_pending_keyring_that_would_end_current_sessions() {
    let stack = TestStack::start().await.unwrap();
    let (arn, _) = plain_secret().await;
    let token = rotation_token();
    // A keyring that does not hold the current (legacy) generation, staged by hand.
    stack
        .aws()
        .secrets
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(&token)
        .secret_string(Keyring::generate(chrono::Utc::now()).to_secret_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();

    let tested = step(&stack, &arn, &token, "testSecret").await;

    let error = tested.unwrap_err().to_string();
    assert!(error.contains("not a rotation"), "{error}");
    assert_eq!(
        kids(&keyring(&stack, &arn, "AWSCURRENT").await),
        [LEGACY_KID]
    );
}

#[tokio::test]
async fn a_rotation_ends_no_session_and_no_pending_link_and_new_ones_carry_the_new_kid() {
    let (arn, _) = plain_secret().await;
    let stack = TestStack::builder()
        .env("JWT_SECRET_ARN", &arn)
        .env("KEYRING_REFRESH_SECONDS", "1")
        .start()
        .await
        .unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    assert_eq!(kid(&admin), LEGACY_KID);
    let people = api
        .invite(&admin, &tenant, json!([{"email": unique_email("before")}]))
        .await;
    let before_id = people.user_ids()[0].clone();
    let before_email = people.json["results"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, before_link) = mailed_link(&stack, &before_email, "accept-invite")
        .await
        .unwrap();
    assert!(
        stored_invite_hash(&stack, &before_id)
            .await
            .starts_with("legacy.")
    );

    rotate_keys(stack.gateway(), &arn).await.unwrap();
    let ring = keyring(&stack, &arn, "AWSCURRENT").await;
    let new_kid = ring.signer().kid().to_owned();
    assert_eq!(kids(&ring), [new_kid.clone(), LEGACY_KID.to_owned()]);

    let users = format!("/v1/tenants/{tenant}/users");
    assert_eq!(
        api.get(&users, Some(&admin)).await.status,
        200,
        "a session from before the rotation still works"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = api.admin_token(&stack).await;
    assert_eq!(
        kid(&fresh),
        new_kid,
        "a new session is signed by the new key"
    );
    for _ in 0..4 {
        // Every instance, whether or not it has read the keyring since.
        assert_eq!(api.get(&users, Some(&fresh)).await.status, 200);
        assert_eq!(api.get(&users, Some(&admin)).await.status, 200);
    }
    let after_email = unique_email("after");
    let after = api
        .invite(&fresh, &tenant, json!([{"email": after_email}]))
        .await;
    let after_id = after.user_ids()[0].clone();
    assert!(
        stored_invite_hash(&stack, &after_id)
            .await
            .starts_with(&format!("{new_kid}.")),
        "a new link's hash names the new key"
    );

    // A second rotation keeps the first key too: invitations live for 7 days.
    rotate_keys(stack.gateway(), &arn).await.unwrap();
    assert_eq!(keyring(&stack, &arn, "AWSCURRENT").await.len(), 3);
    let accepted = api.accept(&before_link, PASSWORD).await;
    assert_eq!(
        accepted.status, 200,
        "the invitation from before: {}",
        accepted.text
    );
    let (_, after_link) = mailed_link(&stack, &after_email, "accept-invite")
        .await
        .unwrap();
    assert_eq!(api.accept(&after_link, PASSWORD).await.status, 200);
    assert_eq!(api.get(&users, Some(&admin)).await.status, 200);
}

#[tokio::test]
async fn a_key_generation_kept_past_its_retention_is_dropped_and_signs_nothing_accepted() {
    let (arn, master) = plain_secret().await;
    // Everything lives 2 s and instances read the keyring every second: a replaced generation
    // is kept for 4 s.
    let mut builder = TestStack::builder()
        .env("JWT_SECRET_ARN", &arn)
        .env("KEYRING_REFRESH_SECONDS", "1");
    for ttl in [
        "INVITE_TTL_SECONDS",
        "RESET_TTL_SECONDS",
        "VERIFY_TTL_SECONDS",
        "SESSION_TTL_SECONDS",
    ] {
        builder = builder.env(ttl, "2");
    }
    let stack = builder.start().await.unwrap();
    let api = Api::new(&stack);
    let real = api.admin_token(&stack).await;
    let claims = latchkey::session::verify(&Keys::derive(master.as_bytes()), &real).unwrap();
    // Someone holding a key (leaked, say) signs a session of the admin for ten minutes.
    let forge = |keys: &Keys| {
        latchkey::session::issue(
            keys,
            &claims.sub,
            "admin",
            claims.sv,
            chrono::Utc::now(),
            Duration::from_secs(600),
        )
        .unwrap()
        .0
    };
    let me = format!("/v1/users/{}", claims.sub);
    let by_legacy = forge(&Keys::derive(master.as_bytes()));
    assert_eq!(api.get(&me, Some(&by_legacy)).await.status, 200);

    rotate_keys(stack.gateway(), &arn).await.unwrap();
    let first = keyring(&stack, &arn, "AWSCURRENT").await;
    let by_first = forge(&Keys::fixed(first.clone()));
    assert_eq!(
        api.get(&me, Some(&by_legacy)).await.status,
        200,
        "kept while what it signed may live"
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    rotate_keys(stack.gateway(), &arn).await.unwrap();

    let second = keyring(&stack, &arn, "AWSCURRENT").await;
    assert_eq!(
        kids(&second),
        [
            second.signer().kid().to_owned(),
            first.signer().kid().to_owned()
        ],
        "current and previous only"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.get(&me, Some(&by_legacy))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(
        api.get(&me, Some(&by_first)).await.status,
        200,
        "the previous generation still verifies"
    );
}
