//! Issue 29 §2: links and sessions die with the account they were issued for. Any change to
//! a user's role, address or password ends every link (invitation, reset, verification,
//! email change) and every session issued for that user before it. Links are pulled out of
//! the mail (or the access-link answer) and followed, as their holder would.

use latchkey_tests::*;
use serde_json::json;

const OTHER_PASSWORD: &str = "a different passphrase altogether";

/// The kinds of link a person can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Invitation,
    Reset,
    Verification,
    EmailChange,
}

const ALL_LINKS: [Link; 4] = [
    Link::Invitation,
    Link::Reset,
    Link::Verification,
    Link::EmailChange,
];

/// The changes to an account that end what was issued for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Role,
    Address,
    Password,
}

/// Someone in the tenant holding a link of one kind.
struct Holder {
    link: Link,
    id: String,
    email: String,
    token: String,
}

/// Someone invited, who joined through a copied link and so has not proved the mailbox.
async fn unverified_user(api: &Api, admin: &str, tenant: &str) -> (String, String) {
    let email = unique_email("unverified");
    let invited = api
        .invite(admin, tenant, json!([{"email": email, "role": "member"}]))
        .await;
    let id = invited.user_ids()[0].clone();
    let copied = api.access_link(admin, &id).await;
    let (_, token) = link_in(copied.json["url"].as_str().unwrap(), "accept-invite").unwrap();
    assert_eq!(api.accept(&token, PASSWORD).await.status, 200);
    (email, id)
}

/// A person in `tenant` holding a fresh link of `kind`, as mailed to them.
async fn holder(stack: &TestStack, api: &Api, admin: &str, tenant: &str, link: Link) -> Holder {
    let (email, id) = match link {
        Link::Invitation => {
            let email = unique_email("invitee");
            let invited = api
                .invite(admin, tenant, json!([{"email": email, "role": "member"}]))
                .await;
            (email, invited.user_ids()[0].clone())
        }
        Link::Verification => unverified_user(api, admin, tenant).await,
        Link::Reset | Link::EmailChange => {
            invite_and_accept(stack, api, admin, tenant, "member").await
        }
    };
    let token = issue(stack, api, admin, link, &id, &email).await;
    Holder {
        link,
        id,
        email,
        token,
    }
}

/// Has an admin issue a link of `kind` for the user, and returns it from the mail.
async fn issue(
    stack: &TestStack,
    api: &Api,
    admin: &str,
    link: Link,
    id: &str,
    email: &str,
) -> String {
    let (sent, to, page) = match link {
        Link::Invitation => (
            api.resend(admin, id).await,
            email.to_owned(),
            "accept-invite",
        ),
        Link::Reset => (
            api.admin_reset(admin, id).await,
            email.to_owned(),
            "reset-password",
        ),
        Link::Verification => (
            api.post(
                &format!("/v1/users/{id}/resend-verification"),
                Some(admin),
                &json!({}),
            )
            .await,
            email.to_owned(),
            "verify-email",
        ),
        Link::EmailChange => {
            let new = unique_email("moving");
            (api.email_change(admin, id, &new).await, new, "verify-email")
        }
    };
    assert!(
        [200, 202].contains(&sent.status),
        "issuing {link:?}: {}",
        sent.text
    );
    mailed_link(stack, &to, page).await.unwrap().1
}

/// Follows a link as its holder would.
async fn follow(api: &Api, link: Link, token: &str) -> Resp {
    match link {
        Link::Invitation => api.accept(token, OTHER_PASSWORD).await,
        Link::Reset => api.reset_password(token, OTHER_PASSWORD).await,
        Link::Verification | Link::EmailChange => api.verify_email(token).await,
    }
}

/// Makes `change` to the account of `id` (currently `role`, at `email`), as admins and
/// owners do it, and checks that it was made.
async fn change(
    stack: &TestStack,
    api: &Api,
    admin: &str,
    what: Change,
    id: &str,
    email: &str,
    role: &str,
) {
    match what {
        Change::Role => {
            let to = if role == "member" { "admin" } else { "member" };
            let changed = api.patch_role(admin, id, to).await;
            assert_eq!(changed.status, 200, "role change: {}", changed.text);
        }
        Change::Address => {
            let new = unique_email("moved");
            let asked = api.email_change(admin, id, &new).await;
            assert_eq!(asked.status, 202, "{}", asked.text);
            let (_, token) = mailed_link(stack, &new, "verify-email").await.unwrap();
            let moved = api.verify_email(&token).await;
            assert_eq!(moved.json["kind"], "email_changed", "{}", moved.text);
        }
        Change::Password => {
            let sent = api.admin_reset(admin, id).await;
            assert_eq!(sent.status, 202, "{}", sent.text);
            let (_, token) = mailed_link(stack, email, "reset-password").await.unwrap();
            let reset = api
                .reset_password(&token, "the owner's new passphrase")
                .await;
            assert_eq!(reset.status, 200, "password change: {}", reset.text);
        }
    }
}

/// The links a change applies to: an address or a password belongs to active users only, and
/// a change does not compete with the link that makes it.
fn links_ended_by(what: Change) -> Vec<Link> {
    ALL_LINKS
        .into_iter()
        .filter(|link| match what {
            Change::Role => true,
            Change::Address => ![Link::Invitation, Link::EmailChange].contains(link),
            Change::Password => ![Link::Invitation, Link::Reset].contains(link),
        })
        .collect()
}

/// For each kind of link: someone holds one, their account changes, and the link is dead
/// (`token_invalid`). A session of someone whose account changes is dead too (401).
async fn a_change_ends_what_was_issued_before_it(
    what: Change,
) -> (TestStack, Api, String, String, Vec<Holder>) {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let mut holders = Vec::new();
    for link in links_ended_by(what) {
        holders.push(holder(&stack, &api, &admin, &tenant, link).await);
    }
    let (signed_in, signed_in_id) = invite_and_accept(&stack, &api, &admin, &tenant, "admin").await;
    let session = api.token(&tenant, &signed_in, PASSWORD).await;
    let own = format!("/v1/users/{signed_in_id}");
    assert_eq!(
        api.get(&own, Some(&session)).await.status,
        200,
        "the session works"
    );

    for h in &holders {
        change(&stack, &api, &admin, what, &h.id, &h.email, "member").await;
    }
    change(
        &stack,
        &api,
        &admin,
        what,
        &signed_in_id,
        &signed_in,
        "admin",
    )
    .await;

    for h in &holders {
        let followed = follow(&api, h.link, &h.token).await;
        assert_eq!(
            (followed.status, followed.code()),
            (400, "token_invalid"),
            "{:?} link after a {what:?} change: {}",
            h.link,
            followed.text
        );
    }
    api.get(&own, Some(&session))
        .await
        .assert_problem(401, "unauthorized");
    (stack, api, admin, tenant, holders)
}

#[tokio::test]
async fn a_role_change_ends_every_link_and_session_issued_before_it_and_new_ones_work() {
    let (stack, api, admin, _, holders) =
        a_change_ends_what_was_issued_before_it(Change::Role).await;

    for h in &holders {
        let fresh = issue(&stack, &api, &admin, h.link, &h.id, &h.email).await;
        let followed = follow(&api, h.link, &fresh).await;
        assert_eq!(
            followed.status, 200,
            "a {:?} link issued after the change: {}",
            h.link, followed.text
        );
    }
}

#[tokio::test]
async fn an_address_change_ends_every_link_and_session_issued_before_it() {
    a_change_ends_what_was_issued_before_it(Change::Address).await;
}

#[tokio::test]
async fn a_password_change_ends_every_link_and_session_issued_before_it() {
    a_change_ends_what_was_issued_before_it(Change::Password).await;
}

#[tokio::test]
async fn an_operator_admin_cannot_redeem_a_copied_invitation_once_a_team_admin_promotes_its_user() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let team_admin = api.admin_token(&stack).await;
    let (operator, _) = invite_and_accept(&stack, &api, &team_admin, "admin", "admin").await;
    let operator = api.token("admin", &operator, PASSWORD).await;
    let invitee = unique_email("promoted");
    let invited = api
        .invite(
            &operator,
            "admin",
            json!([{"email": invitee, "role": "member"}]),
        )
        .await;
    let id = invited.user_ids()[0].clone();
    let copied = api.access_link(&operator, &id).await;
    let (_, token) = link_in(copied.json["url"].as_str().unwrap(), "accept-invite").unwrap();

    let promoted = api.patch_role(&team_admin, &id, "team_admin").await;
    assert_eq!(promoted.status, 200, "{}", promoted.text);

    api.accept(&token, OTHER_PASSWORD)
        .await
        .assert_problem(400, "token_invalid");
    let user = api.user(&team_admin, &id).await;
    assert_eq!(
        (user.json["status"].as_str(), user.json["role"].as_str()),
        (Some("invited"), Some("team_admin")),
        "{}",
        user.text
    );
    api.sign_in("admin", &invitee, OTHER_PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn the_old_mailbox_cannot_take_a_moved_account_with_a_reset_link_requested_before_the_move() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant, old, id) = tenant_with_active_user(&stack, &api).await;
    assert_eq!(api.forgot(&tenant, &old).await.status, 202);
    let (_, in_old_mailbox) = mailed_link(&stack, &old, "reset-password").await.unwrap();

    change(&stack, &api, &admin, Change::Address, &id, &old, "member").await;

    api.reset_password(&in_old_mailbox, OTHER_PASSWORD)
        .await
        .assert_problem(400, "token_invalid");
    let new = api.user(&admin, &id).await.json["email"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(api.sign_in(&tenant, &new, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_copied_reset_link_does_not_verify_the_address_and_a_mailed_one_does() {
    let stack = TestStack::start().await.unwrap();
    let api = Api::new(&stack);
    let (admin, tenant) = api.admin_and_tenant(&stack).await;
    let (email, id) = unverified_user(&api, &admin, &tenant).await;

    let copied = api.access_link(&admin, &id).await;
    assert_eq!(copied.json["kind"], "password_reset", "{}", copied.text);
    let (_, token) = link_in(copied.json["url"].as_str().unwrap(), "reset-password").unwrap();
    assert_eq!(api.reset_password(&token, OTHER_PASSWORD).await.status, 200);

    assert_eq!(
        api.user(&admin, &id).await.json["email_verified"],
        false,
        "a copied link proves no mailbox"
    );
    api.admin_reset(&admin, &id).await;
    let (_, mailed) = mailed_link(&stack, &email, "reset-password").await.unwrap();
    assert_eq!(api.reset_password(&mailed, PASSWORD).await.status, 200);
    assert_eq!(api.user(&admin, &id).await.json["email_verified"], true);
}
