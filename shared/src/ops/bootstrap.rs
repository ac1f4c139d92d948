//! Creates tenant `admin` and its first `team_admin`, once. Invoked by `make dev` locally and
//! by the operator after the first deploy; later invocations change nothing.

use serde::Serialize;

use crate::app::App;
use crate::domain::{Email, Role, TenantId, UserId, UserStatus};
use crate::mail::Mailer;
use crate::password::{self, Password};
use crate::store::items::now;
use crate::store::{CreateUserError, StoreError, Tenant, User};

/// The first admin's credentials, read once at cold start.
pub struct BootstrapAdmin {
    pub email: Email,
    pub password: Password,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("environment variable {0} is required for bootstrap")]
    Missing(&'static str),
    #[error("BOOTSTRAP_ADMIN_EMAIL is invalid: {0}")]
    Email(#[from] crate::domain::EmailError),
    #[error("BOOTSTRAP_ADMIN_PASSWORD is too weak: {0}")]
    Password(#[from] password::PasswordError),
    #[error("hashing the password failed: {0}")]
    Hash(#[from] password::HashError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl BootstrapAdmin {
    pub fn from_env() -> Result<Self, BootstrapError> {
        let get = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(BootstrapError::Missing(name))
        };
        let email = Email::parse(&get("BOOTSTRAP_ADMIN_EMAIL")?)?;
        let password = Password::parse(&get("BOOTSTRAP_ADMIN_PASSWORD")?, Some(email.as_str()))?;
        Ok(Self { email, password })
    }
}

#[derive(Serialize)]
pub struct Outcome {
    pub tenant: String,
    pub email: String,
    pub created: bool,
}

pub async fn run<M: Mailer>(
    app: &App<M>,
    admin: &BootstrapAdmin,
) -> Result<Outcome, BootstrapError> {
    let now = now();
    let tenant = Tenant {
        id: TenantId::admin(),
        name: "Administration".into(),
        created_at: now,
        created_by: None,
        branding: Default::default(),
    };
    app.store.create_tenant(&tenant).await?;
    let user = User {
        id: UserId::generate(),
        tenant: TenantId::admin(),
        email: admin.email.clone(),
        role: Role::TeamAdmin,
        status: UserStatus::Active,
        email_verified: true,
        created_at: now,
        updated_at: now,
        session_version: 1,
        password_hash: Some(password::hash(&admin.password)?),
        invite_expires_at: None,
        last_invite_sent_at: None,
        invite_token_hash: None,
        spent_invite_token_hash: None,
        invite_via: None,
        reset_token_hash: None,
        reset_expires_at: None,
        spent_reset_token_hash: None,
        verify_token_hash: None,
        verify_expires_at: None,
        spent_verify_token_hash: None,
        pending_email: None,
        email_change_token_hash: None,
        email_change_expires_at: None,
        spent_email_change_token_hash: None,
        last_delivery: None,
        invited_by: None,
        import_id: None,
    };
    let count = app.store.team_admin_count_write()?;
    let created = match app.store.create_user(&user, vec![count]).await {
        Ok(()) => true,
        Err(CreateUserError::EmailTaken) => false,
        Err(CreateUserError::Store(e)) => return Err(e.into()),
    };
    tracing::info!(created, email = %admin.email.redacted(), "bootstrap admin");
    Ok(Outcome {
        tenant: TenantId::ADMIN.into(),
        email: admin.email.to_string(),
        created,
    })
}
