//! `POST /v1/users/{id}/access-link`: a link to copy and hand over when mail does not arrive.
//! No mail is sent. Invited or expired users get a new invitation link (the previous one
//! dies); active users get a password-reset link. Whoever follows a copied link has not
//! proved the mailbox: joining through one starts with `email_verified: false`, and a reset
//! through one leaves `email_verified` as it was.

use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::app::App;
use crate::domain::UserStatus;
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::ops::users::caller_and_target;
use crate::problem::{Code, Problem};
use crate::store::items::{after, now, timestamp};
use crate::store::{LinkVia, Reissue};
use crate::token::{LinkToken, Purpose};

#[derive(Serialize)]
struct AccessLink {
    url: String,
    expires_at: String,
    /// `invitation` or `password_reset`.
    kind: &'static str,
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(generate(app, &req).await)
}

async fn generate<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let (caller, user) = caller_and_target(app, req).await?;
    if !caller.may_assign(user.role) {
        return Err(Problem::new(
            Code::ForbiddenRole,
            "Only a team_admin can create a link for a team_admin.",
        ));
    }
    let now = now();
    let token = LinkToken::generate(&user.id);
    let base = app.config.links.for_tenant(&user.tenant);
    let (result, link) = if user.status == UserStatus::Active {
        let expires_at = after(now, app.config.reset_ttl);
        let hash = token.hash(&app.keys, Purpose::Reset);
        let audit = super::audit(&caller, "password_reset_link_created", &user, None);
        let result = app
            .store
            .issue_reset(&user, &hash, expires_at, LinkVia::Link, Some(&audit))
            .await;
        let link = AccessLink {
            url: format!("{base}/reset-password#token={}", token.expose()),
            expires_at: timestamp(expires_at),
            kind: "password_reset",
        };
        (result, link)
    } else {
        let expires_at = after(now, app.config.invite_ttl);
        let hash = token.hash(&app.keys, Purpose::Invite);
        let change = Reissue {
            hash: &hash,
            via: LinkVia::Link,
            expires_at,
            sent_at: None,
        };
        let audit = super::audit(&caller, "access_link_created", &user, None);
        let result = app.store.reissue_invite(&user, &change, Some(&audit)).await;
        let link = AccessLink {
            url: format!("{base}/accept-invite#token={}", token.expose()),
            expires_at: timestamp(expires_at),
            kind: "invitation",
        };
        (result, link)
    };
    result?;
    tracing::info!(tenant = %user.tenant, user_id = %user.id, actor = %caller.id(), kind = link.kind, "access link created");
    Ok(http::json(200, &link))
}
