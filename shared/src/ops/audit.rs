//! `GET /v1/tenants/{tenant}/audit`: who did what to whom, newest first. Never a token.
//! `?user_id=` narrows it to what was done to one user (a deleted one too): the history an
//! admin reads when someone says they never got their invitation.

use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::app::App;
use crate::auth;
use crate::domain::UserId;
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::store::items::timestamp;
use crate::store::{AuditEvent, Party};

#[derive(Serialize)]
struct PartyView {
    id: String,
    email: String,
}

impl From<&Party> for PartyView {
    fn from(p: &Party) -> Self {
        Self {
            id: p.id.to_string(),
            email: p.email.to_string(),
        }
    }
}

#[derive(Serialize)]
struct EventView {
    at: String,
    actor: PartyView,
    action: String,
    target: PartyView,
    detail: Option<String>,
}

impl From<&AuditEvent> for EventView {
    fn from(e: &AuditEvent) -> Self {
        Self {
            at: timestamp(e.at),
            actor: (&e.actor).into(),
            action: e.action.clone(),
            target: (&e.target).into(),
            detail: e.detail.clone(),
        }
    }
}

#[derive(Serialize)]
struct Events {
    events: Vec<EventView>,
    next_cursor: Option<String>,
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(list(app, &req).await)
}

async fn list<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let tenant = super::tenant_in_path(req)?;
    caller.require_manager_of(&tenant, "tenant")?;
    let about = http::parsed_query(
        req,
        "user_id",
        UserId::parse,
        "user_id must be the id of a user (the `id` the user list shows).",
    )?;
    let limit = http::page_limit(req)?;
    super::existing_tenant(app, &tenant).await?;
    let page = app
        .store
        .list_audit(
            &tenant,
            about.as_ref(),
            http::page_cursor(req)?.as_deref(),
            limit,
        )
        .await?;
    Ok(http::json(
        200,
        &Events {
            events: page.items.iter().map(EventView::from).collect(),
            next_cursor: page.next_cursor,
        },
    ))
}
