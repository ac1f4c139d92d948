//! The emulators, the setup steps, the mailbox and the test harness, on real DynamoDB Local
//! and moto started on free ports (so this runs beside `dev` and `test-env`). Fails when the
//! emulators are not installed (scripts/install.sh installs them).

mod common;

use aws_sdk_dynamodb::types::{KeyType, ProjectionType, TimeToLiveStatus};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use common::{BinDir, fixture, logs};
use latchkey_local::emulators::{Emulators, free_port, installed};
use latchkey_local::mailbox::SentMail;
use latchkey_local::paths::Paths;
use latchkey_local::setup::Aws;
use latchkey_local::template::Template;
use latchkey_local::testing::TestStack;
use serde_json::Value;

#[tokio::test]
async fn emulators_setup_mailbox_and_test_stack() {
    logs();
    let paths = Paths::discover(None).expect("workspace root");
    // A missing tool fails the test: a skip would report success for what never ran.
    assert!(
        installed(&paths),
        "DynamoDB Local, moto or java is missing: run scripts/install.sh (make test does)"
    );
    let emulators = Emulators::start(
        &paths,
        free_port().expect("port"),
        free_port().expect("port"),
    )
    .await
    .expect("emulators start");
    let endpoints = emulators.endpoints();
    let aws = Aws::local(&endpoints).await;

    // The table, from the template's definition; twice, since setup is idempotent.
    let template = Template::load(&fixture("template.yaml")).expect("template");
    let spec = template.table.as_ref().expect("table");
    for _ in 0..2 {
        aws.create_table("setup-check", spec)
            .await
            .expect("create table");
    }
    let table = aws
        .dynamodb
        .describe_table()
        .table_name("setup-check")
        .send()
        .await
        .expect("describe");
    let table = table.table().expect("table");
    let keys: Vec<(&str, KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(keys, [("PK", KeyType::Hash), ("SK", KeyType::Range)]);
    let index = &table.global_secondary_indexes()[0];
    assert_eq!(index.index_name(), Some("by-gsi1"));
    let projection = index.projection().expect("projection");
    assert_eq!(
        (
            projection.projection_type(),
            projection.non_key_attributes()
        ),
        (Some(&ProjectionType::Include), &["email".to_owned()][..])
    );
    let ttl = aws
        .dynamodb
        .describe_time_to_live()
        .table_name("setup-check")
        .send()
        .await
        .expect("ttl");
    let ttl = ttl.time_to_live_description().expect("ttl description");
    assert_eq!(
        (ttl.attribute_name(), ttl.time_to_live_status()),
        (Some("ttl"), Some(&TimeToLiveStatus::Enabled))
    );

    for _ in 0..2 {
        aws.ensure_bucket("setup-bucket").await.expect("bucket");
        aws.ensure_sender_identity("sender@setup.test")
            .await
            .expect("identity");
    }
    let arn = aws.ensure_secret("setup/secret").await.expect("secret");
    assert_eq!(
        aws.ensure_secret("setup/secret")
            .await
            .expect("secret again"),
        arn
    );
    let value = aws
        .secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("value");
    assert_eq!(
        value.secret_string().map(str::len),
        Some(88),
        "64 bytes, base64"
    );

    // A stack for one test, on these emulators, with the fixture's functions.
    let bins = BinDir::all();
    let stack = TestStack::builder()
        .endpoints(endpoints.clone())
        .template(fixture("template.yaml"))
        .bin_dir(&bins.0)
        .env("ECHO_EXTRA", "from-builder")
        .instances(1)
        .start()
        .await
        .expect("stack starts");
    assert!(stack.table_name().starts_with("t-"));
    stack
        .dynamodb_client()
        .describe_table()
        .table_name(stack.table_name())
        .send()
        .await
        .expect("its table exists");
    assert_eq!(
        (stack.admin_email(), stack.admin_password()),
        ("admin@latchkey.test", "correct-horse-battery-staple")
    );
    assert_eq!(stack.public_base_url(), stack.url());
    let answer: Value = reqwest::get(format!("{}/v1/users/x", stack.url()))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["env"]["ECHO_EXTRA"], "from-builder");
    assert_eq!(answer["env"]["PUBLIC_BASE_URL"], stack.url());

    // Mail sent through SES v2 (as the functions send it) shows up in the mailbox.
    let to = format!("someone-{:08x}@mail.test", rand::random::<u32>());
    let html = r#"<p>Welcome! <a href="http://127.0.0.1:9/accept-invite#token=abc">Accept</a></p>"#;
    let content = |text: &str| Content::builder().data(text).build().expect("content");
    let message = Message::builder()
        .subject(content("Your invitation"))
        .body(
            Body::builder()
                .html(content(html))
                .text(content(
                    "Welcome! http://127.0.0.1:9/accept-invite#token=abc",
                ))
                .build(),
        )
        .build();
    stack
        .aws()
        .sesv2
        .send_email()
        .from_email_address("no-reply@latchkey.test")
        .destination(Destination::builder().to_addresses(&to).build())
        .content(EmailContent::builder().simple(message).build())
        .send()
        .await
        .expect("send mail");
    let mails = stack.mail_to(&to).await.expect("mail");
    assert_eq!(mails.len(), 1);
    assert_eq!(
        (
            mails[0].subject.as_str(),
            mails[0].from.as_str(),
            mails[0].html.as_str()
        ),
        ("Your invitation", "no-reply@latchkey.test", html)
    );
    assert_eq!(
        mails[0].links(),
        ["http://127.0.0.1:9/accept-invite#token=abc"]
    );
    let listed: Vec<SentMail> = reqwest::get(format!("{}/_local/mail.json", stack.url()))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(listed.iter().any(|m| m.is_for(&to)));
    let page = reqwest::get(format!("{}/_local/mail", stack.url()))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("Your invitation")
            && page.contains(r#"<a href="http://127.0.0.1:9/accept-invite#token=abc""#),
        "{page}"
    );

    // An overridden sender is not verified: moto rejects mail from it.
    let unverified = TestStack::builder()
        .endpoints(endpoints.clone())
        .template(fixture("template.yaml"))
        .bin_dir(&bins.0)
        .env("SENDER_EMAIL", "unverified@nowhere.example.com")
        .instances(1)
        .bootstrap(false)
        .start()
        .await
        .expect("stack starts");
    let identities = unverified
        .aws()
        .sesv2
        .list_email_identities()
        .send()
        .await
        .expect("identities");
    assert!(
        identities
            .email_identities()
            .iter()
            .all(|i| i.identity_name() != Some("unverified@nowhere.example.com"))
    );

    let table = stack.table_name().to_owned();
    stack.shutdown().await.expect("shutdown");
    assert!(
        aws.dynamodb
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .is_err(),
        "its table was deleted"
    );
    unverified.shutdown().await.expect("shutdown");
    emulators.stop().await;
}
