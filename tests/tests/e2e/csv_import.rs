//! The S3 import end to end: a file PUT to the presigned URL starts `csv-import` through the
//! bucket's notification (moto queues it, the local relay invokes), and every row is invited
//! exactly once, mailed at most once, and reported, whatever is redelivered or crashes.

use std::collections::HashMap;
use std::time::Duration;

use latchkey_local::faults::{Fault, FaultPlan};
use latchkey_tests::*;
use serde_json::{Value, json};

async fn start_import(api: &Api, token: &str, tenant: &str, send_email: bool) -> (String, String) {
    let resp = api
        .post(
            &format!("/v1/tenants/{tenant}/imports"),
            Some(token),
            &json!({"send_email": send_email}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    (
        resp.json["import_id"].as_str().unwrap().to_owned(),
        resp.json["upload_url"].as_str().unwrap().to_owned(),
    )
}

/// What `curl -T file "$upload_url"` does.
async fn upload(url: &str, body: Vec<u8>) {
    let resp = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "upload: {}", resp.status());
}

/// Polls the import until it is completed or failed. The bound only stops a hung import from
/// hanging the suite: it is generous because a loaded 2-core CI machine is slow.
async fn finished(api: &Api, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::time::Instant::now() < deadline {
        let resp = api.get(&format!("/v1/imports/{id}"), Some(token)).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        if ["completed", "failed"].contains(&resp.json["status"].as_str().unwrap()) {
            return resp.json;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("import {id} did not finish within 300 s");
}

async fn report(import: &Value) -> String {
    let url = import["report_url"].as_str().expect("a report URL");
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The report's first column is each data line of a `rows`-row file once, in order.
fn assert_every_line_once_in_order(report: &str, rows: usize) {
    let lines: Vec<u64> = report
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .next()
                .unwrap()
                .trim_matches('"')
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        lines,
        (2..rows as u64 + 2).collect::<Vec<_>>(),
        "every line once, in order"
    );
}

/// The S3 event AWS would deliver for the upload of `key` to the stack's bucket.
fn s3_event(key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "csv-import-Upload",
               "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
               "object": {"key": key, "size": 10, "eTag": "x"}}
    }]})
}

#[tokio::test]
async fn an_uploaded_file_invites_each_row_once_mails_it_and_reports_every_line() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let ada = unique_email("ada");
    let grace = unique_email("grace");
    let old = unique_email("old");
    api.invite(&admin, &tenant, json!([{"email": old}])).await;
    let file = format!(
        "\u{feff}Role , EMAIL,notes\r\n\
         member,  {upper_ada}  ,x\r\n\
         \r\n\
         admin,\"{grace}\",\"a, quoted note\"\r\n\
         member,not-an-email,\r\n\
         member,{ada},dup\r\n\
         member,{old},\r\n\
         owner,{bob},\r\n\
         member,\"=HYPERLINK(\"\"http://evil.test\"\")\",\r\n",
        upper_ada = ada.to_uppercase(),
        bob = unique_email("bob"),
    );
    let (id, url) = start_import(&api, &admin, &tenant, true).await;

    upload(&url, file.into_bytes()).await;
    let import = finished(&api, &admin, &id).await;

    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(
        (
            &import["total"],
            &import["invited"],
            &import["rejected"],
            &import["emails_sent"]
        ),
        (&json!(7), &json!(2), &json!(5), &json!(2))
    );
    let errors: Vec<(u64, &str)> = import["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (5, "invalid_email"),
            (6, "duplicate_in_request"),
            (7, "already_exists"),
            (8, "invalid_role"),
            (9, "invalid_email")
        ]
    );
    let (_, token) = mailed_link(&stack, &ada, "accept-invite").await.unwrap();
    assert_eq!(
        api.accept(&token, "a long enough password").await.status,
        200
    );
    assert_eq!(stack.mail_to(&grace).await.unwrap().len(), 1);
    let report = report(&import).await;
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        "line,email,role,status,code,detail,user_id,email_sent"
    );
    assert_eq!(lines.len(), 8, "{report}");
    assert!(
        lines[1].starts_with(&format!("\"2\",\"{ada}\",\"member\",\"invited\"")),
        "{report}"
    );
    assert!(
        lines[7].starts_with("\"9\",\"'=HYPERLINK("),
        "a formula is reported as text: {report}"
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_imported_fails_with_a_reason_that_says_what_to_fix() {
    let stack = stack_with("IMPORT_MAX_BYTES", "200").await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "not UTF-8",
            b"email\n\xff\xfe@example.test\n".to_vec(),
            "not valid UTF-8",
        ),
        (
            "no email column",
            b"name,role\nada,member\n".to_vec(),
            "no 'email' column",
        ),
        (
            "a workbook",
            b"PK\x03\x04\x14\x00\x06\x00rest of a zip".to_vec(),
            "workbook, not CSV",
        ),
        (
            "too large",
            [b"email\n".as_slice(), &[b'a'; 300]].concat(),
            "at most 200 bytes",
        ),
        ("empty", Vec::new(), "The file is empty"),
    ];

    for (what, file, reason) in cases {
        let (id, url) = start_import(&api, &admin, &tenant, false).await;
        upload(&url, file).await;
        let import = finished(&api, &admin, &id).await;

        assert_eq!(import["status"], "failed", "{what}: {import}");
        let failure = import["failure"].as_str().unwrap();
        assert!(failure.contains(reason), "{what}: {failure}");
    }
}

#[tokio::test]
async fn redelivered_and_concurrent_events_invite_nobody_twice_and_mail_nobody_twice() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let people: Vec<String> = (0..40).map(|i| unique_email(&format!("p{i}"))).collect();
    let file = format!("email\n{}\n", people.join("\n"));
    let (id, url) = start_import(&api, &admin, &tenant, true).await;
    let key = format!("imports/{tenant}/{id}.csv");

    upload(&url, file.into_bytes()).await;
    // S3 delivers at least once: two more copies of the event, while the first runs.
    let (a, b) = tokio::join!(
        stack.invoke("csv-import", s3_event(&key)),
        stack.invoke("csv-import", s3_event(&key))
    );
    let _ = (a, b); // one may find the import busy and fail, to be retried: both are fine
    let import = finished(&api, &admin, &id).await;
    let after = stack.invoke("csv-import", s3_event(&key)).await.unwrap();

    assert_eq!(after, json!(["skipped"]), "a late redelivery does nothing");
    assert_eq!(
        (&import["total"], &import["invited"]),
        (&json!(40), &json!(40)),
        "{import}"
    );
    let again = finished(&api, &admin, &id).await;
    assert_eq!(again["invited"], 40);
    let mail = stack.all_mail().await.unwrap();
    for person in &people {
        assert_eq!(
            mail.iter().filter(|m| m.is_for(person)).count(),
            1,
            "{person}"
        );
    }
    assert_each_announced_once(&stack, &tenant, &people, &id, true).await;
}

/// Each of `people` has exactly one `Invitation Created` event, from import `id`, and the
/// tenant has no other.
async fn assert_each_announced_once(
    stack: &TestStack,
    tenant: &str,
    people: &[String],
    id: &str,
    email_sent: bool,
) {
    let created: Vec<_> = events_of(stack, tenant, people.len() + 1)
        .await
        .into_iter()
        .filter(|e| e["detail-type"] == "Invitation Created")
        .collect();
    for person in people {
        let about: Vec<_> = created
            .iter()
            .filter(|e| e["detail"]["user"]["email"] == person.as_str())
            .collect();
        assert_eq!(about.len(), 1, "one Invitation Created for {person}");
        assert_eq!(about[0]["detail"]["data"]["import_id"], id);
        assert_eq!(about[0]["detail"]["data"]["email_sent"], email_sent);
    }
    assert_eq!(created.len(), people.len(), "no event twice");
}

#[tokio::test]
async fn a_second_file_reports_people_the_first_one_invited_as_already_existing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (a, b, c) = (unique_email("a"), unique_email("b"), unique_email("c"));
    let (first, url) = start_import(&api, &admin, &tenant, false).await;
    upload(&url, format!("email\n{a}\n{b}\n").into_bytes()).await;
    finished(&api, &admin, &first).await;

    let (second, url) = start_import(&api, &admin, &tenant, false).await;
    upload(&url, format!("email\n{b}\n{c}\n").into_bytes()).await;
    let import = finished(&api, &admin, &second).await;

    assert_eq!(
        (&import["invited"], &import["rejected"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(import["errors"][0]["code"], "already_exists");
    assert_eq!(import["errors"][0]["line"], 2);
}

#[tokio::test]
async fn a_roster_uploaded_again_gives_back_the_mail_of_people_already_invited() {
    let stack = stack_with_mail_budget(3).await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let old = unique_email("old");
    assert_eq!(
        api.invite(&admin, &tenant, json!([{"email": old}]))
            .await
            .status,
        200
    );
    // Each upload reserves a mail for `old`, whose row is then refused as already existing.
    for _ in 0..2 {
        let (id, url) = start_import(&api, &admin, &tenant, true).await;
        upload(&url, format!("email\n{old}\n").into_bytes()).await;
        let import = finished(&api, &admin, &id).await;
        assert_eq!(import["emails_sent"], 0, "{import}");
    }
    let (ada, grace) = (unique_email("ada"), unique_email("grace"));

    let (id, url) = start_import(&api, &admin, &tenant, true).await;
    upload(&url, format!("email\n{ada}\n{grace}\n").into_bytes()).await;
    let import = finished(&api, &admin, &id).await;

    assert_eq!(
        (&import["invited"], &import["emails_sent"]),
        (&json!(2), &json!(2)),
        "the budget holds the invitation and these two: {import}"
    );
    assert_eq!(stack.mail_to(&ada).await.unwrap().len(), 1);
    assert_eq!(stack.mail_to(&grace).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_user_an_import_invited_names_the_import_and_the_admin_who_started_it() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (by_route, by_file) = (unique_email("route"), unique_email("file"));
    api.invite(&admin, &tenant, json!([{"email": by_route}]))
        .await;
    let (id, url) = start_import(&api, &admin, &tenant, false).await;

    upload(&url, format!("email\n{by_file}\n").into_bytes()).await;
    let import = finished(&api, &admin, &id).await;

    let me = api
        .get(
            &format!(
                "/v1/tenants/admin/users?email_prefix={}",
                stack.admin_email()
            ),
            Some(&admin),
        )
        .await;
    let me = &me.json["users"][0];
    assert_eq!(
        (&me["invited_by"], &me["import_id"]),
        (&Value::Null, &Value::Null),
        "the bootstrap admin was invited by nobody: {me}"
    );
    assert_eq!(import["created_by"], me["id"]);
    let users = api
        .get(&format!("/v1/tenants/{tenant}/users"), Some(&admin))
        .await;
    let provenance: HashMap<&str, (&Value, &Value)> = users.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let email = u["email"].as_str().unwrap();
            (email, (&u["invited_by"]["id"], &u["import_id"]))
        })
        .collect();
    assert_eq!(provenance[by_file.as_str()], (&me["id"], &json!(id)));
    assert_eq!(provenance[by_route.as_str()], (&me["id"], &Value::Null));
}

#[tokio::test]
async fn the_people_of_one_import_are_listed_apart_and_by_status() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (a, b, c, other) = (
        unique_email("a"),
        unique_email("b"),
        unique_email("c"),
        unique_email("other"),
    );
    api.invite(&admin, &tenant, json!([{"email": unique_email("route")}]))
        .await;
    let (first, url) = start_import(&api, &admin, &tenant, true).await;
    upload(&url, format!("email\n{a}\n{b}\n{c}\n").into_bytes()).await;
    finished(&api, &admin, &first).await;
    let (second, url) = start_import(&api, &admin, &tenant, false).await;
    upload(&url, format!("email\n{other}\n").into_bytes()).await;
    finished(&api, &admin, &second).await;
    let (_, token) = mailed_link(&stack, &b, "accept-invite").await.unwrap();
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    let listed = |query: String| {
        let (api, admin, tenant) = (&api, &admin, &tenant);
        async move {
            let resp = api
                .get(&format!("/v1/tenants/{tenant}/users?{query}"), Some(admin))
                .await;
            assert_eq!(resp.status, 200, "{}", resp.text);
            let mut emails: Vec<String> = resp.json["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned())
                .collect();
            emails.sort();
            emails
        }
    };

    let everyone_of_first = listed(format!("import_id={first}")).await;
    let waiting_of_first = listed(format!("import_id={first}&status=invited")).await;
    let bad = api
        .get(
            &format!("/v1/tenants/{tenant}/users?import_id=not-an-import"),
            Some(&admin),
        )
        .await;

    let mut expected = vec![a.clone(), b, c.clone()];
    expected.sort();
    assert_eq!(everyone_of_first, expected);
    let mut waiting = vec![a, c];
    waiting.sort();
    assert_eq!(waiting_of_first, waiting);
    bad.assert_problem(400, "validation_failed");
}

/// Imports `file` on a stack whose every invocation pauses after one batch or one report part
/// (its reserve is longer than the timeout); the finished import, and the stack that keeps
/// its report readable.
async fn import_pausing_after_every_step(file: String) -> (TestStack, Value) {
    let stack = stack_with("IMPORT_RESERVE_SECONDS", "100000").await;
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (id, url) = start_import(&api, &admin, &tenant, false).await;
    upload(&url, file.into_bytes()).await;
    let import = finished(&api, &admin, &id).await;
    assert_eq!(import["status"], "completed", "{import}");
    (stack, import)
}

#[tokio::test]
async fn an_import_that_outlasts_its_invocation_continues_in_the_next_without_gaps() {
    let rows = 1_203;
    let file: String = std::iter::once("email\n".to_owned())
        .chain((0..rows).map(|i| format!("c{i}-{}\n", unique_email("x"))))
        .collect();

    let (_stack, import) = import_pausing_after_every_step(file).await;

    assert_eq!(
        (&import["total"], &import["invited"]),
        (&json!(rows), &json!(rows))
    );
    assert_every_line_once_in_order(&report(&import).await, rows);
}

/// A report too long for what is left of the invocation that settled the last row: the
/// import records each part, hands on to its continuation, and the report reads back whole.
#[tokio::test]
async fn a_report_that_outlasts_its_invocation_is_finished_by_the_next_without_gaps() {
    let (_stack, import) = import_pausing_after_every_step(two_parts_of_rejected_rows()).await;

    assert_two_part_report_of_every_line(&import).await;
}

/// Rejected rows with the longest cells the report keeps: about 600 bytes a line, so the
/// report of these 10,000 is more than one 5 MiB part and less than two.
fn two_parts_of_rejected_rows() -> String {
    std::iter::once("email,role\n".to_owned())
        .chain(
            (0..TWO_PARTS_ROWS)
                .map(|i| format!("{i:05}{}, {i:05}{}\n", "e".repeat(300), "r".repeat(300))),
        )
        .collect()
}

const TWO_PARTS_ROWS: usize = 10_000;

async fn assert_two_part_report_of_every_line(import: &Value) {
    assert_eq!(
        (&import["total"], &import["rejected"]),
        (&json!(TWO_PARTS_ROWS), &json!(TWO_PARTS_ROWS))
    );
    let resp = reqwest::get(import["report_url"].as_str().unwrap())
        .await
        .unwrap();
    let etag = resp.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert!(etag.ends_with("-2"), "uploaded in two parts: ETag {etag}");
    assert_every_line_once_in_order(&resp.text().await.unwrap(), TWO_PARTS_ROWS);
}

/// The multipart upload of a half-written report can vanish between invocations (aborted by
/// hand, or by the bucket's lifecycle rule after two days): the import does not retry the
/// dead upload forever, it writes the report again from its first line.
#[tokio::test]
async fn a_report_whose_upload_was_aborted_between_invocations_is_written_again_whole() {
    let (stack, proxy) = TestStack::builder()
        .env("IMPORT_RESERVE_SECONDS", "100000")
        .start_with_fault_proxy()
        .await
        .unwrap();
    // Reading row markers back (a Query per 1,000 lines) is slowed, so the continuation that
    // finishes the report is still reading when the first part's upload is aborted below.
    proxy.set(FaultPlan::new().always("Query", Fault::Latency(Duration::from_millis(500))));
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (id, url) = start_import(&api, &admin, &tenant, false).await;

    upload(&url, two_parts_of_rejected_rows().into_bytes()).await;
    // Once the import has recorded its first report part, abort that part's upload.
    let aborted = abort_report_upload_once_a_part_is_recorded(&stack, &id).await;
    let import = finished(&api, &admin, &id).await;

    assert!(aborted, "the report's upload was aborted midway");
    assert_eq!(import["status"], "completed", "{import}");
    assert_two_part_report_of_every_line(&import).await;
}

/// Waits until import `id` has recorded report progress (a part is in), then aborts every
/// unfinished upload under `reports/`; whether there was one to abort.
async fn abort_report_upload_once_a_part_is_recorded(stack: &TestStack, id: &str) -> bool {
    use aws_sdk_dynamodb::types::AttributeValue;
    let dynamodb = stack.dynamodb_client();
    let s3 = &stack.aws().s3;
    let bucket = stack.upload_bucket();
    for _ in 0..30_000 {
        let item = dynamodb
            .get_item()
            .table_name(stack.table_name())
            .key("PK", AttributeValue::S(format!("IMPORT#{id}")))
            .key("SK", AttributeValue::S("IMPORT".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if item
            .item()
            .is_some_and(|i| i.contains_key("report_progress"))
        {
            let listed = s3
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix("reports/")
                .send()
                .await
                .unwrap();
            for upload in listed.uploads() {
                s3.abort_multipart_upload()
                    .bucket(bucket)
                    .key(upload.key().unwrap())
                    .upload_id(upload.upload_id().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            return !listed.uploads().is_empty();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn an_import_killed_midway_and_rerun_loses_no_row_and_mails_no_row_twice() {
    let stack = TestStack::builder()
        .env("IMPORT_LEASE_SECONDS", "1")
        .env("INVITE_MAIL_PER_HOUR", "100000")
        .start()
        .await
        .unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let rows = 1_500;
    let people: Vec<String> = (0..rows)
        .map(|i| format!("k{i}-{}", unique_email("y")))
        .collect();
    let file = format!("email\n{}\n", people.join("\n"));
    let (id, url) = start_import(&api, &admin, &tenant, true).await;
    let key = format!("imports/{tenant}/{id}.csv");

    upload(&url, file.into_bytes()).await;
    // Crash once some rows are settled: a row marker per settled row.
    let dynamodb = stack.dynamodb_client();
    loop {
        let settled = dynamodb
            .query()
            .table_name(stack.table_name())
            .key_condition_expression("PK = :pk AND begins_with(SK, :row)")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("IMPORT#{id}")),
            )
            .expression_attribute_values(
                ":row",
                aws_sdk_dynamodb::types::AttributeValue::S("ROW#".into()),
            )
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .unwrap()
            .count;
        if settled >= 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.gateway().crash("csv-import").unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the dead worker's lease ends
    let _ = stack.invoke("csv-import", s3_event(&key)).await; // the rerun (or the relay's retry)
    let import = finished(&api, &admin, &id).await;

    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(
        (&import["total"], &import["invited"], &import["rejected"]),
        (&json!(rows), &json!(rows), &json!(0))
    );
    let mail = stack.all_mail().await.unwrap();
    let mut per_person: HashMap<&str, usize> = HashMap::new();
    for person in &people {
        per_person.insert(person, mail.iter().filter(|m| m.is_for(person)).count());
    }
    assert!(
        per_person.values().all(|&n| n <= 1),
        "nobody is mailed twice"
    );
    let unconfirmed = report(&import).await.matches("\"unconfirmed\"").count();
    let mailed = per_person.values().filter(|&&n| n == 1).count();
    assert!(
        mailed + unconfirmed >= rows && mailed >= rows - unconfirmed,
        "every row is mailed, or reported as unconfirmed: {mailed} mailed, {unconfirmed} unconfirmed"
    );
    assert_eq!(
        import["emails_sent"].as_u64().unwrap() as usize + unconfirmed,
        rows
    );
}

/// A stack (no bootstrap admin), a fresh bucket on moto's S3, and the report writer over it:
/// what the writer-level tests below exercise directly, without an import around it.
#[tokio::test]
async fn an_import_killed_before_announcing_a_batch_announces_it_on_the_rerun() {
    let (stack, events) = TestStack::builder()
        .env("IMPORT_LEASE_SECONDS", "1")
        .start_with_eventbridge_fault_proxy()
        .await
        .unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let people: Vec<String> = (0..10).map(|i| unique_email(&format!("e{i}"))).collect();
    let (id, url) = start_import(&api, &admin, &tenant, false).await;
    let key = format!("imports/{tenant}/{id}.csv");
    // EventBridge holds the batch's announcement, then drops it: the crash comes while the
    // rows are stored and their events are not.
    events.set(
        FaultPlan::new()
            .always("PutEvents", Fault::Latency(Duration::from_secs(60)))
            .always("PutEvents", Fault::Drop),
    );

    upload(&url, format!("email\n{}\n", people.join("\n")).into_bytes()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while events.count("PutEvents") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch was never announced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.gateway().crash("csv-import").unwrap();
    events.clear();
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the dead worker's lease ends
    let _ = stack.invoke("csv-import", s3_event(&key)).await; // the rerun (or the relay's retry)
    let import = finished(&api, &admin, &id).await;

    assert_eq!(
        (&import["status"], &import["invited"]),
        (&json!("completed"), &json!(10)),
        "{import}"
    );
    assert_each_announced_once(&stack, &tenant, &people, &id, false).await;
}

async fn report_writer() -> (TestStack, String, latchkey::uploads::Uploads) {
    let stack = TestStack::builder().bootstrap(false).start().await.unwrap();
    let bucket = unique("reports");
    stack.aws().ensure_bucket(&bucket).await.unwrap();
    let uploads = latchkey::uploads::Uploads::with_client(stack.aws().s3.clone(), &bucket);
    (stack, bucket, uploads)
}

/// A writer taken up from a recorded state whose upload was aborted says so, rather than
/// failing like any other S3 error: the import starts its report again on that error only.
#[tokio::test]
async fn a_resumed_report_whose_upload_was_aborted_says_the_upload_is_gone() {
    let (stack, bucket, uploads) = report_writer().await;
    let mut report = uploads.start_report("reports/t/gone.csv");
    report.write(&vec![b'x'; latchkey::uploads::MIN_PART_BYTES]);
    let state = report.send_part().await.unwrap().clone();
    stack
        .aws()
        .s3
        .abort_multipart_upload()
        .bucket(&bucket)
        .key("reports/t/gone.csv")
        .upload_id(&state.upload_id)
        .send()
        .await
        .unwrap();

    let mut resumed = uploads.resume_report("reports/t/gone.csv", Some(state));
    resumed.write(b"the last lines\n");
    let finished = resumed.finish().await;

    assert!(
        matches!(
            finished,
            Err(latchkey::uploads::UploadError::UploadGone { .. })
        ),
        "{finished:?}"
    );
}

/// A report longer than S3's minimum part goes up as a multipart upload in parts of bounded
/// size, can be taken up from its recorded state by another writer (another invocation), and
/// reads back byte for byte (a 100,000-row import's report is about that long).
#[tokio::test]
async fn a_report_longer_than_one_part_is_uploaded_in_parts_resumed_and_reads_back_whole() {
    let (stack, bucket, uploads) = report_writer().await;
    // 12 MiB in chunks of about what 1,000 report lines take, each chunk distinct.
    let chunks: Vec<Vec<u8>> = (0..128u32)
        .map(|i| format!("{i:08}").repeat(12 * 1024).into_bytes())
        .collect();

    let mut report = uploads.start_report("reports/t/long.csv");
    let mut resumed = false;
    for chunk in &chunks {
        if report.part_ready() {
            let state = report.send_part().await.unwrap().clone();
            if !resumed {
                // The first writer's process ends here; the next one has only the state.
                drop(report);
                report = uploads.resume_report("reports/t/long.csv", Some(state));
                resumed = true;
            }
        }
        report.write(chunk);
    }
    report.finish().await.unwrap();
    assert!(resumed, "the report was long enough to resume");

    let object = stack
        .aws()
        .s3
        .get_object()
        .bucket(&bucket)
        .key("reports/t/long.csv")
        .send()
        .await
        .unwrap();
    let etag = object
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    let parts: usize = etag
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1);
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), chunks.iter().map(Vec::len).sum::<usize>());
    assert!(
        body.as_ref() == chunks.concat().as_slice(),
        "the parts are in order"
    );
    assert!(
        (2..=3).contains(&parts),
        "12 MiB in parts of 5 to 10 MiB, ETag {etag}"
    );

    // The mailbox reads moto's state dump, which moto itself fails after a multipart
    // upload; local/moto_server.py mends that.
    stack
        .all_mail()
        .await
        .expect("the mailbox still works after a multipart report");
}
