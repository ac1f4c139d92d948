//! The CSV import's routes: `GET /v1/imports/template.csv` (public);
//! `POST /v1/tenants/{tenant}/imports/preview`, which says what an import of the file would do
//! to each row without writing anything; `POST /v1/tenants/{tenant}/imports`, which creates
//! an import and hands out a presigned URL to upload its file to (the upload starts function
//! `csv-import`, [`super::csv_import`]); and `GET /v1/imports/{import_id}`, its progress.
//!
//! The preview applies exactly the invite route's row checks ([`invite::check_row`], same
//! codes), plus `already_exists` for addresses that already have an account.

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth;
use crate::config::ImportConfig;
use crate::csv_rows::{CsvError, CsvRow, CsvRows};
use crate::domain::{ImportId, MAX_EMAIL_LEN};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::ops::csv_import;
use crate::ops::invite::{self, ErrorBody, RowError};
use crate::problem::{Code, Problem};
use crate::store::imports::{Counts, Import, ImportStatus, RowErrorEntry};
use crate::store::items::{after, now, timestamp};
use crate::uploads::{self, Uploads};

/// The downloadable example file.
pub const TEMPLATE_CSV: &str = "email,role\r\nada@example.com,member\r\n";
/// Data rows a preview accepts (the S3 import takes more).
pub const MAX_PREVIEW_ROWS: usize = 5_000;
/// Largest preview body, in bytes.
pub const MAX_PREVIEW_BYTES: usize = 1024 * 1024;
/// Account look-ups in flight at once.
const CONCURRENCY: usize = 16;
/// Media types accepted for the CSV body (parameters such as `charset` aside).
const CSV_MEDIA_TYPES: [&str; 3] = ["text/csv", "application/csv", "text/plain"];

#[derive(Serialize)]
struct PreviewRow {
    line: u64,
    email: String,
    role: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl PreviewRow {
    fn new(row: &CsvRow, outcome: Result<(), RowError>) -> Self {
        let (status, error) = match outcome {
            Ok(()) => ("ok", None),
            Err(err) => (
                "rejected",
                Some(ErrorBody {
                    code: err.code(),
                    detail: err.to_string(),
                }),
            ),
        };
        Self {
            line: row.line,
            email: clip(&row.email),
            role: row.role.as_deref().map(clip),
            status,
            error,
        }
    }
}

#[derive(Serialize)]
struct Preview {
    rows: Vec<PreviewRow>,
    ok: usize,
    rejected: usize,
}

/// What the `imports` function builds once: the app, and the upload bucket.
pub struct Imports<M: Mailer = crate::mail::SesMailer> {
    pub app: App<M>,
    pub uploads: Uploads,
    pub config: ImportConfig,
}

/// How long an upload URL works, and a report URL.
const URL_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// Imports one tenant may start per hour.
const IMPORTS_PER_HOUR: u32 = 30;

pub async fn handle<M: Mailer>(imports: &Imports<M>, req: Request) -> Response<Body> {
    let app = &imports.app;
    let path = req.uri().path().trim_end_matches('/');
    let result = match (req.method(), path) {
        (&Method::GET, "/v1/imports/template.csv") => Ok(template()),
        (&Method::POST, p) if p.starts_with("/v1/tenants/") && p.ends_with("/imports/preview") => {
            preview(app, &req).await
        }
        (&Method::POST, p) if p.starts_with("/v1/tenants/") && p.ends_with("/imports") => {
            create(imports, &req).await
        }
        (&Method::GET, p) if p.starts_with("/v1/imports/") => status(imports, &req).await,
        _ => Err(http::method_not_allowed()),
    };
    http::respond(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(default = "default_true")]
    send_email: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize)]
struct Created {
    import_id: String,
    upload_url: String,
    expires_at: String,
    max_bytes: u64,
    max_rows: u64,
}

async fn create<M: Mailer>(imports: &Imports<M>, req: &Request) -> HttpResult {
    let app = &imports.app;
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let tenant = super::tenant_in_path(req)?;
    caller.require_manager_of(&tenant, "tenant")?;
    let body: CreateRequest = http::json_body(req)?;
    let tenant = super::existing_tenant(app, &tenant).await?;
    let now = now();
    if let Err(retry_after) = app
        .store
        .rate_limit(
            &format!("imports#{}", tenant.id),
            IMPORTS_PER_HOUR,
            Duration::from_secs(3600),
            1,
            now,
        )
        .await?
    {
        return Err(Problem::new(
            Code::RateLimited,
            format!("A tenant may start {IMPORTS_PER_HOUR} imports per hour; try again later."),
        )
        .retry_after(retry_after));
    }
    let import = Import {
        id: ImportId::generate(),
        tenant: tenant.id.clone(),
        created_by: caller.id().clone(),
        send_email: body.send_email,
        status: ImportStatus::WaitingForUpload,
        created_at: now,
        upload_expires_at: after(now, URL_VALIDITY),
        finished_at: None,
        counts: Counts::default(),
        errors: Vec::new(),
        failure: None,
        checkpoint: None,
        report_key: None,
        report_progress: None,
        lease_owner: None,
    };
    let key = uploads::upload_key(&tenant.id, &import.id);
    let upload_url = imports
        .uploads
        .presign_put(&key, URL_VALIDITY)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "upload URL not signed");
            Problem::unavailable()
        })?;
    app.store.create_import(&import).await?;
    tracing::info!(tenant = %tenant.id, import_id = %import.id, actor = %caller.id(), "import created");
    Ok(http::json(
        201,
        &Created {
            import_id: import.id.to_string(),
            upload_url,
            expires_at: timestamp(import.upload_expires_at),
            max_bytes: imports.config.max_bytes,
            max_rows: csv_import::MAX_ROWS,
        },
    ))
}

#[derive(Serialize)]
struct StatusView {
    import_id: String,
    tenant: String,
    /// The admin who started the import; its rows are invited in their name.
    created_by: String,
    status: &'static str,
    send_email: bool,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    total: u64,
    invited: u64,
    rejected: u64,
    emails_sent: u64,
    errors: Vec<RowErrorEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_url: Option<String>,
}

async fn status<M: Mailer>(imports: &Imports<M>, req: &Request) -> HttpResult {
    let app = &imports.app;
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let import = match http::path_param(req, "import_id").and_then(|id| ImportId::parse(&id)) {
        Some(id) => app.store.get_import(&id).await?,
        None => None,
    }
    .ok_or_else(|| Problem::not_found("import"))?;
    caller.require_manager_of(&import.tenant, "import")?;
    let report_url = match &import.report_key {
        Some(key) => Some(
            imports
                .uploads
                .presign_get(key, URL_VALIDITY)
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "report URL not signed");
                    Problem::unavailable()
                })?,
        ),
        None => None,
    };
    Ok(http::json(
        200,
        &StatusView {
            import_id: import.id.to_string(),
            tenant: import.tenant.to_string(),
            created_by: import.created_by.to_string(),
            status: import.status.as_str(),
            send_email: import.send_email,
            created_at: timestamp(import.created_at),
            upload_expires_at: (import.status == ImportStatus::WaitingForUpload)
                .then(|| timestamp(import.upload_expires_at)),
            finished_at: import.finished_at.map(timestamp),
            total: import.counts.total,
            invited: import.counts.invited,
            rejected: import.counts.rejected,
            emails_sent: import.counts.mailed,
            errors: import.errors,
            failure: import.failure,
            report_url,
        },
    ))
}

fn template() -> Response<Body> {
    let mut resp = Response::new(Body::Text(TEMPLATE_CSV.to_owned()));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"invitations-template.csv\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn preview<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let caller = auth::authenticate(&app.store, &app.keys, http::bearer_token(req)).await?;
    let tenant = super::tenant_in_path(req)?;
    caller.require_manager_of(&tenant, "tenant")?;
    let body = csv_body(req)?;
    let tenant = super::existing_tenant(app, &tenant).await?;

    let mut seen = HashSet::new();
    let mut checked = Vec::new();
    for row in CsvRows::new(body)
        .map_err(csv_problem)?
        .max_rows(MAX_PREVIEW_ROWS)
    {
        let row = row.map_err(csv_problem)?;
        let result = invite::check_row(
            &row.email,
            row.role.as_deref(),
            None,
            &tenant.id,
            &caller,
            &mut seen,
        );
        checked.push((row, result));
    }

    let rows: Vec<PreviewRow> = futures::stream::iter(checked)
        .map(|(row, checked)| async move {
            let outcome = match checked {
                Err(err) => Err(err),
                Ok(candidate) => match app.store.find_user_id(&candidate.email).await? {
                    Some(_) => Err(RowError::AlreadyExists),
                    None => Ok(()),
                },
            };
            Ok::<_, Problem>(PreviewRow::new(&row, outcome))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let ok = rows.iter().filter(|r| r.error.is_none()).count();
    let rejected = rows.len() - ok;
    Ok(http::json(200, &Preview { rows, ok, rejected }))
}

/// The raw CSV body, after its content type and size are checked.
fn csv_body(req: &Request) -> Result<&[u8], Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or("").trim();
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8")
                || value.eq_ignore_ascii_case("utf8")
                || value.eq_ignore_ascii_case("us-ascii")
        }
        _ => true,
    });
    if !CSV_MEDIA_TYPES
        .iter()
        .any(|t| media_type.eq_ignore_ascii_case(t))
        || !utf8
    {
        return Err(Problem::new(
            Code::UnsupportedMediaType,
            "Send the file as UTF-8 CSV with 'Content-Type: text/csv'.",
        ));
    }
    let bytes = http::body_bytes(req);
    if bytes.len() > MAX_PREVIEW_BYTES {
        return Err(Problem::new(
            Code::PayloadTooLarge,
            format!(
                "A preview takes files up to {MAX_PREVIEW_BYTES} bytes (1 MiB); split the file."
            ),
        ));
    }
    Ok(bytes)
}

fn csv_problem(err: CsvError) -> Problem {
    Problem::new(Code::InvalidCsv, err.to_string())
}

/// Echoed cells are bounded so that a 10 KB cell is not sent back in full.
fn clip(raw: &str) -> String {
    raw.chars().take(MAX_EMAIL_LEN).collect()
}
