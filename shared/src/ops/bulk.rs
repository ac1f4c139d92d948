//! Requests that act on many users of one tenant at once: `{"user_ids": [...]}`, up to
//! [`MAX_USERS`] (one page of the user list), answered with one result per id, in order, as
//! the invite route answers per row. Each id is handled as the one-user route would handle
//! it, and a row's problem never affects another row.
//!
//! Used by the bulk resend (`POST /v1/tenants/{tenant}/invitations/resend`) and the bulk
//! cancel (`POST /v1/tenants/{tenant}/invitations/cancel`).

use std::collections::HashSet;
use std::future::Future;

use futures::StreamExt;
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{TenantId, UserId};
use crate::events::LifecycleEvent;
use crate::http;
use crate::mail::Mailer;
use crate::ops::invite::ErrorBody;
use crate::problem::{Code, Problem};
use crate::store::{Tenant, User};

/// Users per request: one page of the user list.
pub const MAX_USERS: usize = 100;
/// Users acted on at once, as the invite route does.
const CONCURRENCY: usize = 16;
/// Echoed ids are bounded, as echoed emails are in the invite route.
const MAX_ECHOED_ID: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserIds {
    user_ids: Vec<String>,
}

/// One id's result: what the operation did (`T`, which carries its own `status`), or why
/// it did nothing.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Row<T> {
    Done(T),
    Rejected {
        user_id: String,
        status: &'static str,
        error: ErrorBody,
    },
}

impl<T> Row<T> {
    fn rejected(user_id: &str, error: ErrorBody) -> Self {
        Self::Rejected {
            user_id: user_id.chars().take(MAX_ECHOED_ID).collect(),
            status: "rejected",
            error,
        }
    }
}

#[derive(Serialize)]
struct Results<T> {
    results: Vec<Row<T>>,
}

/// A request's users, read and checked, before anything is written.
pub struct Batch {
    pub caller: Caller,
    pub tenant: Tenant,
    /// Each id as sent, with its user or the reason it is rejected.
    pub rows: Vec<(String, Result<User, ErrorBody>)>,
}

impl Batch {
    /// How many rows passed every check.
    pub fn ready(&self) -> usize {
        self.rows.iter().filter(|(_, row)| row.is_ok()).count()
    }
}

/// Checks that `caller` manages `raw_tenant`, reads the body's ids and their users (one
/// `BatchGetItem`), and checks each with `check`, the one-user route's rules. A malformed
/// id, an unknown one and another tenant's user get the same `not_found` row: a row never
/// tells whether an id exists elsewhere.
pub async fn read<M: Mailer>(
    app: &App<M>,
    caller: Caller,
    req: &Request,
    raw_tenant: &str,
    check: impl Fn(&Caller, &User) -> Result<(), Problem>,
) -> Result<Batch, Problem> {
    let tenant = TenantId::parse(raw_tenant).map_err(|_| Problem::not_found("tenant"))?;
    caller.require_manager_of(&tenant, "tenant")?;
    let body: UserIds = http::json_body(req)?;
    if body.user_ids.is_empty() {
        return Err(Problem::new(
            Code::ValidationFailed,
            "user_ids is empty; send the ids of the users to act on.",
        ));
    }
    if body.user_ids.len() > MAX_USERS {
        return Err(Problem::new(
            Code::ValidationFailed,
            format!(
                "At most {MAX_USERS} users per request ({} sent), one page of the user list; split them.",
                body.user_ids.len()
            ),
        ));
    }
    let tenant = super::existing_tenant(app, &tenant).await?;

    let ids: Vec<Option<UserId>> = body.user_ids.iter().map(|raw| UserId::parse(raw)).collect();
    let wanted: Vec<UserId> = ids.iter().flatten().cloned().collect();
    let mut users = app.store.get_users(&wanted).await?;
    let not_found = || ErrorBody {
        code: Code::NotFound.as_str(),
        detail: "No user with this id in this tenant.".to_owned(),
    };
    let mut seen = HashSet::new();
    let checked: Vec<Result<User, ErrorBody>> = ids
        .iter()
        .map(|id| {
            let id = id.as_ref().ok_or_else(not_found)?;
            if !seen.insert(id) {
                return Err(ErrorBody {
                    code: "duplicate_in_request",
                    detail: "This id appears earlier in the same request; it is acted on once."
                        .to_owned(),
                });
            }
            let user = users
                .remove(id)
                .filter(|user| user.tenant == tenant.id)
                .ok_or_else(not_found)?;
            check(&caller, &user).map_err(|p| row_error(&p))?;
            Ok(user)
        })
        .collect();
    Ok(Batch {
        caller,
        tenant,
        rows: body.user_ids.into_iter().zip(checked).collect(),
    })
}

/// Acts on each row that passed its checks, [`CONCURRENCY`] at a time, and answers 200 with
/// the results in order. The events the rows return are published after them, in batches.
/// `act` answers a row with what it did, or with the problem the one-user route would
/// answer, which becomes the row's error.
pub async fn run<M, T, F, Fut>(
    app: &App<M>,
    rows: Vec<(String, Result<User, ErrorBody>)>,
    act: F,
) -> http::HttpResult
where
    M: Mailer,
    T: Serialize,
    F: Fn(User) -> Fut,
    Fut: Future<Output = Result<(T, Option<LifecycleEvent>), Problem>>,
{
    let act = &act;
    let outcomes: Vec<(Row<T>, Option<LifecycleEvent>)> = futures::stream::iter(rows)
        .map(|(raw, checked)| async move {
            let user = match checked {
                Ok(user) => user,
                Err(error) => return (Row::rejected(&raw, error), None),
            };
            match act(user).await {
                Ok((done, event)) => (Row::Done(done), event),
                Err(problem) => (Row::rejected(&raw, row_error(&problem)), None),
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let (results, events): (Vec<Row<T>>, Vec<Option<LifecycleEvent>>) =
        outcomes.into_iter().unzip();
    let events: Vec<LifecycleEvent> = events.into_iter().flatten().collect();
    crate::events::emit(app.events.as_ref(), &events).await;
    Ok(http::json(200, &Results { results }))
}

/// A row's share of a problem the one-user route would answer with. The route-level texts
/// of 503 and 500 speak of "the indicated time", which a row has no header for.
pub fn row_error(problem: &Problem) -> ErrorBody {
    let detail = match (problem.code, problem.retry_after) {
        (Code::Unavailable | Code::Internal, _) => {
            "This could not be done right now; retry this user.".to_owned()
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
