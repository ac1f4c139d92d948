//! `POST /v1/tenants/{tenant}/invitations`: invite people by email, one result per row.
//!
//! Rows are checked first (email, role, permission, duplicates), then the valid ones are
//! written, each as one transaction that claims the address, and mailed. A row's failure
//! never affects another row; a mail that SES refuses leaves a stored invitation with
//! `email_sent: false` and the reason, so an admin can resend or hand over a link.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{self, Caller};
use crate::domain::{DisplayName, Email, Role, TenantId, UserId};
use crate::events::{Actor, Kind as EventKind, LifecycleEvent};
use crate::http::{self, HttpResult};
use crate::mail::{self, Mailer};
use crate::problem::{Code, Problem};
use crate::store::items::{after, now, timestamp};
use crate::store::{CreateUserError, LinkVia, Tenant, User};
use crate::token::{LinkToken, Purpose};

/// More than this in one request goes through the CSV import instead.
pub const MAX_INVITATIONS: usize = 500;
/// Rows written and mailed at once; DynamoDB and SES both take parallel requests well.
const CONCURRENCY: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    invitations: Vec<Row>,
    #[serde(default = "default_true")]
    send_email: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    email: String,
    #[serde(default)]
    role: Option<String>,
    /// The person's display name; absent, null or blank is none.
    #[serde(default)]
    name: Option<String>,
}

/// Why one row was not invited. Its code is the same in the invite route and the CSV import.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RowError {
    #[error("{0}")]
    InvalidEmail(#[from] crate::domain::EmailError),
    #[error("{0}")]
    InvalidRole(#[from] crate::domain::RoleError),
    #[error("{0}")]
    InvalidName(#[from] crate::domain::NameError),
    #[error("Only a team_admin can invite a team_admin.")]
    ForbiddenRole,
    #[error("This address appears earlier in the same request; it is invited once.")]
    DuplicateInRequest,
    #[error(
        "An account with this email already exists. Ask the person to sign in with it; one account per email address."
    )]
    AlreadyExists,
    #[error("The invitation could not be stored right now; retry this address.")]
    Unavailable,
}

impl RowError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail(_) => Code::InvalidEmail.as_str(),
            Self::InvalidRole(_) => Code::InvalidRole.as_str(),
            Self::InvalidName(_) => Code::InvalidName.as_str(),
            Self::ForbiddenRole => Code::ForbiddenRole.as_str(),
            Self::DuplicateInRequest => "duplicate_in_request",
            Self::AlreadyExists => Code::AlreadyExists.as_str(),
            Self::Unavailable => Code::Unavailable.as_str(),
        }
    }
}

#[derive(Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub detail: String,
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RowResult {
    Invited {
        email: String,
        user_id: String,
        role: &'static str,
        expires_at: String,
        email_sent: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        email_error: Option<ErrorBody>,
    },
    Rejected {
        email: String,
        error: ErrorBody,
    },
}

impl RowResult {
    fn rejected(email: String, err: &RowError) -> Self {
        Self::Rejected {
            email,
            error: ErrorBody {
                code: err.code(),
                detail: err.to_string(),
            },
        }
    }
}

#[derive(Serialize)]
struct InviteResponse {
    results: Vec<RowResult>,
}

/// A row that passed every check that needs no I/O.
pub struct Candidate {
    pub email: Email,
    pub role: Role,
    pub name: Option<DisplayName>,
}

/// Checks one row against the rules; `seen` collects addresses to catch duplicates. A blank
/// or absent name is no name (an empty CSV cell).
pub fn check_row(
    raw_email: &str,
    raw_role: Option<&str>,
    raw_name: Option<&str>,
    tenant: &TenantId,
    caller: &Caller,
    seen: &mut HashSet<Email>,
) -> Result<Candidate, RowError> {
    let email = Email::parse(raw_email)?;
    let role = Role::parse_for(raw_role.unwrap_or("member"), tenant)?;
    let name = DisplayName::parse_optional(raw_name)?;
    if !caller.may_assign(role) {
        return Err(RowError::ForbiddenRole);
    }
    if !seen.insert(email.clone()) {
        return Err(RowError::DuplicateInRequest);
    }
    Ok(Candidate { email, role, name })
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(invite(app, &req).await)
}

async fn invite<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let tenant = super::tenant_in_path(req)?;
    caller.require_manager_of(&tenant, "tenant")?;
    let body: InviteRequest = http::json_body(req)?;
    if body.invitations.is_empty() {
        return Err(Problem::new(
            Code::ValidationFailed,
            "invitations is empty; send at least one {email, role}.",
        ));
    }
    if body.invitations.len() > MAX_INVITATIONS {
        return Err(Problem::new(
            Code::TooManyInvitations,
            format!(
                "At most {MAX_INVITATIONS} invitations per request ({} sent); split them or use the CSV import.",
                body.invitations.len()
            ),
        ));
    }
    let tenant = super::existing_tenant(app, &tenant).await?;

    let mut seen = HashSet::new();
    let checked: Vec<(String, Result<Candidate, RowError>)> = body
        .invitations
        .iter()
        .map(|row| {
            (
                row.email.clone(),
                check_row(
                    &row.email,
                    row.role.as_deref(),
                    row.name.as_deref(),
                    &tenant.id,
                    &caller,
                    &mut seen,
                ),
            )
        })
        .collect();

    let mails = if body.send_email {
        checked.iter().filter(|(_, c)| c.is_ok()).count() as u32
    } else {
        0
    };
    let reserved = match spend_invite_mail(app, &tenant.id, mails).await? {
        Ok(reserved) => reserved,
        Err(retry_after) => {
            return Err(Problem::new(
                Code::RateLimited,
                format!(
                    "This tenant may send {} invitation emails per hour; try again later or \
                     invite without email.",
                    app.config.invite_mail_per_hour
                ),
            )
            .retry_after(retry_after));
        }
    };

    let results: Vec<RowResult> = futures::stream::iter(checked)
        .map(|(raw, checked)| {
            let tenant = &tenant;
            let caller = &caller;
            async move {
                match checked {
                    Err(err) => RowResult::rejected(clip(&raw), &err),
                    Ok(candidate) => {
                        invite_one(app, caller, tenant, candidate, body.send_email).await
                    }
                }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let sent = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                RowResult::Invited {
                    email_sent: true,
                    ..
                }
            )
        })
        .count();
    reserved.settle(app, sent).await;
    Ok(http::json(200, &InviteResponse { results }))
}

/// Takes `mails` from the tenant's hourly invitation-mail budget (`INVITE_MAIL_PER_HOUR`),
/// which inviting, resending and the CSV import share: `Err(retry_after)` when they do not
/// fit. Taking them all before anything is written or sent refuses a request over the budget
/// whole; [`MailReservation::settle`] then gives back what was not sent.
pub async fn spend_invite_mail<M: Mailer>(
    app: &App<M>,
    tenant: &TenantId,
    mails: u32,
) -> Result<Result<MailReservation, u64>, crate::store::StoreError> {
    let reserved = MailReservation {
        key: format!("invite-mail#{tenant}"),
        at: now(),
        mails,
    };
    Ok(app
        .store
        .rate_limit(
            &reserved.key,
            app.config.invite_mail_per_hour,
            MAIL_WINDOW,
            mails,
            reserved.at,
        )
        .await?
        .map(|()| reserved))
}

const MAIL_WINDOW: Duration = Duration::from_secs(3600);

/// Mails taken from a tenant's hourly budget for one request (or one import batch).
#[must_use = "settle it, so that mails not sent go back to the tenant's budget"]
pub struct MailReservation {
    key: String,
    at: chrono::DateTime<chrono::Utc>,
    mails: u32,
}

impl MailReservation {
    /// Gives back the reserved mails that were not sent (rows whose address was taken, sends
    /// SES refused, renewals that lost a race), so that they do not hold the tenant back: a
    /// roster uploaded again must still mail its new people. Best effort: a failed refund is
    /// logged and the budget over-counts, which errs on the side of sending less.
    pub async fn settle<M: Mailer>(self, app: &App<M>, sent: usize) {
        let unsent = self
            .mails
            .saturating_sub(sent.try_into().unwrap_or(u32::MAX));
        if let Err(e) = app
            .store
            .rate_refund(&self.key, MAIL_WINDOW, unsent, self.at)
            .await
        {
            tracing::warn!(error = %e, key = %self.key, unsent, "mail budget refund failed");
        }
    }
}

/// Echoed emails are bounded so that a 10 KB "address" is not sent back in full.
fn clip(raw: &str) -> String {
    raw.chars().take(crate::domain::MAX_EMAIL_LEN).collect()
}

/// Creates one invited user and, if asked, mails the link. Used by the CSV import too.
pub async fn invite_one<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    candidate: Candidate,
    send_email: bool,
) -> RowResult {
    let now = now();
    let id = UserId::generate();
    let token = send_email.then(|| LinkToken::generate(&id));
    let user = invited_user(
        app,
        caller,
        tenant,
        &candidate,
        id.clone(),
        token.as_ref(),
        now,
    );
    let expires_at = user.invite_expires_at.unwrap_or(now);
    let email = candidate.email.to_string();
    let detail = Some(format!("invited as {}", candidate.role));
    let audit =
        match app
            .store
            .audit_write(&super::audit(caller, "invitation_created", &user, detail))
        {
            Ok(write) => write,
            Err(err) => {
                tracing::error!(error = %err, "audit record not built");
                return RowResult::rejected(email, &RowError::Unavailable);
            }
        };
    match app.store.create_user(&user, vec![audit]).await {
        Ok(()) => {}
        Err(CreateUserError::EmailTaken) => {
            return RowResult::rejected(email, &RowError::AlreadyExists);
        }
        Err(CreateUserError::Store(err)) => {
            tracing::warn!(error = %err, "invitation not stored");
            return RowResult::rejected(email, &RowError::Unavailable);
        }
    }
    tracing::info!(tenant = %tenant.id, user_id = %id, actor = %caller.id(), role = %candidate.role, to = %candidate.email.redacted(), "invitation created");

    let (email_sent, email_error) = match token {
        Some(token) => {
            match send_invitation(app, caller, tenant, &user, &token, expires_at).await {
                Ok(()) => (true, None),
                Err(err) => (false, Some(err)),
            }
        }
        None => (false, None),
    };
    crate::events::emit(
        app.events.as_ref(),
        &[
            LifecycleEvent::about(EventKind::InvitationCreated, &user, Actor::admin(caller))
                .with_time("expires_at", expires_at)
                .with("email_sent", email_sent),
        ],
    )
    .await;
    RowResult::Invited {
        email,
        user_id: id.to_string(),
        role: candidate.role.as_str(),
        expires_at: timestamp(expires_at),
        email_sent,
        email_error,
    }
}

/// A new invited user of `tenant`, with `token`'s hash when the link is mailed (an
/// invitation without mail gets its link later, by resend or access link).
pub fn invited_user<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    candidate: &Candidate,
    id: UserId,
    token: Option<&LinkToken>,
    now: chrono::DateTime<chrono::Utc>,
) -> User {
    let expires_at = after(now, app.config.invite_ttl);
    User {
        invite_expires_at: Some(expires_at),
        last_invite_sent_at: token.map(|_| now),
        invite_token_hash: token.map(|t| t.hash(&app.keys, Purpose::Invite).as_str().to_owned()),
        invite_via: token.map(|_| LinkVia::Email),
        invited_by: Some(caller.id().clone()),
        invited_at: Some(now),
        invited_by_email: Some(caller.user.email.clone()),
        invited_by_operator: caller.tenant().is_admin(),
        name: candidate.name.clone(),
        ..User::invited(
            id,
            tenant.id.clone(),
            candidate.email.clone(),
            candidate.role,
            now,
        )
    }
}

/// Mails an invitation link. If SES refuses, the failure is recorded on the user (the
/// invitation stays valid) and described for the admin.
pub async fn send_invitation<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    user: &User,
    token: &LinkToken,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ErrorBody> {
    let link = format!(
        "{}/accept-invite#token={}",
        app.config.links.for_tenant(&tenant.id),
        token.expose()
    );
    let mut message = mail::Mail::new(mail::Kind::Invite, &user.email, &tenant.name)
        .link(&link, expires_at)
        .branded(tenant);
    message.inviter = Some(caller.user.email.as_str());
    message.role = Some(user.role);
    let message = message.render();
    super::deliver(app, user, message, true)
        .await
        .map_err(|err| ErrorBody {
            code: err.code(),
            detail: format!(
                "{err}. The invitation is saved; resend it or hand over an access link."
            ),
        })
}
