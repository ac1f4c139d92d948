//! `POST /v1/invitations/accept`: the invitee sets a password and the account becomes active.

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::UserStatus;
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::password::{self, Password};
use crate::problem::{Code, Problem};
use crate::store::items::now;
use crate::store::{ConditionalError, User};
use crate::token::{LinkToken, Purpose, TokenHash};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    token: String,
    password: String,
}

#[derive(Serialize)]
struct Accepted {
    user_id: String,
    tenant: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcceptError {
    #[error(
        "This invitation link is not valid; a newer invitation may have been sent. Use the most recent email, or ask your administrator for a new invitation."
    )]
    Invalid,
    #[error("This invitation has expired. Ask your administrator to send you a new invitation.")]
    Expired,
    #[error(
        "This invitation has already been used. Sign in with the password you set, or use 'forgot password'."
    )]
    Used,
    #[error("{0}")]
    WeakPassword(#[from] password::PasswordError),
}

impl From<AcceptError> for Problem {
    fn from(err: AcceptError) -> Self {
        let code = match err {
            AcceptError::Invalid => Code::TokenInvalid,
            AcceptError::Expired => Code::TokenExpired,
            AcceptError::Used => Code::TokenUsed,
            AcceptError::WeakPassword(_) => Code::WeakPassword,
        };
        Problem::new(code, err.to_string())
    }
}

/// Decides what a token means for this user right now, without writing anything.
pub fn classify(
    user: &User,
    hash: &TokenHash,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AcceptError> {
    if hash.matches(user.spent_invite_token_hash.as_deref()) {
        return Err(AcceptError::Used);
    }
    if !hash.matches(user.invite_token_hash.as_deref()) {
        return Err(AcceptError::Invalid);
    }
    let expired =
        user.status == UserStatus::Expired || user.invite_expires_at.is_none_or(|at| at <= now);
    match user.status {
        _ if expired => Err(AcceptError::Expired),
        UserStatus::Invited => Ok(()),
        _ => Err(AcceptError::Invalid),
    }
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(accept(app, &req).await)
}

async fn accept<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let body: Accept = http::json_body(req)?;
    let token = LinkToken::parse(&body.token).ok_or(AcceptError::Invalid)?;
    let hash = token.hash(&app.keys, Purpose::Invite);
    let user = app
        .store
        .get_user(token.user_id())
        .await?
        .ok_or(AcceptError::Invalid)?;
    classify(&user, &hash, now())?;
    let password =
        Password::parse(&body.password, Some(user.email.as_str())).map_err(AcceptError::from)?;
    let phc = password::hash_off_thread(password).await?;
    let unlock = super::sessions::unlock(&app.store, &user.email)?;
    match app
        .store
        .activate_invited(&user, &hash, &phc, now(), vec![unlock])
        .await
    {
        Ok(()) => {
            tracing::info!(tenant = %user.tenant, user_id = %user.id, "invitation accepted");
            crate::events::emit(
                app.events.as_ref(),
                &[crate::events::LifecycleEvent::about(
                    crate::events::Kind::InvitationAccepted,
                    &user,
                    crate::events::Actor::Subject,
                )],
            )
            .await;
            Ok(http::json(
                200,
                &Accepted {
                    user_id: user.id.to_string(),
                    tenant: user.tenant.to_string(),
                },
            ))
        }
        // Someone else changed the invitation between our read and write (a second accept,
        // a resend, an expiry): read again and say what happened.
        Err(ConditionalError::Conflict) => {
            let current = app
                .store
                .get_user(&user.id)
                .await?
                .ok_or(AcceptError::Invalid)?;
            classify(&current, &hash, now())?;
            Err(AcceptError::Invalid.into())
        }
        Err(ConditionalError::Store(e)) => Err(e.into()),
    }
}
