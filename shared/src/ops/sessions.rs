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
pub const MAX_FAILURES: u64 = 10;
/// Failed sign-ins allowed per source IP per window, whatever the addresses. Credential
/// stuffing tries a few passwords on each of many addresses, which the per-address limit
/// never sees; a whole office behind one NAT does not mistype this often.
pub const MAX_FAILURES_PER_IP: u64 = 100;
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
    let locked_until = (failures >= MAX_FAILURES)
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
    max: u64,
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
    let counters: Vec<&str> = windows.iter().map(|w| w.key).collect();
    let within_limit = async {
        let (counts, retry_after) = app
            .store
            .rate_windows(&counters, FAILURE_WINDOW, now())
            .await?;
        match windows.iter().zip(counts).find(|(w, n)| *n >= w.max) {
            Some((window, _)) => {
                // Operators alarm on this (the template's SignInSourceLockedAlarm) and may
                // block the network upstream; the address is logged redacted only.
                tracing::warn!(
                    limit = window.limit,
                    network = network.as_deref().unwrap_or("unknown"),
                    email = email.as_ref().map(Email::redacted).as_deref().unwrap_or(""),
                    "sign-in refused: too many failed sign-ins"
                );
                crate::telemetry::metric("SignInRefused", &[("Limit", window.limit)]);
                Err(Problem::new(Code::RateLimited, window.refusal).retry_after(retry_after))
            }
            None => Ok(()),
        }
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
    // The window and the account are read at once, one round trip sooner. A refusal drops
    // the lookup unfinished, so a 429 takes the same time whether or not the account exists.
    let ((), user) = tokio::try_join!(within_limit, lookup)?;
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let candidate = body.password.clone();
    let stored = stored_hash.map(str::to_owned);
    let (verified, hash_cpu) = tokio::task::spawn_blocking(move || {
        password::verify_measured(&candidate, stored.as_deref())
    })
    .await
    .map_err(|_| Problem::internal())?;
    let user = match user {
        Some(u)
            if verified && u.status == UserStatus::Active && Some(&u.tenant) == tenant.as_ref() =>
        {
            u
        }
        _ => {
            // Counted without a limit (the read above refuses): a failure always lands.
            futures::future::try_join_all(counters.iter().map(|key| {
                app.store
                    .rate_limit(key, u32::MAX, FAILURE_WINDOW, 1, now())
            }))
            .await?;
            crate::telemetry::metric("SignInFailed", &[]);
            return Err(SignInError::InvalidCredentials.into());
        }
    };
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
