//! `POST /v1/users/{id}/resend-invitation`: a fresh link by mail; every earlier link dies and
//! the expiry restarts. Active users get a pointer to the password reset instead.

use std::time::Duration;

use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::app::App;
use crate::auth;
use crate::domain::UserStatus;
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::ops::invite::{ErrorBody, send_invitation};
use crate::ops::users::load_managed;
use crate::problem::{Code, Problem};
use crate::store::items::{now, timestamp};
use crate::store::{ConditionalError, LinkVia, Reissue};
use crate::token::{LinkToken, Purpose};

/// Sends per user per hour: enough to recover from a lost mail, too few to flood an inbox.
pub const RESENDS_PER_HOUR: u32 = 5;

#[derive(Serialize)]
struct Resent {
    expires_at: String,
    email_sent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_error: Option<ErrorBody>,
}

pub fn user_active() -> Problem {
    Problem::new(
        Code::UserActive,
        "This user has already accepted the invitation. To help them sign in, send a password reset (POST /v1/users/{id}/password-reset).",
    )
}

pub fn changed_concurrently() -> Problem {
    Problem::new(
        Code::Conflict,
        "The invitation changed at the same moment (another resend, an accept or a deletion). Reload the user and try again.",
    )
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(resend(app, &req).await)
}

async fn resend<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let user = load_managed(
        app,
        &caller,
        &http::path_param(req, "id").unwrap_or_default(),
    )
    .await?;
    if user.status == UserStatus::Active {
        return Err(user_active());
    }
    if !caller.may_assign(user.role) {
        return Err(Problem::new(
            Code::ForbiddenRole,
            "Only a team_admin can resend a team_admin's invitation.",
        ));
    }
    let key = format!("resend#{}", user.id);
    if let Err(retry) = app
        .store
        .rate_limit(&key, RESENDS_PER_HOUR, Duration::from_secs(3600), 1, now())
        .await?
    {
        return Err(Problem::new(Code::RateLimited, format!("At most {RESENDS_PER_HOUR} invitation emails per user per hour. If the mail is not arriving, hand over an access link instead.")).retry_after(retry));
    }
    let tenant = app
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| Problem::not_found("user"))?;
    let now = now();
    let expires_at = now + chrono::Duration::seconds(app.config.invite_ttl.as_secs() as i64);
    let token = LinkToken::generate(&user.id);
    let hash = token.hash(&app.keys, Purpose::Invite);
    let change = Reissue {
        hash: &hash,
        via: LinkVia::Email,
        expires_at,
        sent_at: Some(now),
    };
    let audit = super::audit(&caller, "invitation_resent", &user, None);
    match app.store.reissue_invite(&user, &change, &audit).await {
        Ok(()) => {}
        Err(ConditionalError::Conflict) => return Err(changed_concurrently()),
        Err(ConditionalError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), "invitation resent");
    let (email_sent, email_error) =
        match send_invitation(app, &caller, &tenant, &user, &token, expires_at).await {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
    crate::events::emit(
        app.events.as_ref(),
        &[crate::events::LifecycleEvent::about(
            crate::events::Kind::InvitationResent,
            &user,
            crate::events::Actor::admin(&caller),
        )
        .with_time("expires_at", expires_at)
        .with("email_sent", email_sent)],
    )
    .await;
    Ok(http::json(
        200,
        &Resent {
            expires_at: timestamp(expires_at),
            email_sent,
            email_error,
        },
    ))
}
