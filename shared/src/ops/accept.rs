//! `POST /v1/invitations/accept`: the invitee sets a password and the account becomes active.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::app::App;
use crate::domain::UserStatus;
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::password;
use crate::problem::{Code, Problem};
use crate::secrets::Keyring;
use crate::store::User;
use crate::store::items::now;
use crate::token::{LinkToken, Purpose, SlotState};

use super::links::PasswordLink;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    token: String,
    password: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AcceptError {
    #[error(
        "This invitation link is not valid any more: a newer invitation may have been sent, or the account was changed since (a new role, say). Use the most recent email, or ask your administrator for a new invitation."
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
    token: &LinkToken,
    ring: &Keyring,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AcceptError> {
    match user.link_state(Purpose::Invite, token, ring, now) {
        SlotState::Used => Err(AcceptError::Used),
        SlotState::Unknown => Err(AcceptError::Invalid),
        // Past its time, whether or not the sweep has marked it yet.
        SlotState::Expired => Err(AcceptError::Expired),
        SlotState::Live if user.status == UserStatus::Expired => Err(AcceptError::Expired),
        SlotState::Live if user.status == UserStatus::Invited => Ok(()),
        SlotState::Live => Err(AcceptError::Invalid),
    }
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(accept(app, &req).await)
}

async fn accept<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let body: Accept = http::json_body(req)?;
    let token = LinkToken::parse(&body.token).ok_or(AcceptError::Invalid)?;
    let user = app
        .store
        .get_user(token.user_id())
        .await?
        .ok_or(AcceptError::Invalid)?;
    let ring = super::links::keyring_for(app, &user, &[Purpose::Invite]).await;
    classify(&user, &token, &ring, now())?;
    let hash = user
        .link_hash(Purpose::Invite)
        .ok_or(AcceptError::Invalid)?;
    super::links::set_password(
        app,
        PasswordLink::Invite,
        &user,
        &hash,
        &body.password,
        |u| classify(u, &token, &ring, now()),
        AcceptError::Invalid,
    )
    .await
}
