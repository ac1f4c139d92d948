//! One module per operation: its request shape, its error enum, its handler.

use lambda_http::Request;

use crate::app::App;
use crate::auth::Caller;
use crate::domain::TenantId;
use crate::http;
use crate::mail::{MailError, Mailer, OutgoingMail};
use crate::problem::Problem;
use crate::store::items::now;
use crate::store::{AuditEvent, Delivery, Party, Tenant, User};

pub mod accept;
pub mod access_link;
pub mod audit;
pub mod bootstrap;
pub mod bulk;
pub mod csv_import;
pub mod delivery;
pub mod email;
pub mod imports;
pub mod invite;
pub mod links;
pub mod pages;
pub mod password;
pub mod resend;
pub mod reset;
pub mod sessions;
pub mod sweep;
pub mod tenants;
pub mod users;

/// The tenant a route's path names: a 404, like an unknown one, when it cannot be an id.
pub fn tenant_in_path(req: &Request) -> Result<TenantId, Problem> {
    http::path_param(req, "tenant")
        .and_then(|t| TenantId::parse(&t).ok())
        .ok_or_else(|| Problem::not_found("tenant"))
}

/// The stored tenant, or the 404 a route answers for one that does not exist.
pub async fn existing_tenant<M: Mailer>(app: &App<M>, id: &TenantId) -> Result<Tenant, Problem> {
    app.store
        .get_tenant(id)
        .await?
        .ok_or_else(|| Problem::not_found("tenant"))
}

/// The audit record of an admin action by `caller` on `target`.
pub fn audit(caller: &Caller, action: &str, target: &User, detail: Option<String>) -> AuditEvent {
    AuditEvent {
        at: now(),
        tenant: target.tenant.clone(),
        actor: Party::of(&caller.user),
        action: action.to_owned(),
        target: Party::of(target),
        detail,
    }
}

/// Sends a rendered mail. When SES refuses, the refusal is recorded on the user (so the admin
/// list shows it) and returned; whatever the mail was about stays stored and valid.
pub async fn deliver<M: Mailer>(
    app: &App<M>,
    user: &User,
    message: Result<OutgoingMail, MailError>,
    invitation: bool,
) -> Result<(), MailError> {
    let sent = match message {
        Ok(message) => app.mailer.send(&message.for_user(user)).await,
        Err(e) => Err(e),
    };
    let Err(err) = sent else { return Ok(()) };
    tracing::warn!(user_id = %user.id, code = err.code(), error = %err, "mail not sent");
    let at = now();
    let delivery = Delivery {
        status: "send_failed".into(),
        at,
        reason: Some(err.to_string()),
        // Millisecond precision: an SES event about an earlier mail of this same second
        // must not win over this failure.
        seq: Some({
            let precise = chrono::Utc::now();
            Delivery::seq_of(precise, precise)
        }),
    };
    if let Err(e) = app
        .store
        .record_delivery(&user.id, &delivery, invitation)
        .await
    {
        tracing::warn!(user_id = %user.id, error = %e, "could not record the failed send");
    }
    Err(err)
}

/// What the mail-sending routes answer: the link's expiry and whether the mail went out.
#[derive(serde::Serialize)]
pub struct Sent {
    pub expires_at: String,
    pub email_sent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_error: Option<invite::ErrorBody>,
}

impl Sent {
    pub fn new(
        expires_at: chrono::DateTime<chrono::Utc>,
        result: Result<(), MailError>,
        what: &str,
    ) -> Self {
        let email_error = result.err().map(|err| invite::ErrorBody {
            code: err.code(),
            detail: format!(
                "{err}. The {what} is saved; try again later or hand over an access link."
            ),
        });
        Self {
            expires_at: crate::store::items::timestamp(expires_at),
            email_sent: email_error.is_none(),
            email_error,
        }
    }
}

/// Mails of one kind that one user may be sent per hour, whoever asks.
pub const MAILS_PER_USER_PER_HOUR: u32 = 5;

/// The window of the hourly budgets.
pub const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Spends one unit of an hourly budget, or answers 429 with `Retry-After`.
pub async fn hourly_budget<M: Mailer>(
    app: &App<M>,
    key: &str,
    limit: u32,
    detail: &str,
) -> Result<(), crate::problem::Problem> {
    hourly_budget_at(app, key, limit, detail, now()).await
}

/// [`hourly_budget`] at `at`, for a caller that may give the unit back ([`give_back`] with
/// [`HOUR`] and the same `at`).
pub async fn hourly_budget_at<M: Mailer>(
    app: &App<M>,
    key: &str,
    limit: u32,
    detail: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), crate::problem::Problem> {
    match app.store.rate_limit(key, limit, HOUR, 1, at).await? {
        Ok(()) => Ok(()),
        Err(retry) => Err(
            crate::problem::Problem::new(crate::problem::Code::RateLimited, detail)
                .retry_after(retry),
        ),
    }
}

/// Gives back the unit that a [`Store::rate_limit`](crate::store::Store::rate_limit) at `at`
/// took from each of the `window`-long counters named `keys`. A unit that cannot be given back
/// stays spent, which is logged: the request's answer does not depend on it.
pub async fn give_back<M: Mailer>(
    app: &App<M>,
    keys: &[&str],
    window: std::time::Duration,
    at: chrono::DateTime<chrono::Utc>,
) {
    let refunds = keys
        .iter()
        .map(|key| app.store.rate_refund(key, window, 1, at));
    for result in futures::future::join_all(refunds).await {
        if let Err(e) = result {
            tracing::warn!(error = %e, "a rate limit's unit was not given back");
        }
    }
}

/// A link to one of the pages, for a user's tenant host.
pub fn page_link<M: Mailer>(
    app: &App<M>,
    tenant: &crate::domain::TenantId,
    page: &str,
    token: &crate::token::LinkToken,
) -> String {
    format!(
        "{}/{page}#token={}",
        app.config.links.for_tenant(tenant),
        token.expose()
    )
}
