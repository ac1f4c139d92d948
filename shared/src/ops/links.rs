//! The steps every followed link shares once its handler has found the user: setting the
//! password it carries, and saying what a link means after its write lost a race.
//!
//! Each route keeps its own error enum (an invitation's wording is not a reset's); these
//! helpers only take the enum's "not valid" value and a check that classifies a user.

use serde::Serialize;

use crate::app::App;
use crate::domain::UserId;
use crate::events::{self, Actor, LifecycleEvent};
use crate::http::{self, HttpResult};
use crate::mail::Mailer;
use crate::password::{self, Password, PasswordError};
use crate::problem::Problem;
use crate::secrets::Keyring;
use crate::store::items::now;
use crate::store::{ConditionalError, User};
use crate::token::{Purpose, TokenHash};

/// The links whose holder chooses a password.
#[derive(Debug, Clone, Copy)]
pub enum PasswordLink {
    /// Accepting an invitation: the account becomes active.
    Invite,
    /// Completing a reset: the account keeps its state, with a new password.
    Reset,
}

impl PasswordLink {
    fn event(self) -> events::Kind {
        match self {
            Self::Invite => events::Kind::InvitationAccepted,
            Self::Reset => events::Kind::PasswordResetCompleted,
        }
    }

    /// The log line operators search for.
    fn done(self) -> &'static str {
        match self {
            Self::Invite => "invitation accepted",
            Self::Reset => "password reset completed",
        }
    }
}

/// The keyring to check a presented link against `user`'s slots of `purposes`: read again if it
/// is stale, or (bounded) if a stored hash names a key generation this instance has not seen
/// (a link issued by an instance that noticed a rotation first).
pub async fn keyring_for<M: Mailer>(
    app: &App<M>,
    user: &User,
    purposes: &[Purpose],
) -> std::sync::Arc<Keyring> {
    app.keys.refresh_if_stale().await;
    let mut ring = app.keys.current();
    for purpose in purposes {
        let slot = user.link_slot(*purpose);
        for stored in [slot.hash, slot.spent].into_iter().flatten() {
            let kid = TokenHash::kid_of(stored);
            if ring.get(kid).is_none() {
                ring = app.keys.knowing(kid).await;
            }
        }
    }
    ring
}

/// Who the link belonged to, as the pages need it to offer sign-in.
#[derive(Serialize)]
struct Account {
    user_id: String,
    tenant: String,
}

/// Checks the chosen password, then spends the link and stores the password's argon2id hash
/// in one conditional write (which also lifts a sign-in lockout: the holder proved the
/// mailbox). `check` is what the route decided of `user` before; it runs again on the user
/// as it stands if the write loses a race, so the answer names what happened.
pub async fn set_password<M: Mailer, E>(
    app: &App<M>,
    link: PasswordLink,
    user: &User,
    hash: &TokenHash,
    chosen: &str,
    check: impl Fn(&User) -> Result<(), E>,
    invalid: E,
) -> HttpResult
where
    E: From<PasswordError> + Clone,
    Problem: From<E>,
{
    let password = Password::parse(chosen, Some(user.email.as_str())).map_err(E::from)?;
    let phc = password::hash_off_thread(password).await?;
    let unlock = super::sessions::unlock(&app.store, &user.email)?;
    let written = match link {
        PasswordLink::Invite => {
            app.store
                .activate_invited(user, hash, &phc, now(), vec![unlock])
                .await
        }
        PasswordLink::Reset => {
            app.store
                .complete_reset(user, hash, &phc, now(), vec![unlock])
                .await
        }
    };
    match written {
        Ok(()) => {
            tracing::info!(tenant = %user.tenant, user_id = %user.id, "{}", link.done());
            events::emit(
                app.events.as_ref(),
                &[LifecycleEvent::about(link.event(), user, Actor::Subject)],
            )
            .await;
            Ok(http::json(
                200,
                &Account {
                    user_id: user.id.to_string(),
                    tenant: user.tenant.to_string(),
                },
            ))
        }
        Err(ConditionalError::Conflict) => {
            recheck(app, &user.id, check, invalid.clone()).await?;
            Err(invalid.into())
        }
        Err(ConditionalError::Store(e)) => Err(e.into()),
    }
}

/// After a link's conditional write lost to a concurrent change (a second use, a newer link,
/// an expiry, a deletion), reads the user again: the link's own error if it is no longer
/// live, `Ok` if it still looks live and the caller must say what else changed.
pub async fn recheck<M: Mailer, E>(
    app: &App<M>,
    id: &UserId,
    check: impl Fn(&User) -> Result<(), E>,
    invalid: E,
) -> Result<(), Problem>
where
    Problem: From<E>,
{
    let current = app.store.get_user(id).await?.ok_or(invalid)?;
    check(&current)?;
    Ok(())
}
