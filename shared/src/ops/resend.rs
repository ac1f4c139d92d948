//! Resending invitations: a fresh link by mail, every earlier link dies and the expiry
//! restarts. Active users get a pointer to the password reset instead.
//!
//! - `POST /v1/users/{id}/resend-invitation`: one user.
//! - `POST /v1/tenants/{tenant}/invitations/resend`: up to 100 users of one tenant, one
//!   result per id ([`super::bulk`]). It is the next step after listing an import's or a
//!   tenant's expired people (`?status=expired`, one page), so that chasing them is one
//!   request, not one per person.

use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::app::App;
use crate::auth::{self, Caller};
use crate::domain::{TenantId, UserStatus};
use crate::events::{Actor, Kind, LifecycleEvent};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::ops::bulk;
use crate::ops::invite::{ErrorBody, MailReservation, send_invitation_from, spend_invite_mail};
use crate::ops::users::caller_and_target;
use crate::problem::{Code, Problem};
use crate::store::items::{after, now, timestamp};
use crate::store::{LinkVia, Reissue, Tenant, User};
use crate::token::{LinkToken, Purpose};

/// Sends per user per hour: enough to recover from a lost mail, too few to flood an inbox.
pub const RESENDS_PER_HOUR: u32 = 5;

/// What a resend did: the new link's expiry, and whether its mail went out.
#[derive(Serialize)]
pub struct Resent {
    pub expires_at: String,
    pub email_sent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_error: Option<ErrorBody>,
}

/// Who asks for a fresh invitation.
#[derive(Clone, Copy)]
pub enum Requester<'a> {
    /// An admin: the resend routes, or an invite row with `resend_existing`.
    Admin(&'a Caller),
    /// The invitee, through "forgot password" ("I never got my invitation"). Like a
    /// self-service reset, it is not an admin action: no audit record, and the event's actor
    /// is the subject.
    Invitee,
}

pub fn user_active() -> Problem {
    Problem::new(
        Code::UserActive,
        "This user has already accepted the invitation. To help them sign in, send a password reset (POST /v1/users/{id}/password-reset).",
    )
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    let result = match http::path_param(&req, "tenant") {
        Some(tenant) => resend_many(app, &req, &tenant).await,
        None => resend(app, &req).await,
    };
    http::respond(result)
}

async fn resend<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let (caller, user) = caller_and_target(app, req).await?;
    check(&caller, &user)?;
    let tenant = app
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| Problem::not_found("user"))?;
    // One at a time is still invitation mail: without this, a script resending user by user
    // would get around the budget that the bulk resend is held to.
    let reserved = spend_tenant_mail(app, &tenant.id, 1).await?;
    let renewed = renew(app, Requester::Admin(&caller), &tenant, &user).await;
    let sent = matches!(&renewed, Ok((r, _)) if r.email_sent);
    reserved.settle(app, usize::from(sent)).await;
    let (resent, event) = renewed?;
    crate::events::emit(app.events.as_ref(), &[event]).await;
    Ok(http::json(200, &resent))
}

/// What may stop a resend before anything is read or written.
pub fn check(caller: &Caller, user: &User) -> Result<(), Problem> {
    if user.status == UserStatus::Active {
        return Err(user_active());
    }
    if !caller.may_assign(user.role) {
        return Err(Problem::new(
            Code::ForbiddenRole,
            "Only a team_admin can resend a team_admin's invitation.",
        ));
    }
    Ok(())
}

/// Takes `mails` from the tenant's hourly invitation mail, or answers 429 having spent nothing.
async fn spend_tenant_mail<M: Mailer>(
    app: &App<M>,
    tenant: &TenantId,
    mails: u32,
) -> Result<MailReservation, Problem> {
    match spend_invite_mail(app, tenant, mails).await? {
        Ok(reserved) => Ok(reserved),
        Err(retry_after) => Err(Problem::new(
            Code::RateLimited,
            format!(
                "This tenant may send {} invitation emails per hour and this request needs \
                 {mails}; try again later, send fewer, or hand over access links.",
                app.config.invite_mail_per_hour
            ),
        )
        .retry_after(retry_after)),
    }
}

/// Spends one of the user's hourly resends, replaces the link and mails it. The returned
/// event is published by the caller, so that a bulk request publishes in batches. The
/// tenant's invitation mail is the caller's to take (one request takes all of its mails).
pub async fn renew<M: Mailer>(
    app: &App<M>,
    requester: Requester<'_>,
    tenant: &Tenant,
    user: &User,
) -> Result<(Resent, LifecycleEvent), Problem> {
    let detail = format!(
        "At most {RESENDS_PER_HOUR} invitation emails per user per hour. If the mail is not \
         arriving, hand over an access link instead."
    );
    super::hourly_budget(
        app,
        &format!("resend#{}", user.id),
        RESENDS_PER_HOUR,
        &detail,
    )
    .await?;
    let now = now();
    let expires_at = after(now, app.config.invite_ttl);
    let token = LinkToken::generate(&user.id);
    let hash = token.hash(&app.keys, Purpose::Invite);
    let change = Reissue {
        hash: &hash,
        via: LinkVia::Email,
        expires_at,
        sent_at: Some(now),
    };
    let (audit, inviter, actor) = match requester {
        Requester::Admin(caller) => (
            Some(super::audit(caller, "invitation_resent", user, None)),
            Some(&caller.user.email),
            Actor::admin(caller),
        ),
        // The mail names whoever invited them in the first place.
        Requester::Invitee => (None, user.invited_by_email.as_ref(), Actor::Subject),
    };
    app.store
        .reissue_invite(user, &change, audit.as_ref())
        .await?;
    match requester {
        Requester::Admin(caller) => {
            tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), "invitation resent")
        }
        Requester::Invitee => {
            tracing::info!(tenant = %user.tenant, user_id = %user.id, "invitation resent at the invitee's request")
        }
    }
    let (email_sent, email_error) =
        match send_invitation_from(app, inviter, tenant, user, &token, expires_at).await {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
    let event = LifecycleEvent::about(Kind::InvitationResent, user, actor)
        .with_time("expires_at", expires_at)
        .with("email_sent", email_sent);
    let resent = Resent {
        expires_at: timestamp(expires_at),
        email_sent,
        email_error,
    };
    Ok((resent, event))
}

/// One id's result in a bulk resend.
#[derive(Serialize)]
struct ResentRow {
    user_id: String,
    status: &'static str,
    email: String,
    #[serde(flatten)]
    resent: Resent,
}

async fn resend_many<M: Mailer>(app: &App<M>, req: &Request, raw_tenant: &str) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let batch = bulk::read(app, caller, req, raw_tenant, check).await?;
    // The whole request fits in the tenant's hourly invitation mail, or nothing is sent.
    let reserved = spend_tenant_mail(app, &batch.tenant.id, batch.ready() as u32).await?;
    let (caller, tenant) = (&batch.caller, &batch.tenant);
    let sent = &AtomicUsize::new(0);
    let answer = bulk::run(app, batch.rows, |user| async move {
        let (resent, event) = renew(app, Requester::Admin(caller), tenant, &user).await?;
        if resent.email_sent {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        let row = ResentRow {
            user_id: user.id.to_string(),
            status: "resent",
            email: user.email.to_string(),
            resent,
        };
        Ok((row, Some(event)))
    })
    .await;
    reserved.settle(app, sent.load(Ordering::Relaxed)).await;
    answer
}
