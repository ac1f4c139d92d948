//! `POST /v1/sessions`: sign in to one tenant with email and password.

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::{Email, TenantId, UserId, UserStatus};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::problem::{Code, Problem};
use crate::store::items::{now, timestamp};
use crate::{password, session};

/// Failed sign-ins allowed per address per window before answering 429.
pub const MAX_FAILURES: u32 = 10;
/// Failed sign-ins allowed per source IP per window, whatever the addresses. Credential
/// stuffing tries a few passwords on each of many addresses, which the per-address limit
/// never sees; a whole office behind one NAT does not mistype this often.
pub const MAX_FAILURES_PER_IP: u32 = 100;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn failures_key(email: &Email) -> String {
    format!("signin-failures#{email}")
}

fn network_failures_key(network: &str) -> String {
    format!("signin-failures-ip#{network}")
}

/// The write that lifts `email`'s sign-in lock, part of every write that sets a new password
/// (an accepted invitation, a completed reset): whoever just proved the mailbox is not the one
/// who was guessing, and the 429's detail tells a locked-out user to reset.
pub fn unlock(
    store: &crate::store::Store,
    email: &Email,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, crate::store::StoreError> {
    store.rate_window_clear(&failures_key(email), FAILURE_WINDOW, now())
}

/// Where an address stands against the failed-sign-in limit, for its admins ("the user I
/// invited can't log in"): the failures of the current window, and its end once locked.
#[derive(Serialize)]
pub struct SignInState {
    failures: u64,
    locked_until: Option<String>,
}

pub async fn sign_in_state(
    store: &crate::store::Store,
    email: &Email,
) -> Result<SignInState, crate::store::StoreError> {
    let now = now();
    let (failures, retry_after) = store
        .rate_window(&failures_key(email), FAILURE_WINDOW, now)
        .await?;
    let locked_until = (failures >= u64::from(MAX_FAILURES))
        .then(|| timestamp(now + chrono::Duration::seconds(retry_after as i64)));
    Ok(SignInState {
        failures,
        locked_until,
    })
}

/// One failure window a sign-in is held to.
struct Window<'a> {
    /// Its counter's key.
    key: &'a str,
    /// Failures after which it refuses.
    max: u32,
    /// Which limit it is, in the log and the `SignInRefused` metric.
    limit: &'static str,
    /// The 429's detail once it refuses.
    refusal: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    tenant: String,
    email: String,
    password: String,
}

#[derive(Serialize)]
struct SignedIn {
    token: String,
    expires_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("The email, password or tenant is not correct.")]
    InvalidCredentials,
}

impl From<SignInError> for Problem {
    fn from(err: SignInError) -> Self {
        match err {
            SignInError::InvalidCredentials => {
                Problem::new(Code::InvalidCredentials, err.to_string())
            }
        }
    }
}

pub async fn handle<M: Mailer>(app: &App<M>, req: Request) -> Response<Body> {
    http::respond(sign_in(app, &req).await)
}

async fn sign_in<M: Mailer>(app: &App<M>, req: &Request) -> HttpResult {
    let body: SignIn = http::json_body(req)?;
    // Every path below costs one argon2 verification, whether or not the account exists,
    // so neither the answer nor its timing tells an attacker which addresses have accounts.
    let tenant = TenantId::parse(&body.tenant).ok();
    let email = Email::parse(&body.email).ok();
    // Failed sign-ins are counted per address, whether or not it has an account, so the
    // limit slows password guessing without telling anyone which addresses exist; and per
    // source IP, so that guessing across many addresses is slowed too.
    let failures_key = email.as_ref().map(failures_key);
    let network = http::source_network(req, app.config.trusted_proxies);
    let network_key = network.as_deref().map(network_failures_key);
    let windows: Vec<Window> = [
        failures_key.as_deref().map(|key| Window {
            key,
            max: MAX_FAILURES,
            limit: "address",
            refusal: "Too many failed sign-ins for this address. Wait and try again, or reset \
                      the password with 'forgot password'.",
        }),
        network_key.as_deref().map(|key| Window {
            key,
            max: MAX_FAILURES_PER_IP,
            limit: "source",
            refusal: "Too many failed sign-ins from this network. Wait and try again.",
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let at = now();
    // A place in each window is taken before the password is checked, and given back only if
    // it was right. Reading the counts first instead would let guesses sent at once all pass
    // the check before any of them counted.
    let reserve = async {
        let Some((window, retry_after)) = take_places(app, &windows, at).await? else {
            return Ok(());
        };
        // Operators alarm on this (the template's SignInSourceLockedAlarm) and may block the
        // network upstream; the address is logged redacted only.
        tracing::warn!(
            limit = window.limit,
            network = network.as_deref().unwrap_or("unknown"),
            email = email.as_ref().map(Email::redacted).as_deref().unwrap_or(""),
            "sign-in refused: too many failed sign-ins"
        );
        crate::telemetry::metric("SignInRefused", &[("Limit", window.limit)]);
        Err(Problem::new(Code::RateLimited, window.refusal).retry_after(retry_after))
    };
    let lookup = async {
        let Some(email) = email
            .as_ref()
            .filter(|_| body.password.len() <= password::MAX_LEN * 4)
        else {
            return Ok::<_, Problem>(None);
        };
        match app.store.find_user_id(email).await? {
            Some(id) => Ok(app.store.get_user(&id).await?),
            // No account: read a user id that cannot exist, so that this path makes the same
            // reads as one with an account and its timing does not tell the two apart.
            None => {
                app.store.get_user(&UserId::generate()).await?;
                Ok(None)
            }
        }
    };
    let all_places: Vec<&str> = windows.iter().map(|w| w.key).collect();
    // The places are taken and the account read at once, one round trip sooner. A refusal
    // drops the lookup unfinished, so a 429 takes the same time whether or not the account
    // exists; a failed lookup waits for the places, to give them back.
    let ((), user) = tokio::try_join!(reserve, async { Ok(lookup.await) })?;
    let user = match user {
        Ok(user) => user,
        Err(problem) => {
            super::give_back(app, &all_places, FAILURE_WINDOW, at).await;
            return Err(problem);
        }
    };
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let candidate = body.password.clone();
    let stored = stored_hash.map(str::to_owned);
    let verification = tokio::task::spawn_blocking(move || {
        password::verify_measured(&candidate, stored.as_deref())
    })
    .await;
    let Ok((verified, hash_cpu)) = verification else {
        super::give_back(app, &all_places, FAILURE_WINDOW, at).await;
        return Err(Problem::internal());
    };
    let user = match user {
        Some(u)
            if verified && u.status == UserStatus::Active && Some(&u.tenant) == tenant.as_ref() =>
        {
            u
        }
        _ => {
            // The places taken stay taken: they are this failure's count.
            crate::telemetry::metric("SignInFailed", &[]);
            return Err(SignInError::InvalidCredentials.into());
        }
    };
    // The places go back and the sign-in is recorded for the admins' list at once; a failed
    // record is logged and does not keep the person out. Meanwhile the keyring is read again
    // if it is stale, so that the session is signed with the newest key generation.
    let (_, recorded, ()) = tokio::join!(
        super::give_back(app, &all_places, FAILURE_WINDOW, at),
        app.store.record_sign_in(&user.id, now()),
        app.keys.refresh_if_stale(),
    );
    if let Err(e) = recorded {
        tracing::warn!(user_id = %user.id, error = %e, "sign-in not recorded");
    }
    let (token, expires) = session::issue(
        &app.keys,
        user.id.as_str(),
        user.tenant.as_str(),
        user.session_version,
        chrono::Utc::now(),
        app.config.session_ttl,
    )
    .map_err(|e| {
        tracing::error!(error = %e, "session issue failed");
        Problem::internal()
    })?;
    tracing::info!(
        tenant = %user.tenant,
        user_id = %user.id,
        hash_cpu_us = hash_cpu.as_micros() as u64,
        "signed in"
    );
    Ok(http::json(
        200,
        &SignedIn {
            token,
            expires_at: timestamp(expires),
        },
    ))
}

/// Takes a place in each of `windows` at `at`. When one is past its limit, or its place
/// cannot be taken, the places taken in the others go back: a sign-in that is not checked is
/// not counted. A refusal answers the first refusing window and the seconds until it ends.
async fn take_places<'w, 'k, M: Mailer>(
    app: &App<M>,
    windows: &'w [Window<'k>],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(&'w Window<'k>, u64)>, Problem> {
    let places = futures::future::join_all(
        windows
            .iter()
            .map(|w| app.store.rate_limit(w.key, w.max, FAILURE_WINDOW, 1, at)),
    )
    .await;
    let taken: Vec<&str> = windows
        .iter()
        .zip(&places)
        .filter(|(_, place)| matches!(place, Ok(Ok(()))))
        .map(|(w, _)| w.key)
        .collect();
    if taken.len() < windows.len() {
        super::give_back(app, &taken, FAILURE_WINDOW, at).await;
    }
    let mut refused = None;
    for (window, place) in windows.iter().zip(places) {
        match place {
            Err(e) => return Err(e.into()),
            Ok(Err(retry_after)) => refused = refused.or(Some((window, retry_after))),
            Ok(Ok(())) => {}
        }
    }
    Ok(refused)
}
