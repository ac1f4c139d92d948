//! Per-tenant branding: set when the tenant is created, shown in its listing, and used by the
//! mail its users get (display name, sender name, accent colour), with no tracking.

use latchkey_tests::*;
use serde_json::json;

#[tokio::test]
async fn a_branded_tenants_invitation_carries_its_name_sender_and_colour() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    let subdomain = unique("brand");
    let created = api
        .post(
            "/v1/tenants",
            Some(&admin),
            &json!({
                "name": "Acme Corp",
                "subdomain": subdomain,
                "branding": {
                    "display_name": "Acme Cloud",
                    "sender_name": "Acme Support",
                    "accent_color": "#FF8800"
                }
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json["branding"],
        json!({"display_name": "Acme Cloud", "sender_name": "Acme Support", "accent_color": "#ff8800"})
    );
    let email = unique_email("branded");

    api.invite(&admin, &subdomain, json!([{"email": email}]))
        .await;

    let mails = stack.mail_to(&email).await.unwrap();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject, "You're invited to Acme Cloud");
    assert!(
        mail.from.starts_with("\"Acme Support\" <"),
        "from: {}",
        mail.from
    );
    assert!(mail.html.contains("background:#ff8800"), "{}", mail.html);
    assert!(mail.html.contains("Acme Cloud") && !mail.html.contains("Acme Corp"));
    assert!(!mail.html.contains("<img"), "no tracking pixel");
    let listed = api.get("/v1/tenants", Some(&admin)).await;
    let tenant = listed.json["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == subdomain.as_str())
        .unwrap()
        .clone();
    assert_eq!(tenant["branding"]["accent_color"], "#ff8800");
}

#[tokio::test]
async fn an_unbranded_tenant_mails_with_its_name_and_the_bare_sender() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (_, tenant, email, _) = tenant_with_invitee(&stack, &api).await;

    let mail = stack.mail_to(&email).await.unwrap().remove(0);

    assert_eq!(mail.subject, format!("You're invited to Tenant {tenant}"));
    assert!(
        !mail.from.contains('"') && !mail.from.contains('<'),
        "{}",
        mail.from
    );
    assert!(mail.html.contains("background:#2657d9"));
}

#[tokio::test]
async fn branding_that_could_break_a_header_or_the_html_is_refused() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let admin = api.admin_token(&stack).await;
    for branding in [
        json!({"accent_color": "red"}),
        json!({"accent_color": "#ff8800\"><script>"}),
        json!({"sender_name": "Eve\r\nBcc: victim@example.com"}),
        json!({"sender_name": "\"Eve\" <eve@evil.test>"}),
        json!({"display_name": ""}),
        json!({"logo_url": "https://tracker.example/pixel.gif"}),
    ] {
        let resp = api
            .post(
                "/v1/tenants",
                Some(&admin),
                &json!({"name": "Acme", "subdomain": unique("bad"), "branding": branding}),
            )
            .await;
        resp.assert_problem(400, "validation_failed");
    }
}
