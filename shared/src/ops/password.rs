//! Self-service recovery: `POST /v1/password/forgot` and `POST /v1/password/reset`.
//!
//! "Forgot" answers the same 202 and the same bytes whether or not the account exists, in
//! that tenant or any; it does the same reads on every path and pads its answer to a fixed
//! minimum time, so neither the body nor the timing reveals which addresses have accounts.

use std::time::{Duration, Instant};

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use crate::app::App;
use crate::domain::{Email, TenantId, UserId, UserStatus};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::password;
use crate::problem::{Code, Problem};
use crate::store::items::{after, now};
use crate::token::{LinkToken, Purpose, SlotState};

use super::links::PasswordLink;

/// Every "forgot" answer takes at least this long, covering the writes, the send and the event
/// that only the existing-account path does (SES's send is most of it). A second leaves room
/// for slow sends, whose tail would otherwise tell a patient prober which addresses have
/// accounts; a send slower than that still shows (see the README). Nobody minds a second here.
const FORGOT_MIN_DURATION: Duration = Duration::from_secs(1);
pub const FORGOT_PER_ADDRESS_PER_HOUR: u32 = 5;
pub const FORGOT_PER_IP_PER_HOUR: u32 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forgot {
    tenant: String,
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    token: String,
    password: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error(
        "This link is not valid any more: a newer one may have been sent, or the account was changed since (its address, role or password). Use the most recent email, or request a new link."
    )]
    Invalid,
    #[error(
        "This link has expired. Request a new one with 'forgot password', or ask your administrator."
    )]
    Expired,
    #[error("This link has already been used. Sign in, or request a new link.")]
    Used,
    #[error("{0}")]
    WeakPassword(#[from] password::PasswordError),
}

impl From<LinkError> for Problem {
    fn from(err: LinkError) -> Self {
        let code = match err {
            LinkError::Invalid => Code::TokenInvalid,
            LinkError::Expired => Code::TokenExpired,
            LinkError::Used => Code::TokenUsed,
            LinkError::WeakPassword(_) => Code::WeakPassword,
        };
        Problem::new(code, err.to_string())
    }
}

impl LinkError {
    pub fn from_state(state: SlotState) -> Result<(), Self> {
        match state {
            SlotState::Live => Ok(()),
            SlotState::Expired => Err(Self::Expired),
            SlotState::Used => Err(Self::Used),
            SlotState::Unknown => Err(Self::Invalid),
        }
    }
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    let result = match (req.method(), req.uri().path().trim_end_matches('/')) {
        (&Method::POST, "/v1/password/forgot") => forgot(app, &req).await,
        (&Method::POST, "/v1/password/reset") => reset(app, &req).await,
        _ => Err(http::method_not_allowed()),
    };
    http::respond(result)
}

async fn forgot<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let started = Instant::now();
    let body: Forgot = http::json_body(req)?;
    let email =
        Email::parse(&body.email).map_err(|e| Problem::new(Code::InvalidEmail, e.to_string()))?;
    let tenant = TenantId::parse(body.tenant.trim()).ok();
    let ip =
        http::source_network(req, app.config.trusted_proxies).unwrap_or_else(|| "unknown".into());
    let too_many = "Too many reset requests; wait a while and try again.";
    // As for sign-in, a refusal is the operator's to see: it may be someone mail-bombing an
    // inbox, or a whole office behind one address.
    let refused = |limit: &'static str| {
        let (ip, email) = (&ip, &email);
        move |problem: &Problem| {
            if problem.code == Code::RateLimited {
                tracing::warn!(
                    limit,
                    network = %ip,
                    email = %email.redacted(),
                    "forgot password refused: too many requests"
                );
                crate::telemetry::metric("ForgotPasswordRefused", &[("Limit", limit)]);
            }
        }
    };
    let (source_key, at) = (format!("forgot-ip#{ip}"), now());
    super::hourly_budget_at(app, &source_key, FORGOT_PER_IP_PER_HOUR, too_many, at)
        .await
        .inspect_err(refused("source"))?;
    let address_key = format!("forgot#{email}");
    if let Err(problem) =
        super::hourly_budget_at(app, &address_key, FORGOT_PER_ADDRESS_PER_HOUR, too_many, at).await
    {
        refused("address")(&problem);
        // A request refused for its address is not counted against its network: one person
        // asking again and again must not spend the budget of everyone behind their address.
        super::give_back(app, &[source_key.as_str()], super::HOUR, at).await;
        return Err(problem);
    }

    // Any link this mails is hashed with the newest key generation (on every path, like the
    // reads, so that the timing does not tell).
    app.keys.refresh_if_stale().await;
    // Two reads on every path: the address claim, then the user (or a user that cannot exist).
    let id = app.store.find_user_id(&email).await?;
    let user = app
        .store
        .get_user(&id.unwrap_or_else(UserId::generate))
        .await?;
    match user.filter(|u| Some(&u.tenant) == tenant.as_ref()) {
        Some(user) if user.status == UserStatus::Active => {
            send_self_service_reset(app, &user).await;
        }
        // "I never got my invitation": someone who has not joined gets it again.
        Some(user) if matches!(user.status, UserStatus::Invited | UserStatus::Expired) => {
            send_self_service_invitation(app, &user).await;
        }
        _ => {}
    }
    if let Some(rest) = FORGOT_MIN_DURATION.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    Ok(http::json(
        202,
        &serde_json::json!({
            "detail": "If this address has an account or an invitation in this tenant, a link is on its way: a reset link that expires in one hour or less, or a new invitation."
        }),
    ))
}

/// Failures here are logged, never answered: the caller must not learn that the account exists.
async fn send_self_service_reset<M: Mailer>(app: &App<M>, user: &crate::store::User) {
    let limit = super::MAILS_PER_USER_PER_HOUR;
    if super::hourly_budget(app, &format!("reset-mail#{}", user.id), limit, "")
        .await
        .is_err()
    {
        tracing::info!(user_id = %user.id, "self-service reset over the per-user budget");
        return;
    }
    let expires_at = after(now(), app.config.reset_ttl);
    let token = LinkToken::generate(&user.id);
    if let Err(e) = app
        .store
        .issue_reset(
            user,
            &token.hash(&app.keys, Purpose::Reset),
            expires_at,
            crate::store::LinkVia::Email,
            None,
        )
        .await
    {
        tracing::warn!(user_id = %user.id, error = %e, "self-service reset not stored");
        return;
    }
    let tenant = match app.store.get_tenant(&user.tenant).await {
        Ok(Some(t)) => t,
        _ => crate::store::Tenant::unnamed(&user.tenant),
    };
    // A refusal is logged and recorded on the user by `deliver`; the caller hears nothing.
    let _ = super::reset::mail_link(
        app,
        user,
        &tenant,
        &token,
        expires_at,
        crate::events::Actor::Subject,
    )
    .await;
    tracing::info!(tenant = %user.tenant, user_id = %user.id, "self-service reset sent");
}

/// A fresh invitation for someone who has not joined, under the resend route's limits: the
/// user's hourly resends and the tenant's hourly invitation mail. Like the reset, failures
/// are logged, never answered.
async fn send_self_service_invitation<M: Mailer>(app: &App<M>, user: &crate::store::User) {
    let reserved = match super::invite::spend_invite_mail(app, &user.tenant, 1).await {
        Ok(Ok(reserved)) => reserved,
        Ok(Err(_)) => {
            tracing::info!(user_id = %user.id, "self-service invitation over the tenant's mail budget");
            return;
        }
        Err(e) => {
            tracing::warn!(user_id = %user.id, error = %e, "self-service invitation not sent");
            return;
        }
    };
    let tenant = match app.store.get_tenant(&user.tenant).await {
        Ok(Some(t)) => t,
        _ => crate::store::Tenant::unnamed(&user.tenant),
    };
    let renewed = super::resend::renew(app, super::resend::Requester::Invitee, &tenant, user).await;
    let sent = matches!(&renewed, Ok((resent, _)) if resent.email_sent);
    reserved.settle(app, usize::from(sent)).await;
    match renewed {
        Ok((_, event)) => crate::events::emit(app.events.as_ref(), &[event]).await,
        Err(problem) => {
            tracing::info!(user_id = %user.id, code = problem.code.as_str(), "self-service invitation not sent")
        }
    }
}

async fn reset<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let body: Reset = http::json_body(req)?;
    let token = LinkToken::parse(&body.token).ok_or(LinkError::Invalid)?;
    let user = app
        .store
        .get_user(token.user_id())
        .await?
        .ok_or(LinkError::Invalid)?;
    let ring = super::links::keyring_for(app, &user, &[Purpose::Reset]).await;
    let state = |u: &crate::store::User| {
        LinkError::from_state(u.link_state(Purpose::Reset, &token, &ring, now()))
    };
    state(&user)?;
    let hash = user.link_hash(Purpose::Reset).ok_or(LinkError::Invalid)?;
    super::links::set_password(
        app,
        PasswordLink::Reset,
        &user,
        &hash,
        &body.password,
        state,
        LinkError::Invalid,
    )
    .await
}
