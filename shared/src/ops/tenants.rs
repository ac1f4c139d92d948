//! `POST /v1/tenants` and `GET /v1/tenants`: customer tenants, managed by the operator's admins.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{self, Caller};
use crate::branding::{Branding, BrandingError, BrandingInput};
use crate::domain::TenantId;
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::problem::{Code, Problem};
use crate::store::Tenant;
use crate::store::items::{now, timestamp};

pub const MAX_NAME_LEN: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
    subdomain: String,
    /// Optional: how the tenant's mail looks (display name, sender name, accent colour).
    #[serde(default)]
    branding: Option<BrandingInput>,
}

#[derive(Serialize)]
pub struct TenantView {
    id: String,
    name: String,
    subdomain: String,
    created_at: String,
    branding: Branding,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            subdomain: t.id.to_string(),
            created_at: timestamp(t.created_at),
            branding: t.branding.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTenantError {
    #[error("Give the tenant a name of 1 to {MAX_NAME_LEN} characters without line breaks.")]
    InvalidName,
    #[error("{0}")]
    InvalidSubdomain(#[from] crate::domain::TenantIdError),
    #[error("A tenant with the subdomain '{0}' already exists; choose another subdomain.")]
    Exists(String),
    #[error("Branding: {0}.")]
    InvalidBranding(#[from] BrandingError),
}

impl From<CreateTenantError> for Problem {
    fn from(err: CreateTenantError) -> Self {
        let code = match err {
            CreateTenantError::InvalidName => Code::ValidationFailed,
            CreateTenantError::InvalidSubdomain(_) => Code::InvalidTenant,
            CreateTenantError::Exists(_) => Code::TenantExists,
            CreateTenantError::InvalidBranding(_) => Code::ValidationFailed,
        };
        Problem::new(code, err.to_string())
    }
}

/// Tenant display names are free text, shown in mail and pages (escaped there).
pub fn parse_name(raw: &str) -> Result<String, CreateTenantError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(CreateTenantError::InvalidName);
    }
    Ok(name.to_owned())
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(route(app, &req).await)
}

async fn route<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    caller.require_operator_admin()?;
    match *req.method() {
        Method::POST => create(app, &caller, req).await,
        Method::GET => list(app, req).await,
        _ => Err(http::method_not_allowed()),
    }
}

async fn create<M: Mailer>(app: &App<M>, caller: &Caller, req: &Request) -> HttpResult {
    let body: CreateTenant = http::json_body(req)?;
    let name = parse_name(&body.name)?;
    let id = TenantId::parse_new(body.subdomain.trim()).map_err(CreateTenantError::from)?;
    let branding = match &body.branding {
        Some(input) => input.parse().map_err(CreateTenantError::from)?,
        None => Branding::default(),
    };
    let tenant = Tenant {
        id: id.clone(),
        name,
        created_at: now(),
        created_by: Some(caller.id().clone()),
        branding,
    };
    if !app.store.create_tenant(&tenant).await? {
        return Err(CreateTenantError::Exists(id.to_string()).into());
    }
    tracing::info!(tenant = %id, actor = %caller.id(), "tenant created");
    Ok(http::json(201, &TenantView::from(&tenant)))
}

#[derive(Serialize)]
struct TenantList {
    tenants: Vec<TenantView>,
    next_cursor: Option<String>,
}

async fn list<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let limit = http::page_limit(req)?;
    let cursor = http::page_cursor(req)?;
    let page = app.store.list_tenants(cursor.as_deref(), limit).await?;
    let tenants = page.items.iter().map(TenantView::from).collect();
    Ok(http::json(
        200,
        &TenantList {
            tenants,
            next_cursor: page.next_cursor,
        },
    ))
}
