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
use crate::domain::{DisplayName, Email, Role, TenantId, UserId, UserStatus};
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
    /// Rows whose address is already invited (or expired) in this tenant get a fresh
    /// invitation by mail instead of `already_invited`.
    #[serde(default)]
    resend_existing: bool,
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
    #[error(
        "This person is already invited to this tenant ({}); resend their invitation (POST /v1/users/{{id}}/resend-invitation, or invite again with resend_existing: true) instead of inviting them twice.",
        status.as_str()
    )]
    AlreadyInvited { user_id: UserId, status: UserStatus },
    #[error(
        "This person already has an account in this tenant ({}); find them in the user list.",
        status.as_str()
    )]
    AlreadyHere { user_id: UserId, status: UserStatus },
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
            Self::AlreadyExists | Self::AlreadyHere { .. } => Code::AlreadyExists.as_str(),
            Self::AlreadyInvited { .. } => Code::AlreadyInvited.as_str(),
            Self::Unavailable => Code::Unavailable.as_str(),
        }
    }

    /// The user of this tenant the row is about, and their state, when the row may say it
    /// (never for an account in another tenant).
    pub fn user(&self) -> Option<(&UserId, UserStatus)> {
        match self {
            Self::AlreadyInvited { user_id, status } | Self::AlreadyHere { user_id, status } => {
                Some((user_id, *status))
            }
            _ => None,
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
    /// The address was already invited here and `resend_existing` asked for a new mail.
    Resent {
        email: String,
        user_id: String,
        #[serde(flatten)]
        resent: super::resend::Resent,
    },
    Rejected {
        email: String,
        /// The user of this tenant the row is about (`already_invited`, `already_exists` for
        /// someone of this tenant, a resend refused for its user).
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_status: Option<&'static str>,
        error: ErrorBody,
    },
}

impl RowResult {
    fn rejected(email: String, err: &RowError) -> Self {
        Self::refused(
            email,
            err.user(),
            ErrorBody {
                code: err.code(),
                detail: err.to_string(),
            },
        )
    }

    fn refused(email: String, user: Option<(&UserId, UserStatus)>, error: ErrorBody) -> Self {
        Self::Rejected {
            email,
            user_id: user.map(|(id, _)| id.to_string()),
            user_status: user.map(|(_, status)| status.as_str()),
            error,
        }
    }

    /// Whether this row's mail went out.
    fn mailed(&self) -> bool {
        matches!(
            self,
            Self::Invited {
                email_sent: true,
                ..
            }
        ) || matches!(self, Self::Resent { resent, .. } if resent.email_sent)
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
    if body.resend_existing && !body.send_email {
        return Err(Problem::new(
            Code::ValidationFailed,
            "resend_existing mails a fresh invitation; it cannot go with send_email: false. \
             To hand over a link without mail, use POST /v1/users/{id}/access-link.",
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
                        let existing = if body.resend_existing {
                            Existing::Resend
                        } else {
                            Existing::Refuse
                        };
                        invite_one(app, caller, tenant, candidate, body.send_email, existing).await
                    }
                }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let sent = results.iter().filter(|r| r.mailed()).count();
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

/// What a row does with an address that is already invited in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Answer `already_invited`, with the user's id and state.
    Refuse,
    /// Mail them a fresh invitation, as `POST /v1/users/{id}/resend-invitation` would.
    Resend,
}

/// Whose an address that could not be claimed is, as far as a row may tell.
pub enum Taken {
    /// A pending or lapsed invitation in this tenant.
    InvitedHere(User),
    /// Someone who already has an account in this tenant.
    MemberHere(User),
    /// An account in another tenant: nothing more may be said about it.
    Elsewhere,
}

impl Taken {
    /// The row error that says this, no more.
    pub fn row_error(&self) -> RowError {
        let now = now();
        match self {
            Self::InvitedHere(user) => RowError::AlreadyInvited {
                user_id: user.id.clone(),
                status: super::users::effective_status(user, now),
            },
            Self::MemberHere(user) => RowError::AlreadyHere {
                user_id: user.id.clone(),
                status: super::users::effective_status(user, now),
            },
            Self::Elsewhere => RowError::AlreadyExists,
        }
    }
}

/// Whose `email` is, for a row of `tenant` that found it taken: `None` when nobody claims
/// it any more (the claim was released since), so the row may try again. Used by the invite
/// route, the CSV import and its preview, so that all three answer a taken address alike.
pub async fn taken_by<M: Mailer>(
    app: &App<M>,
    tenant: &TenantId,
    email: &Email,
) -> Result<Option<Taken>, crate::store::StoreError> {
    let Some((id, owner)) = app.store.claim_of(email).await? else {
        return Ok(None);
    };
    if owner != *tenant {
        return Ok(Some(Taken::Elsewhere));
    }
    Ok(app.store.get_user(&id).await?.map(|user| {
        if matches!(user.status, UserStatus::Invited | UserStatus::Expired) {
            Taken::InvitedHere(user)
        } else {
            Taken::MemberHere(user)
        }
    }))
}

/// Creates one invited user and, if asked, mails the link. An address already taken is
/// answered as [`Taken`] says, or resent to when `existing` asks for it.
pub async fn invite_one<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    candidate: Candidate,
    send_email: bool,
    existing: Existing,
) -> RowResult {
    // A claim released between the failed create and its read (a cancel, a release) is
    // free again: one more try.
    for _ in 0..2 {
        match create_one(app, caller, tenant, &candidate, send_email).await {
            Err(Created::Taken) => {}
            Ok(result) | Err(Created::Refused(result)) => return result,
        }
        let email = candidate.email.to_string();
        match taken_by(app, &tenant.id, &candidate.email).await {
            Ok(None) => continue,
            Ok(Some(Taken::InvitedHere(user))) if existing == Existing::Resend => {
                return resend_row(app, caller, tenant, email, &user).await;
            }
            Ok(Some(taken)) => return RowResult::rejected(email, &taken.row_error()),
            Err(err) => {
                tracing::warn!(error = %err, "taken address not read");
                return RowResult::rejected(email, &RowError::Unavailable);
            }
        }
    }
    RowResult::rejected(candidate.email.to_string(), &RowError::Unavailable)
}

/// A row whose address is invited here already, mailed a fresh invitation under the
/// resend route's rules (its checks, and the user's hourly resends).
async fn resend_row<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    email: String,
    user: &User,
) -> RowResult {
    let renewed = match super::resend::check(caller, user) {
        Ok(()) => {
            super::resend::renew(app, super::resend::Requester::Admin(caller), tenant, user).await
        }
        Err(problem) => Err(problem),
    };
    match renewed {
        Ok((resent, event)) => {
            crate::events::emit(app.events.as_ref(), &[event]).await;
            RowResult::Resent {
                email,
                user_id: user.id.to_string(),
                resent,
            }
        }
        Err(problem) => RowResult::refused(
            email,
            Some((&user.id, super::users::effective_status(user, now()))),
            super::bulk::row_error(&problem),
        ),
    }
}

/// Why [`create_one`] created nobody.
enum Created {
    /// The address is claimed.
    Taken,
    /// The row's answer (the store failed).
    Refused(RowResult),
}

/// Creates the user of one checked row with its audit record and mails the link if asked.
async fn create_one<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    candidate: &Candidate,
    send_email: bool,
) -> Result<RowResult, Created> {
    let now = now();
    let id = UserId::generate();
    let token = send_email.then(|| LinkToken::generate(&id));
    let user = invited_user(
        app,
        caller,
        tenant,
        candidate,
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
                return Err(Created::Refused(RowResult::rejected(
                    email,
                    &RowError::Unavailable,
                )));
            }
        };
    match app.store.create_user(&user, vec![audit]).await {
        Ok(()) => {}
        Err(CreateUserError::EmailTaken) => return Err(Created::Taken),
        Err(CreateUserError::Store(err)) => {
            tracing::warn!(error = %err, "invitation not stored");
            return Err(Created::Refused(RowResult::rejected(
                email,
                &RowError::Unavailable,
            )));
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
    Ok(RowResult::Invited {
        email,
        user_id: id.to_string(),
        role: candidate.role.as_str(),
        expires_at: timestamp(expires_at),
        email_sent,
        email_error,
    })
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

/// Mails an invitation link in `caller`'s name. If SES refuses, the failure is recorded on
/// the user (the invitation stays valid) and described for the admin.
pub async fn send_invitation<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    tenant: &Tenant,
    user: &User,
    token: &LinkToken,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ErrorBody> {
    send_invitation_from(
        app,
        Some(&caller.user.email),
        tenant,
        user,
        token,
        expires_at,
    )
    .await
}

/// [`send_invitation`] in the name of `inviter` (none: the mail names nobody).
pub async fn send_invitation_from<M: Mailer>(
    app: &App<M>,
    inviter: Option<&Email>,
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
    message.inviter = inviter.map(Email::as_str);
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
