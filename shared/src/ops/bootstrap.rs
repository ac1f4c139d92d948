//! Creates tenant `admin` and its first `team_admin`, once. Invoked by `make dev` locally and
//! by the operator after the first deploy; later invocations change nothing.

use serde::Serialize;

use crate::app::App;
use crate::domain::{Email, Role, TenantId, UserId};
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
    let user = User::active(
        UserId::generate(),
        TenantId::admin(),
        admin.email.clone(),
        Role::TeamAdmin,
        Some(password::hash(&admin.password)?),
        now,
    );
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
