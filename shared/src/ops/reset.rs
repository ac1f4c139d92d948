//! `POST /v1/users/{id}/password-reset`: an admin sends an active user a reset link.
//! There is no route, flag or code path by which anyone sets another person's password.

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};

use crate::app::App;
use crate::domain::UserStatus;
use crate::events::{self, Actor, LifecycleEvent};
use crate::http::{self, HttpResult};
use crate::mail::{Kind, Mail, MailError, Mailer};
use crate::ops::users::caller_and_target;
use crate::problem::{Code, Problem};
use crate::store::items::{after, now};
use crate::store::{Tenant, User};
use crate::token::{LinkToken, Purpose};

pub fn user_not_active() -> Problem {
    Problem::new(
        Code::UserNotActive,
        "This user has not accepted the invitation yet, so there is no password to reset. Resend the invitation (POST /v1/users/{id}/resend-invitation).",
    )
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(send_reset(app, &req).await)
}

async fn send_reset<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let (caller, user) = caller_and_target(app, req).await?;
    if user.status != UserStatus::Active {
        return Err(user_not_active());
    }
    if !caller.may_assign(user.role) {
        return Err(Problem::new(
            Code::ForbiddenRole,
            "Only a team_admin can send a team_admin a reset link.",
        ));
    }
    let limit = super::MAILS_PER_USER_PER_HOUR;
    let detail = format!(
        "At most {limit} reset emails per user per hour. If the mail is not arriving, hand over \
         an access link instead."
    );
    super::hourly_budget(app, &format!("reset-mail#{}", user.id), limit, &detail).await?;
    let tenant = app
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| Problem::not_found("user"))?;
    let expires_at = after(now(), app.config.reset_ttl);
    let token = LinkToken::generate(&user.id);
    let audit = super::audit(&caller, "password_reset_sent", &user, None);
    app.store
        .issue_reset(
            &user,
            &token.hash(&app.keys, Purpose::Reset),
            expires_at,
            crate::store::LinkVia::Email,
            Some(&audit),
        )
        .await?;
    let sent = mail_link(
        app,
        &user,
        &tenant,
        &token,
        expires_at,
        Actor::admin(&caller),
    )
    .await;
    tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), "password reset sent");
    Ok(http::json(
        202,
        &super::Sent::new(expires_at, sent, "reset link"),
    ))
}

/// Mails `user` the reset link of `token` and tells subscribers, whoever asked for it: an
/// admin here, the user themselves through "forgot password".
pub(super) async fn mail_link<M: Mailer>(
    app: &App<M>,
    user: &User,
    tenant: &Tenant,
    token: &LinkToken,
    expires_at: DateTime<Utc>,
    actor: Actor,
) -> Result<(), MailError> {
    let link = super::page_link(app, &user.tenant, "reset-password", token);
    let sent = super::deliver(
        app,
        user,
        Mail::new(Kind::Reset, &user.email, &tenant.name)
            .link(&link, expires_at)
            .branded(tenant)
            .render(),
        false,
    )
    .await;
    events::emit(
        app.events.as_ref(),
        &[
            LifecycleEvent::about(events::Kind::PasswordResetRequested, user, actor)
                .with_time("expires_at", expires_at)
                .with("email_sent", sent.is_ok()),
        ],
    )
    .await;
    sent
}
