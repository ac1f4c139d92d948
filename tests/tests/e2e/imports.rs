//! The CSV import's first slice: the template download and the preview, which checks every
//! row like the invite route does and writes nothing.

use latchkey_tests::*;
use reqwest::Method;
use serde_json::{Value, json};

const TEMPLATE: &str = "email,role\r\nada@example.com,member\r\n";

async fn preview(api: &Api, token: &str, tenant: &str, content_type: &str, body: Vec<u8>) -> Resp {
    api.send(
        Method::POST,
        &format!("/v1/tenants/{tenant}/imports/preview"),
        Some(token),
        Some(content_type),
        body,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_template_downloads_and_previews_as_all_ok() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);

    let template = api.get("/v1/imports/template.csv", None).await;

    assert_eq!(template.status, 200, "{}", template.text);
    assert_eq!(template.content_type(), "text/csv; charset=utf-8");
    assert_eq!(
        template.headers["content-disposition"],
        "attachment; filename=\"invitations-template.csv\""
    );
    assert_eq!(template.text, TEMPLATE);

    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let resp = preview(
        &api,
        &admin,
        &tenant,
        "text/csv",
        template.text.into_bytes(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json,
        json!({
            "rows": [{"line": 2, "email": "ada@example.com", "role": "member", "status": "ok"}],
            "ok": 1,
            "rejected": 0
        })
    );
}

#[tokio::test]
async fn a_messy_real_world_file_gets_exact_per_row_results_and_changes_nothing() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let existing = unique_email("existing");
    let invited = api
        .invite(&admin, &tenant, json!([{"email": existing}]))
        .await;
    assert_eq!(
        invited.json["results"][0]["status"], "invited",
        "{}",
        invited.text
    );
    let (ada, grace, owner, fresh) = (
        unique_email("ada"),
        unique_email("grace"),
        unique_email("owner"),
        unique_email("fresh"),
    );
    let file = format!(
        "\u{feff}Role,EMAIL,Name\r\n\
         member,{ada},\"Lovelace, Ada\"\r\n\
         \r\n\
         admin ,  {grace_upper}   ,Grace Hopper   \r\n\
         member,{ada_upper},Ada again\r\n\
         member,not-an-email,Nobody\r\n\
         owner,{owner},Linus\r\n\
         member,{existing},\"Already\r\nhere\"\r\n\
         ,\"=HYPERLINK(\"\"http://x\"\")\",Formula\r\n\
         ,{fresh}",
        grace_upper = grace.to_uppercase(),
        ada_upper = ada.to_uppercase(),
    );
    let before = scan_table(&stack).await.len();

    let resp = preview(
        &api,
        &admin,
        &tenant,
        "text/csv; charset=utf-8",
        file.into_bytes(),
    )
    .await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.content_type(), "application/json");
    let rows = resp.json["rows"].as_array().unwrap();
    let summary: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!([
                r["line"],
                r["email"],
                r["role"],
                r["status"],
                r["error"]["code"]
            ])
        })
        .collect();
    assert_eq!(
        summary,
        [
            json!([2, ada, "member", "ok", null]),
            json!([4, grace.to_uppercase(), "admin", "ok", null]),
            json!([
                5,
                ada.to_uppercase(),
                "member",
                "rejected",
                "duplicate_in_request"
            ]),
            json!([6, "not-an-email", "member", "rejected", "invalid_email"]),
            json!([7, owner, "owner", "rejected", "invalid_role"]),
            json!([8, existing, "member", "rejected", "already_exists"]),
            json!([
                10,
                "=HYPERLINK(\"http://x\")",
                null,
                "rejected",
                "invalid_email"
            ]),
            json!([11, fresh, null, "ok", null]),
        ],
        "{}",
        resp.text
    );
    assert_eq!(
        (resp.json["ok"].as_u64(), resp.json["rejected"].as_u64()),
        (Some(3), Some(5))
    );
    for row in rows {
        match row["status"].as_str() {
            Some("ok") => assert!(row.get("error").is_none(), "{row}"),
            _ => assert!(
                row["error"]["detail"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{row}"
            ),
        }
    }
    assert_eq!(
        scan_table(&stack).await.len(),
        before,
        "a preview writes nothing"
    );
    assert!(stack.mail_to(&ada).await.unwrap().is_empty());
}

/// Excel for Mac's older "CSV" format ends lines with a lone CR.
#[tokio::test]
async fn a_file_with_old_mac_line_endings_previews_one_row_per_line() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (ada, grace) = (unique_email("ada"), unique_email("grace"));
    let file = format!("email,role\r{ada},member\r\r{grace},admin\r");

    let resp = preview(&api, &admin, &tenant, "text/csv", file.into_bytes()).await;

    assert_eq!(resp.status, 200, "{}", resp.text);
    let lines: Vec<(Value, Value)> = resp.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].clone(), r["email"].clone()))
        .collect();
    assert_eq!(lines, [(json!(2), json!(ada)), (json!(4), json!(grace))]);
}

#[tokio::test]
async fn file_level_failures_get_their_precise_problem() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let mut too_many_rows = String::from("email,role\n");
    for i in 0..5_001 {
        too_many_rows.push_str(&format!("person{i}@example.com,member\n"));
    }
    let mut too_large = String::from("email,role\n");
    while too_large.len() <= 1024 * 1024 {
        too_large.push_str("someone@example.com,member\n");
    }
    // (case, content type, body, status, code, words of the detail)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no email column",
            "text/csv",
            b"name,role\nAda,member\n".to_vec(),
            400,
            "invalid_csv",
            "no 'email' column",
        ),
        (
            "not UTF-8",
            "text/csv",
            b"email,role\nada@example.com,member\nzo\xeb@example.com,member\n".to_vec(),
            400,
            "invalid_csv",
            "Line 3 is not valid UTF-8",
        ),
        ("empty", "text/csv", Vec::new(), 400, "invalid_csv", "empty"),
        (
            "over 5,000 rows",
            "text/csv",
            too_many_rows.into_bytes(),
            400,
            "invalid_csv",
            "more than 5000 rows",
        ),
        (
            "over 1 MiB",
            "text/csv",
            too_large.into_bytes(),
            413,
            "payload_too_large",
            "1 MiB",
        ),
        (
            "JSON content type",
            "application/json",
            br#"{"email":"ada@example.com"}"#.to_vec(),
            415,
            "unsupported_media_type",
            "text/csv",
        ),
        (
            "Latin-1 charset",
            "text/csv; charset=iso-8859-1",
            TEMPLATE.as_bytes().to_vec(),
            415,
            "unsupported_media_type",
            "UTF-8",
        ),
    ];
    let before = scan_table(&stack).await.len();
    for (name, content_type, body, status, code, detail) in cases {
        let resp = preview(&api, &admin, &tenant, content_type, body).await;
        resp.assert_problem(status, code);
        assert!(
            resp.json["detail"].as_str().unwrap().contains(detail),
            "{name}: {}",
            resp.text
        );
    }
    for content_type in ["application/csv", "text/plain", "TEXT/CSV; charset=UTF-8"] {
        let resp = preview(&api, &admin, &tenant, content_type, TEMPLATE.into()).await;
        assert_eq!(resp.status, 200, "{content_type}: {}", resp.text);
    }
    let no_type = api
        .send(
            Method::POST,
            &format!("/v1/tenants/{tenant}/imports/preview"),
            Some(&admin),
            None,
            TEMPLATE.into(),
        )
        .await
        .unwrap();
    no_type.assert_problem(415, "unsupported_media_type");
    assert_eq!(scan_table(&stack).await.len(), before);
}

#[tokio::test]
async fn only_managers_of_the_tenant_may_preview() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let other = api.create_tenant(&admin).await;
    let (member_email, _) = invite_and_accept(&stack, &api, &admin, &tenant, "member").await;
    let member = api.token(&tenant, &member_email, PASSWORD).await;
    let (other_admin_email, _) = invite_and_accept(&stack, &api, &admin, &other, "admin").await;
    let other_admin = api.token(&other, &other_admin_email, PASSWORD).await;
    let body = || TEMPLATE.as_bytes().to_vec();

    preview(&api, &member, &tenant, "text/csv", body())
        .await
        .assert_problem(403, "forbidden");
    preview(&api, &other_admin, &tenant, "text/csv", body())
        .await
        .assert_problem(404, "not_found");
    preview(&api, &admin, "no-such-tenant", "text/csv", body())
        .await
        .assert_problem(404, "not_found");
    api.send(
        Method::POST,
        &format!("/v1/tenants/{tenant}/imports/preview"),
        None,
        Some("text/csv"),
        body(),
    )
    .await
    .unwrap()
    .assert_problem(401, "unauthorized");
    let own = preview(&api, &other_admin, &other, "text/csv", body()).await;
    assert_eq!(own.status, 200, "{}", own.text);
}
