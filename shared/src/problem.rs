//! RFC 9457 problem responses, and the one table that maps each stable `code` to its status.
//!
//! Operations have their own error enums; each names a [`Code`] and a human `detail`, and this
//! module turns that into the response. Internal errors never carry their cause to the client.

use serde::Serialize;

/// Every error code the API can answer with. Clients branch on these strings; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidCsv,
    ValidationFailed,
    TooManyInvitations,
    InvalidEmail,
    InvalidRole,
    InvalidName,
    InvalidTenant,
    WeakPassword,
    Unauthorized,
    InvalidCredentials,
    Forbidden,
    ForbiddenRole,
    NotFound,
    TenantExists,
    UserActive,
    UserNotActive,
    LastTeamAdmin,
    LastAdmin,
    Conflict,
    AlreadyVerified,
    AlreadyExists,
    AlreadyInvited,
    QuotaExceeded,
    TokenInvalid,
    TokenExpired,
    TokenUsed,
    RateLimited,
    Unavailable,
    Internal,
}

impl Code {
    /// Every code, for documentation checks (infra/openapi.yaml lists each one).
    pub const ALL: [Code; 32] = [
        Self::MalformedJson,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::InvalidCsv,
        Self::ValidationFailed,
        Self::TooManyInvitations,
        Self::InvalidEmail,
        Self::InvalidRole,
        Self::InvalidName,
        Self::InvalidTenant,
        Self::WeakPassword,
        Self::Unauthorized,
        Self::InvalidCredentials,
        Self::Forbidden,
        Self::ForbiddenRole,
        Self::NotFound,
        Self::TenantExists,
        Self::UserActive,
        Self::UserNotActive,
        Self::LastTeamAdmin,
        Self::LastAdmin,
        Self::Conflict,
        Self::AlreadyVerified,
        Self::AlreadyExists,
        Self::AlreadyInvited,
        Self::QuotaExceeded,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenUsed,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidCsv => "invalid_csv",
            Self::ValidationFailed => "validation_failed",
            Self::TooManyInvitations => "too_many_invitations",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidRole => "invalid_role",
            Self::InvalidName => "invalid_name",
            Self::InvalidTenant => "invalid_tenant",
            Self::WeakPassword => "weak_password",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden => "forbidden",
            Self::ForbiddenRole => "forbidden_role",
            Self::NotFound => "not_found",
            Self::TenantExists => "tenant_exists",
            Self::UserActive => "user_active",
            Self::UserNotActive => "user_not_active",
            Self::LastTeamAdmin => "last_team_admin",
            Self::LastAdmin => "last_admin",
            Self::Conflict => "conflict",
            Self::AlreadyVerified => "already_verified",
            Self::AlreadyExists => "already_exists",
            Self::AlreadyInvited => "already_invited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenUsed => "token_used",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "service_unavailable",
            Self::Internal => "internal_error",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::MalformedJson
            | Self::InvalidCsv
            | Self::ValidationFailed
            | Self::TooManyInvitations
            | Self::InvalidEmail
            | Self::InvalidRole
            | Self::InvalidName
            | Self::InvalidTenant
            | Self::WeakPassword
            | Self::TokenInvalid => 400,
            Self::Unauthorized | Self::InvalidCredentials => 401,
            Self::Forbidden | Self::ForbiddenRole => 403,
            Self::NotFound => 404,
            Self::TenantExists
            | Self::AlreadyExists
            | Self::TokenUsed
            | Self::UserActive
            | Self::UserNotActive
            | Self::LastTeamAdmin
            | Self::LastAdmin
            | Self::AlreadyInvited
            | Self::QuotaExceeded
            | Self::Conflict
            | Self::AlreadyVerified => 409,
            Self::TokenExpired => 410,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::MalformedJson => "The request body is not valid JSON",
            Self::UnsupportedMediaType => "Unsupported content type",
            Self::PayloadTooLarge => "The request body is too large",
            Self::InvalidCsv => "The CSV file cannot be read",
            Self::ValidationFailed => "The request is not valid",
            Self::TooManyInvitations => "Too many invitations in one request",
            Self::InvalidEmail => "Invalid email address",
            Self::InvalidRole => "Invalid role",
            Self::InvalidName => "Invalid name",
            Self::InvalidTenant => "Invalid tenant",
            Self::WeakPassword => "The password is too weak",
            Self::Unauthorized => "Authentication required",
            Self::InvalidCredentials => "Invalid credentials",
            Self::Forbidden => "Not allowed",
            Self::ForbiddenRole => "Not allowed to assign this role",
            Self::NotFound => "Not found",
            Self::TenantExists => "The tenant already exists",
            Self::UserActive => "The user is already active",
            Self::UserNotActive => "The user has not accepted the invitation yet",
            Self::LastTeamAdmin => "The last team_admin cannot be removed",
            Self::LastAdmin => "The tenant's last active admin cannot be removed",
            Self::Conflict => "Changed at the same time",
            Self::AlreadyVerified => "The address is already verified",
            Self::AlreadyExists => "The user already exists",
            Self::AlreadyInvited => "The person is already invited",
            Self::QuotaExceeded => "The tenant's quota is reached",
            Self::TokenInvalid => "The link is not valid",
            Self::TokenExpired => "The link has expired",
            Self::TokenUsed => "The link has already been used",
            Self::RateLimited => "Too many requests",
            Self::Unavailable => "Temporarily unavailable",
            Self::Internal => "Internal error",
        }
    }
}

/// A problem ready to be sent. `detail` is always a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: Code,
    pub detail: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl Problem {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn internal() -> Self {
        Self::new(
            Code::Internal,
            "Something went wrong on our side. Try again in a moment.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            Code::Unavailable,
            "The service is busy or a dependency is unavailable. Retry after the indicated time.",
        )
        .retry_after(2)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            Code::Unauthorized,
            "Sign in with POST /v1/sessions and send the token as 'Authorization: Bearer <token>'.",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            Code::NotFound,
            format!("No {what} with that id exists, or you cannot see it."),
        )
    }

    /// A conditional write found the user changed since it was read.
    pub fn changed_concurrently() -> Self {
        Self::new(
            Code::Conflict,
            "This user changed at the same moment (another admin's change, an accept, a resend or a deletion). Reload the user and try again.",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, detail)
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn to_json(&self) -> String {
        let body = ProblemBody {
            kind: format!("https://latchkey.dev/problems/{}", self.code.as_str()),
            title: self.code.title(),
            status: self.status(),
            detail: &self.detail,
            code: self.code.as_str(),
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"))
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(err: crate::store::StoreError) -> Self {
        if err.is_transient() {
            tracing::warn!(error = %err, "store unavailable");
            Self::unavailable()
        } else {
            tracing::error!(error = %err, "store failure");
            Self::internal()
        }
    }
}

/// Routes that can say more of a lost race (a link already spent, the last team_admin) match
/// `Conflict` themselves; everywhere else the caller is told to reload and retry.
impl From<crate::store::ConditionalError> for Problem {
    fn from(err: crate::store::ConditionalError) -> Self {
        match err {
            crate::store::ConditionalError::Conflict => Self::changed_concurrently(),
            crate::store::ConditionalError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_has_the_rfc_9457_members_and_the_code() {
        let json: serde_json::Value =
            serde_json::from_str(&Problem::new(Code::TokenExpired, "Ask again.").to_json())
                .unwrap();
        assert_eq!(json["status"], 410);
        assert_eq!(json["code"], "token_expired");
        assert_eq!(json["detail"], "Ask again.");
        assert_eq!(json["title"], "The link has expired");
        assert!(json["type"].as_str().unwrap().ends_with("/token_expired"));
    }

    #[test]
    fn a_write_that_lost_a_race_asks_for_a_reload_and_a_retry() {
        let problem = Problem::from(crate::store::ConditionalError::Conflict);
        assert_eq!(problem.status(), 409);
        let json: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(json["code"], "conflict");
        assert!(json["detail"].as_str().unwrap().contains("Reload the user"));
    }
}
