//! What admins see of their users and do to them: the list (`GET /v1/tenants/{tenant}/users`),
//! one user (`GET`, `PATCH`, `DELETE /v1/users/{id}`), and cancelling up to 100 invitations
//! at once (`POST /v1/tenants/{tenant}/invitations/cancel`, [`super::bulk`]): the way back
//! from an import of the wrong file.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{self, Caller};
use crate::domain::{
    DisplayName, EmailPrefix, ImportId, MAX_EMAIL_LEN, Role, TenantId, UserId, UserStatus,
};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::problem::{Code, Problem};
use crate::store::items::{self, now, timestamp};
use crate::store::{ConditionalError, Delivery, User, UserChange, UserFilter};

#[derive(Serialize)]
pub struct DeliveryView {
    status: String,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            status: d.status.clone(),
            at: timestamp(d.at),
            reason: d.reason.clone(),
        }
    }
}

/// Who invited a user, as the viewer may see it.
#[derive(Serialize)]
#[serde(untagged)]
pub enum InvitedBy {
    /// The inviting admin (their address at the time; null for users stored before it was
    /// recorded).
    Person { id: String, email: Option<String> },
    /// Operator staff, as a customer tenant's admins see them: the operator, never who.
    Operator { operator: bool },
}

impl InvitedBy {
    fn of(user: &User, viewer: &Caller) -> Option<Self> {
        let id = user.invited_by.as_ref()?;
        Some(if user.invited_by_operator && !viewer.is_operator() {
            Self::Operator { operator: true }
        } else {
            Self::Person {
                id: id.to_string(),
                email: user.invited_by_email.as_ref().map(ToString::to_string),
            }
        })
    }
}

/// The public shape of a user. Hashes and token slots never leave the store.
#[derive(Serialize)]
pub struct UserView {
    id: String,
    tenant: String,
    email: String,
    name: Option<String>,
    role: &'static str,
    status: &'static str,
    email_verified: bool,
    created_at: String,
    invited_at: Option<String>,
    /// Who invited the user, and the CSV import they did it with: the answer to "why did
    /// this person get an invitation?" that the audit trail gives only for the invite route.
    invited_by: Option<InvitedBy>,
    import_id: Option<String>,
    /// When the pending (or lapsed) invitation expires; null once the user has joined.
    expires_at: Option<String>,
    invite_expires_at: Option<String>,
    accepted_at: Option<String>,
    last_sign_in_at: Option<String>,
    last_invite_sent_at: Option<String>,
    last_delivery: Option<DeliveryView>,
    suspended_at: Option<String>,
}

/// One user as `GET /v1/users/{id}` shows them: the list's view, and where their address
/// stands against the failed-sign-in limit (one more read, so only here, not in the list).
#[derive(Serialize)]
struct UserDetail {
    #[serde(flatten)]
    user: UserView,
    sign_in: super::sessions::SignInState,
}

/// An invitation past its expiry reads as `expired` at once, even before the sweep marks it.
pub fn effective_status(user: &User, now: chrono::DateTime<chrono::Utc>) -> UserStatus {
    match (user.status, user.invite_expires_at) {
        (UserStatus::Invited, Some(at)) if at <= now => UserStatus::Expired,
        (status, _) => status,
    }
}

impl UserView {
    /// `user` as `viewer` may see them: a customer tenant's admins see operator staff who
    /// invited someone as `{operator: true}`.
    pub fn new(user: &User, viewer: &Caller) -> Self {
        let status = effective_status(user, now());
        let pending = matches!(status, UserStatus::Invited | UserStatus::Expired);
        Self {
            id: user.id.to_string(),
            tenant: user.tenant.to_string(),
            email: user.email.to_string(),
            name: user.name.as_ref().map(ToString::to_string),
            role: user.role.as_str(),
            status: status.as_str(),
            email_verified: user.email_verified,
            created_at: timestamp(user.created_at),
            // Users stored before `invited_at` was recorded were invited when created.
            invited_at: user
                .invited_at
                .or(user.invited_by.as_ref().map(|_| user.created_at))
                .map(timestamp),
            invited_by: InvitedBy::of(user, viewer),
            import_id: user.import_id.as_ref().map(ToString::to_string),
            expires_at: user.invite_expires_at.filter(|_| pending).map(timestamp),
            invite_expires_at: user.invite_expires_at.map(timestamp),
            accepted_at: user.accepted_at.map(timestamp),
            last_sign_in_at: user.last_sign_in_at.map(timestamp),
            last_invite_sent_at: user.last_invite_sent_at.map(timestamp),
            last_delivery: user.last_delivery.as_ref().map(DeliveryView::from),
            suspended_at: user.suspended_at.map(timestamp),
        }
    }
}

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
    next_cursor: Option<String>,
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(route(app, &req).await)
}

async fn route<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    match (
        req.method().clone(),
        http::path_param(req, "id"),
        http::path_param(req, "tenant"),
    ) {
        (Method::GET, Some(id), _) => get_one(app, &caller, &id).await,
        (Method::PATCH, Some(id), _) => patch(app, &caller, &id, req).await,
        (Method::DELETE, Some(id), _) => delete(app, &caller, &id).await,
        (Method::GET, None, Some(tenant)) => list(app, &caller, &tenant, req).await,
        (Method::POST, None, Some(tenant)) => cancel_many(app, caller, &tenant, req).await,
        _ => Err(http::method_not_allowed()),
    }
}

/// `PATCH /v1/users/{id}`: any of these; an absent one is left as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    role: Option<String>,
    /// `null` (or blank) removes the name.
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
}

/// A field that is present, even as `null`, is `Some`: `{"name": null}` removes a name that
/// an absent `name` leaves alone.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Why a `PATCH /v1/users/{id}` body cannot be applied, before anything is read or written.
#[derive(Debug, thiserror::Error)]
enum PatchError {
    #[error("Send at least one of role, name.")]
    Empty,
    #[error("{0}")]
    Role(#[from] crate::domain::RoleError),
    #[error("{0} Send null to remove the name.")]
    Name(#[from] crate::domain::NameError),
}

impl From<PatchError> for Problem {
    fn from(err: PatchError) -> Self {
        let code = match err {
            PatchError::Empty => Code::ValidationFailed,
            PatchError::Role(_) => Code::InvalidRole,
            PatchError::Name(_) => Code::InvalidName,
        };
        Problem::new(code, err.to_string())
    }
}

impl UserPatch {
    /// The change this body asks for, each part parsed for `user`'s tenant.
    fn parse(self, user: &User) -> Result<UserChange, PatchError> {
        if self.role.is_none() && self.name.is_none() {
            return Err(PatchError::Empty);
        }
        let role = self
            .role
            .map(|raw| Role::parse_for(&raw, &user.tenant))
            .transpose()?;
        let name = self
            .name
            .map(|raw| DisplayName::parse_optional(raw.as_deref()))
            .transpose()?;
        Ok(UserChange { role, name })
    }
}

/// Only a team_admin may touch a team_admin, or make someone one.
fn require_may_touch(caller: &Caller, user: &User, new_role: Option<Role>) -> Result<(), Problem> {
    if caller.may_assign(user.role) && new_role.is_none_or(|r| caller.may_assign(r)) {
        Ok(())
    } else {
        Err(Problem::new(
            Code::ForbiddenRole,
            "Only a team_admin can change, delete or appoint a team_admin.",
        ))
    }
}

/// A refused conditional write: either the user changed meanwhile, or the change would have
/// removed the last active team_admin.
async fn explain_conflict<M: Mailer>(app: &App<M>, seen: &User) -> Problem {
    match app.store.get_user(&seen.id).await {
        Ok(Some(now)) if now.role == seen.role && now.status == seen.status => Problem::new(
            Code::LastTeamAdmin,
            "This is the last active team_admin; appoint another team_admin first.",
        ),
        Ok(_) => Problem::changed_concurrently(),
        Err(e) => e.into(),
    }
}

async fn patch<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    raw_id: &str,
    req: &Request,
) -> HttpResult {
    let user = load_managed(app, caller, raw_id).await?;
    let body: UserPatch = http::json_body(req)?;
    let change = body.parse(&user)?;
    require_may_touch(caller, &user, change.role)?;
    let change = change.against(&user);
    if change.is_empty() {
        return Ok(http::json(200, &UserView::new(&user, caller)));
    }
    let audits = change_audits(caller, &user, &change);
    match app.store.change_user(&user, &change, &audits, now()).await {
        Ok(()) => {}
        Err(ConditionalError::Conflict) => return Err(explain_conflict(app, &user).await),
        Err(ConditionalError::Store(e)) => return Err(e.into()),
    }
    for audit in &audits {
        tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), action = %audit.action, "user changed");
    }
    let updated = app
        .store
        .get_user(&user.id)
        .await?
        .ok_or_else(|| Problem::not_found("user"))?;
    Ok(http::json(200, &UserView::new(&updated, caller)))
}

/// One audit record per part of a change, each saying what it was before.
fn change_audits(
    caller: &Caller,
    user: &User,
    change: &UserChange,
) -> Vec<crate::store::AuditEvent> {
    let mut audits = Vec::new();
    if let Some(role) = change.role {
        let detail = format!("role {} -> {}", user.role, role);
        audits.push(crate::ops::audit(
            caller,
            "role_changed",
            user,
            Some(detail),
        ));
    }
    if let Some(name) = &change.name {
        let shown = |name: Option<&DisplayName>| match name {
            Some(name) => format!("{:?}", name.as_str()),
            None => "none".to_owned(),
        };
        let detail = format!(
            "name {} -> {}",
            shown(user.name.as_ref()),
            shown(name.as_ref())
        );
        audits.push(crate::ops::audit(
            caller,
            "name_changed",
            user,
            Some(detail),
        ));
    }
    audits
}

async fn delete<M: Mailer>(app: &App<M>, caller: &Caller, raw_id: &str) -> HttpResult {
    let user = load_managed(app, caller, raw_id).await?;
    require_may_touch(caller, &user, None)?;
    let cancelled = remove(app, caller, &user).await?;
    crate::events::emit(app.events.as_ref(), cancelled.as_slice()).await;
    Ok(http::empty(204))
}

/// Deletes `user` with its audit record. Deleting someone who has not accepted yet cancels
/// their invitation: the returned event says so, for the caller to publish.
async fn remove<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    user: &User,
) -> Result<Option<crate::events::LifecycleEvent>, Problem> {
    let was = effective_status(user, now()).as_str();
    let audit = crate::ops::audit(caller, "user_deleted", user, Some(format!("was {was}")));
    match app.store.delete_user(user, &audit).await {
        Ok(()) => {}
        Err(ConditionalError::Conflict) => return Err(explain_conflict(app, user).await),
        Err(ConditionalError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), "user deleted");
    Ok((user.status != UserStatus::Active).then(|| {
        crate::events::LifecycleEvent::about(
            crate::events::Kind::InvitationCancelled,
            user,
            crate::events::Actor::admin(caller),
        )
        .with("status", was)
    }))
}

/// One id's result in a bulk cancel.
#[derive(Serialize)]
struct CancelledRow {
    user_id: String,
    status: &'static str,
    email: String,
}

/// Cancels pending invitations only: an account someone already uses is deleted one at a
/// time, on purpose, never as a row of a list.
async fn cancel_many<M: Mailer>(
    app: &App<M>,
    caller: Caller,
    raw_tenant: &str,
    req: &Request,
) -> HttpResult {
    let batch = super::bulk::read(app, caller, req, raw_tenant, |caller, user| {
        if user.status == UserStatus::Active {
            return Err(Problem::new(
                Code::UserActive,
                "This user has already accepted the invitation; there is nothing to cancel. To remove them, DELETE /v1/users/{id}.",
            ));
        }
        require_may_touch(caller, user, None)
    })
    .await?;
    let caller = &batch.caller;
    super::bulk::run(app, batch.rows, |user| async move {
        let event = remove(app, caller, &user).await?;
        let row = CancelledRow {
            user_id: user.id.to_string(),
            status: "cancelled",
            email: user.email.to_string(),
        };
        Ok((row, event))
    })
    .await
}

/// Loads a user the caller may manage, or the 404/403 the rules call for.
pub async fn load_managed<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    raw_id: &str,
) -> Result<User, Problem> {
    let id = UserId::parse(raw_id).ok_or_else(|| Problem::not_found("user"))?;
    let user = app
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| Problem::not_found("user"))?;
    caller.require_manager_of(&user.tenant, "user")?;
    Ok(user)
}

/// The signed-in caller and the user named by the path's `{id}`, whom the caller manages.
pub async fn caller_and_target<M: Mailer>(
    app: &App<M>,
    req: &Request,
) -> Result<(Caller, User), Problem> {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let user = load_managed(
        app,
        &caller,
        &http::path_param(req, "id").unwrap_or_default(),
    )
    .await?;
    Ok((caller, user))
}

async fn get_one<M: Mailer>(app: &App<M>, caller: &Caller, raw_id: &str) -> HttpResult {
    let user = load_managed(app, caller, raw_id).await?;
    let sign_in = super::sessions::sign_in_state(&app.store, &user.email).await?;
    Ok(http::json(
        200,
        &UserDetail {
            user: UserView::new(&user, caller),
            sign_in,
        },
    ))
}

async fn list<M: Mailer>(
    app: &App<M>,
    caller: &Caller,
    raw_tenant: &str,
    req: &Request,
) -> HttpResult {
    let tenant = TenantId::parse(raw_tenant).map_err(|_| Problem::not_found("tenant"))?;
    caller.require_manager_of(&tenant, "tenant")?;
    let filter = user_filter(req)?;
    let limit = http::page_limit(req)?;
    super::existing_tenant(app, &tenant).await?;
    let cursor = http::page_cursor(req)?;
    if let (Some(prefix), Some(cursor)) = (&filter.email_prefix, &cursor)
        && !items::decode_cursor(cursor).is_some_and(|sk| prefix.is_prefix_of(&sk))
    {
        return Err(Problem::new(
            Code::ValidationFailed,
            "cursor belongs to another listing: page with the same email_prefix it came with.",
        ));
    }
    let page = app
        .store
        .list_users(&tenant, &filter, cursor.as_deref(), limit)
        .await?;
    let users = page
        .items
        .iter()
        .map(|user| UserView::new(user, caller))
        .collect();
    Ok(http::json(
        200,
        &UserList {
            users,
            next_cursor: page.next_cursor,
        },
    ))
}

/// `?status=`, `?email_prefix=`, `?import_id=` and `?email_verified=`, each optional.
/// `?status=`: one state, or several separated by commas (`invited,expired`: everyone who
/// has not joined). API Gateway joins a repeated key's values with commas, so
/// `?status=invited&status=expired` reads the same.
fn statuses(req: &Request) -> Result<Vec<UserStatus>, Problem> {
    let mut statuses = Vec::new();
    for raw in http::query_values(req, "status") {
        for part in raw.split(',') {
            let status = UserStatus::parse(part.trim()).ok_or_else(|| {
                Problem::new(
                    Code::ValidationFailed,
                    "status must be one or more of invited, active, expired, separated by commas.",
                )
            })?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
    }
    Ok(statuses)
}

fn user_filter(req: &Request) -> Result<UserFilter, Problem> {
    Ok(UserFilter {
        statuses: statuses(req)?,
        email_prefix: http::parsed_query(
            req,
            "email_prefix",
            |raw| EmailPrefix::parse(raw).ok(),
            format!(
                "email_prefix must be the start of an address: 1 to {MAX_EMAIL_LEN} characters, without line breaks or other control characters."
            ),
        )?,
        import: http::parsed_query(
            req,
            "import_id",
            ImportId::parse,
            "import_id must be the import_id of a CSV import (GET /v1/imports/{import_id}).",
        )?,
        // Exactly `true` or `false`, as `bool`'s parser takes.
        email_verified: http::parsed_query(
            req,
            "email_verified",
            |raw| raw.parse().ok(),
            "email_verified must be true or false.",
        )?,
    })
}
