//! Email verification and the lost-mailbox case:
//! `POST /v1/users/{id}/resend-verification`, `POST /v1/users/{id}/email-change`
//! (managers) and `POST /v1/email/verify` (anyone holding the link).
//!
//! An email change keeps the same user (id, role, tenant, history): a confirmation link goes
//! to the new address, and on confirmation the account moves there atomically.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{Email, UserStatus};
use crate::http::{self, HttpResult};
use crate::mail::{Kind, Mail, Mailer};
use crate::ops::password::LinkError;
use crate::ops::reset::user_not_active;
use crate::ops::users::caller_and_target;
use crate::problem::{Code, Problem};
use crate::store::items::{after, now};
use crate::store::{AuditEvent, ConditionalError, Party, User};
use crate::token::{LinkToken, Purpose, SlotState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChange {
    new_email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    token: String,
}

#[derive(Serialize)]
struct Verified {
    user_id: String,
    tenant: String,
    email: String,
    /// `verified` or `email_changed`.
    kind: &'static str,
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let result = match *req.method() {
        Method::POST if path == "/v1/email/verify" => verify(app, &req).await,
        Method::POST if path.ends_with("/resend-verification") => {
            resend_verification(app, &req).await
        }
        Method::POST if path.ends_with("/email-change") => request_change(app, &req).await,
        _ => Err(http::method_not_allowed()),
    };
    http::respond(result)
}

async fn managed<M: Mailer>(app: &App<M>, req: &Request) -> Result<(Caller, User), Problem> {
    let (caller, user) = caller_and_target(app, req).await?;
    if !caller.may_assign(user.role) {
        return Err(Problem::new(
            Code::ForbiddenRole,
            "Only a team_admin can do this for a team_admin.",
        ));
    }
    if user.status != UserStatus::Active {
        return Err(user_not_active());
    }
    Ok((caller, user))
}

fn tenant_or_unnamed(tenant: Option<crate::store::Tenant>, user: &User) -> crate::store::Tenant {
    tenant.unwrap_or_else(|| crate::store::Tenant::unnamed(&user.tenant))
}

async fn resend_verification<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let (caller, user) = managed(app, req).await?;
    if user.email_verified {
        return Err(Problem::new(
            Code::AlreadyVerified,
            "This address is already verified; there is nothing to confirm.",
        ));
    }
    let limit = super::MAILS_PER_USER_PER_HOUR;
    super::hourly_budget(
        app,
        &format!("verify-mail#{}", user.id),
        limit,
        &format!("At most {limit} verification emails per user per hour."),
    )
    .await?;
    let expires_at = after(now(), app.config.verify_ttl);
    let token = LinkToken::generate(&user.id);
    let audit = super::audit(&caller, "verification_sent", &user, None);
    app.store
        .issue_verify(
            &user,
            &token.hash(&app.keys, Purpose::Verify),
            expires_at,
            &audit,
        )
        .await?;
    let tenant = tenant_or_unnamed(app.store.get_tenant(&user.tenant).await?, &user);
    let link = super::page_link(app, &user.tenant, "verify-email", &token);
    let sent = super::deliver(
        app,
        &user,
        Mail::new(Kind::Verify, &user.email, &tenant.name)
            .link(&link, expires_at)
            .branded(&tenant)
            .render(),
        false,
    )
    .await;
    Ok(http::json(
        202,
        &super::Sent::new(expires_at, sent, "verification link"),
    ))
}

async fn request_change<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let (caller, user) = managed(app, req).await?;
    let body: EmailChange = http::json_body(req)?;
    let new_email = Email::parse(&body.new_email)
        .map_err(|e| Problem::new(Code::InvalidEmail, e.to_string()))?;
    if new_email == user.email {
        return Err(Problem::new(
            Code::ValidationFailed,
            "The new address is the user's current address.",
        ));
    }
    if app.store.find_user_id(&new_email).await?.is_some() {
        return Err(Problem::new(
            Code::AlreadyExists,
            "Another account already uses this address; one account per email address.",
        ));
    }
    let limit = super::MAILS_PER_USER_PER_HOUR;
    super::hourly_budget(
        app,
        &format!("email-change#{}", user.id),
        limit,
        &format!("At most {limit} address changes per user per hour."),
    )
    .await?;
    let expires_at = after(now(), app.config.verify_ttl);
    let token = LinkToken::generate(&user.id);
    let audit = super::audit(
        &caller,
        "email_change_requested",
        &user,
        Some(format!("to {}", new_email.redacted())),
    );
    app.store
        .issue_email_change(
            &user,
            &new_email,
            &token.hash(&app.keys, Purpose::EmailChange),
            expires_at,
            &audit,
        )
        .await?;
    let tenant = tenant_or_unnamed(app.store.get_tenant(&user.tenant).await?, &user);
    let link = super::page_link(app, &user.tenant, "verify-email", &token);
    let message = Mail::new(Kind::EmailChange, &new_email, &tenant.name)
        .link(&link, expires_at)
        .branded(&tenant)
        .render()
        .map(|m| m.for_user(&user));
    let sent = match message {
        Ok(message) => app.mailer.send(&message).await,
        Err(e) => Err(e),
    };
    Ok(http::json(
        202,
        &super::Sent::new(expires_at, sent, "address change"),
    ))
}

async fn verify<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let body: Verify = http::json_body(req)?;
    let token = LinkToken::parse(&body.token).ok_or(LinkError::Invalid)?;
    let user = app
        .store
        .get_user(token.user_id())
        .await?
        .ok_or(LinkError::Invalid)?;
    let ring =
        super::links::keyring_for(app, &user, &[Purpose::Verify, Purpose::EmailChange]).await;
    let verify_state = |u: &User| u.link_state(Purpose::Verify, &token, &ring, now());
    let change_state = |u: &User| u.link_state(Purpose::EmailChange, &token, &ring, now());

    if verify_state(&user) != SlotState::Unknown {
        LinkError::from_state(verify_state(&user))?;
        let verify_hash = user.link_hash(Purpose::Verify).ok_or(LinkError::Invalid)?;
        return match app.store.complete_verify(&user, &verify_hash, now()).await {
            Ok(()) => Ok(http::json(
                200,
                &Verified {
                    user_id: user.id.to_string(),
                    tenant: user.tenant.to_string(),
                    email: user.email.to_string(),
                    kind: "verified",
                },
            )),
            Err(ConditionalError::Conflict) => {
                let check = |u: &User| LinkError::from_state(verify_state(u));
                super::links::recheck(app, &user.id, check, LinkError::Invalid).await?;
                Err(LinkError::Invalid.into())
            }
            Err(ConditionalError::Store(e)) => Err(e.into()),
        };
    }
    LinkError::from_state(change_state(&user))?;
    let change_hash = user
        .link_hash(Purpose::EmailChange)
        .ok_or(LinkError::Invalid)?;
    let new_email = user.pending_email.clone().ok_or(LinkError::Invalid)?;
    let audit = AuditEvent {
        at: now(),
        tenant: user.tenant.clone(),
        actor: Party::of(&user),
        action: "email_changed".into(),
        target: Party::of(&user),
        detail: Some(format!("from {}", user.email.redacted())),
    };
    match app
        .store
        .complete_email_change(&user, &new_email, &change_hash, now(), &audit)
        .await
    {
        Ok(()) => {}
        Err(ConditionalError::Conflict) => {
            let check = |u: &User| LinkError::from_state(change_state(u));
            super::links::recheck(app, &user.id, check, LinkError::Invalid).await?;
            if app
                .store
                .find_user_id(&new_email)
                .await?
                .is_some_and(|owner| owner != user.id)
            {
                return Err(Problem::new(
                    Code::AlreadyExists,
                    "That address now belongs to another account, so this account cannot move to it. Ask your administrator.",
                ));
            }
            return Err(LinkError::Invalid.into());
        }
        Err(ConditionalError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(tenant = %user.tenant, user_id = %user.id, "email changed");
    // Tell the old address, so that a change nobody asked for does not go unnoticed.
    let tenant = tenant_or_unnamed(app.store.get_tenant(&user.tenant).await?, &user);
    let mut notice = Mail::new(Kind::EmailChanged, &user.email, &tenant.name).branded(&tenant);
    notice.new_email = Some(&new_email);
    let sent = match notice.render() {
        Ok(message) => app.mailer.send(&message).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::warn!(user_id = %user.id, error = %e, "email-changed notice not sent");
    }
    Ok(http::json(
        200,
        &Verified {
            user_id: user.id.to_string(),
            tenant: user.tenant.to_string(),
            email: new_email.to_string(),
            kind: "email_changed",
        },
    ))
}
