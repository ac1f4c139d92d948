//! Resending invitations: a fresh link by mail, every earlier link dies and the expiry
//! restarts. Active users get a pointer to the password reset instead.
//!
//! - `POST /v1/users/{id}/resend-invitation`: one user.
//! - `POST /v1/tenants/{tenant}/invitations/resend`: up to [`MAX_RESENDS`] users of one tenant,
//!   one result per id, in order, as the invite route answers. It is the next step after
//!   listing an import's or a tenant's expired people (`?status=expired`, one page of up to
//!   100), so that chasing them is one request, not one per person.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{self, Caller};
use crate::domain::{TenantId, UserId, UserStatus};
use crate::events::{Actor, Kind, LifecycleEvent};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::ops::invite::{ErrorBody, send_invitation, spend_invite_mail};
use crate::ops::users::load_managed;
use crate::problem::{Code, Problem};
use crate::store::items::{now, timestamp};
use crate::store::{ConditionalError, LinkVia, Reissue, Tenant, User};
use crate::token::{LinkToken, Purpose};

/// Sends per user per hour: enough to recover from a lost mail, too few to flood an inbox.
pub const RESENDS_PER_HOUR: u32 = 5;
/// Users per bulk request: one page of the user list.
pub const MAX_RESENDS: usize = 100;
/// Users renewed and mailed at once, as the invite route does.
const CONCURRENCY: usize = 16;

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
    let result = match http::path_param(&req, "tenant") {
        Some(tenant) => resend_many(app, &req, &tenant).await,
        None => resend(app, &req).await,
    };
    http::respond(result)
}

async fn resend<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let user = load_managed(
        app,
        &caller,
        &http::path_param(req, "id").unwrap_or_default(),
    )
    .await?;
    check(&caller, &user)?;
    let tenant = app
        .store
        .get_tenant(&user.tenant)
        .await?
        .ok_or_else(|| Problem::not_found("user"))?;
    let (resent, event) = renew(app, &caller, &tenant, &user).await?;
    crate::events::emit(app.events.as_ref(), &[event]).await;
    Ok(http::json(200, &resent))
}

/// What may stop a resend before anything is read or written.
fn check(caller: &Caller, user: &User) -> Result<(), Problem> {
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

/// Spends one of the user's hourly resends, replaces the link and mails it. The returned
/// event is published by the caller, so that a bulk request publishes in batches.
async fn renew<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    user: &User,
) -> Result<(Resent, LifecycleEvent), Problem> {
    let key = format!("resend#{}", user.id);
    if let Err(retry) = app
        .store
        .rate_limit(&key, RESENDS_PER_HOUR, Duration::from_secs(3600), 1, now())
        .await?
    {
        return Err(Problem::new(Code::RateLimited, format!("At most {RESENDS_PER_HOUR} invitation emails per user per hour. If the mail is not arriving, hand over an access link instead.")).retry_after(retry));
    }
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
    let audit = super::audit(caller, "invitation_resent", user, None);
    match app.store.reissue_invite(user, &change, &audit).await {
        Ok(()) => {}
        Err(ConditionalError::Conflict) => return Err(changed_concurrently()),
        Err(ConditionalError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), "invitation resent");
    let (email_sent, email_error) =
        match send_invitation(app, caller, tenant, user, &token, expires_at).await {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
    let event = LifecycleEvent::about(Kind::InvitationResent, user, Actor::admin(caller))
        .with_time("expires_at", expires_at)
        .with("email_sent", email_sent);
    let resent = Resent {
        expires_at: timestamp(expires_at),
        email_sent,
        email_error,
    };
    Ok((resent, event))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendRequest {
    user_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum RowResult {
    Resent {
        user_id: String,
        email: String,
        #[serde(flatten)]
        resent: Resent,
    },
    Rejected {
        user_id: String,
        error: ErrorBody,
    },
}

impl RowResult {
    fn rejected(user_id: &str, error: ErrorBody) -> Self {
        Self::Rejected {
            // Echoed ids are bounded, as echoed emails are in the invite route.
            user_id: user_id.chars().take(64).collect(),
            error,
        }
    }
}

/// A row's share of a problem the one-user route would answer with.
fn row_error(problem: &Problem) -> ErrorBody {
    let detail = match (problem.code, problem.retry_after) {
        // The route-level texts speak of "the indicated time"; a row has no header.
        (Code::Unavailable | Code::Internal, _) => {
            "This invitation could not be renewed right now; retry this user.".to_owned()
        }
        (_, Some(seconds)) => format!(
            "{} Possible again in {} minute(s).",
            problem.detail,
            seconds.div_ceil(60)
        ),
        (_, None) => problem.detail.clone(),
    };
    ErrorBody {
        code: problem.code.as_str(),
        detail,
    }
}

#[derive(Serialize)]
struct ResendResponse {
    results: Vec<RowResult>,
}

async fn resend_many<M: Mailer>(app: &App<M>, req: &Request, raw_tenant: &str) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let tenant = TenantId::parse(raw_tenant).map_err(|_| Problem::not_found("tenant"))?;
    caller.require_manager_of(&tenant, "tenant")?;
    let body: ResendRequest = http::json_body(req)?;
    if body.user_ids.is_empty() {
        return Err(Problem::new(
            Code::ValidationFailed,
            "user_ids is empty; send the ids of the invited or expired users to mail again.",
        ));
    }
    if body.user_ids.len() > MAX_RESENDS {
        return Err(Problem::new(
            Code::ValidationFailed,
            format!(
                "At most {MAX_RESENDS} users per request ({} sent), one page of the user list; split them.",
                body.user_ids.len()
            ),
        ));
    }
    let tenant = app
        .store
        .get_tenant(&tenant)
        .await?
        .ok_or_else(|| Problem::not_found("tenant"))?;

    let ids: Vec<Option<UserId>> = body.user_ids.iter().map(|raw| UserId::parse(raw)).collect();
    let wanted: Vec<UserId> = ids.iter().flatten().cloned().collect();
    let mut users = app.store.get_users(&wanted).await?;
    let mut seen = HashSet::new();
    let checked: Vec<Result<User, ErrorBody>> = ids
        .iter()
        .map(|id| {
            let id = id.as_ref().ok_or_else(|| row_error(&not_in_tenant()))?;
            if !seen.insert(id) {
                return Err(ErrorBody {
                    code: "duplicate_in_request",
                    detail:
                        "This id appears earlier in the same request; that user is mailed once."
                            .to_owned(),
                });
            }
            let user = users
                .remove(id)
                .filter(|user| user.tenant == tenant.id)
                .ok_or_else(|| row_error(&not_in_tenant()))?;
            check(&caller, &user).map_err(|p| row_error(&p))?;
            Ok(user)
        })
        .collect();

    // The whole request fits in the tenant's hourly invitation mail, or nothing is sent.
    let mails = checked.iter().filter(|c| c.is_ok()).count() as u32;
    if let Err(retry_after) = spend_invite_mail(app, &tenant.id, mails).await? {
        return Err(Problem::new(
            Code::RateLimited,
            format!("This tenant may send {} invitation emails per hour and this request needs {mails}; try again later, send fewer, or hand over access links.", app.config.invite_mail_per_hour),
        )
        .retry_after(retry_after));
    }

    let outcomes: Vec<(RowResult, Option<LifecycleEvent>)> =
        futures::stream::iter(body.user_ids.into_iter().zip(checked))
            .map(|(raw, checked)| {
                let (caller, tenant) = (&caller, &tenant);
                async move {
                    let user = match checked {
                        Ok(user) => user,
                        Err(error) => return (RowResult::rejected(&raw, error), None),
                    };
                    match renew(app, caller, tenant, &user).await {
                        Ok((resent, event)) => (
                            RowResult::Resent {
                                user_id: user.id.to_string(),
                                email: user.email.to_string(),
                                resent,
                            },
                            Some(event),
                        ),
                        Err(problem) => (RowResult::rejected(&raw, row_error(&problem)), None),
                    }
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
    let (results, events): (Vec<RowResult>, Vec<Option<LifecycleEvent>>) =
        outcomes.into_iter().unzip();
    let events: Vec<LifecycleEvent> = events.into_iter().flatten().collect();
    crate::events::emit(app.events.as_ref(), &events).await;
    Ok(http::json(200, &ResendResponse { results }))
}

/// The same answer for a malformed id, an unknown one and another tenant's user: a row never
/// tells whether an id exists elsewhere.
fn not_in_tenant() -> Problem {
    Problem::new(Code::NotFound, "No user with this id in this tenant.")
}
