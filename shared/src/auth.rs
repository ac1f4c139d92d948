//! Who is calling, and what they may do. Every admin route goes through [`authenticate`]
//! and one of the checks here, so the rules of API.md live in one place.
//!
//! The JWT alone is not trusted for the role: the caller's item is read (consistently) on
//! every request, so a role change, a deletion or a session-version bump applies at once.

use crate::domain::{Role, TenantId, UserId, UserStatus};
use crate::problem::{Code, Problem};
use crate::secrets::Keys;
use crate::store::{Store, User};

#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
}

impl Caller {
    pub fn id(&self) -> &UserId {
        &self.user.id
    }
    pub fn tenant(&self) -> &TenantId {
        &self.user.tenant
    }
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Operator staff: a user of tenant `admin`.
    pub fn is_operator(&self) -> bool {
        self.user.tenant.is_admin()
    }

    /// May this caller see `tenant` at all? Callers who may not get a 404, never a 403,
    /// so that the existence of other tenants and their users is not revealed.
    pub fn can_see_tenant(&self, tenant: &TenantId) -> bool {
        self.is_operator() || self.user.tenant == *tenant
    }

    /// The check for every user-management route on `tenant`.
    pub fn require_manager_of(&self, tenant: &TenantId, what: &str) -> Result<(), Problem> {
        if !self.can_see_tenant(tenant) {
            return Err(Problem::not_found(what));
        }
        if !self.role().is_manager() {
            return Err(Problem::forbidden(
                "Only admins can manage users; ask an admin of this tenant.",
            ));
        }
        Ok(())
    }

    /// Tenant administration (create, list) belongs to the operator's admins.
    pub fn require_operator_admin(&self) -> Result<(), Problem> {
        if self.is_operator() && self.role().is_manager() {
            Ok(())
        } else {
            Err(Problem::forbidden(
                "Only admins of tenant admin can manage tenants.",
            ))
        }
    }

    /// Only a team_admin may give, change or remove the team_admin role.
    pub fn may_assign(&self, role: Role) -> bool {
        role != Role::TeamAdmin || self.role() == Role::TeamAdmin
    }
}

/// Resolves the bearer token to a current, active caller, or 401.
pub async fn authenticate(
    store: &Store,
    keys: &Keys,
    bearer: Option<&str>,
) -> Result<Caller, Problem> {
    let token = bearer.ok_or_else(Problem::unauthorized)?;
    // A warm instance may hold a keyring from before a rotation: read it again when it is
    // stale, or when the token names a generation it has not seen (bounded).
    keys.refresh_if_stale().await;
    let ring = match crate::session::kid_of(token) {
        Some(kid) => keys.knowing(&kid).await,
        None => keys.current(),
    };
    let claims = crate::session::verify_with(&ring, token).map_err(|e| {
        tracing::info!(reason = %e, "session token rejected");
        Problem::new(
            Code::Unauthorized,
            "The session token is invalid or has expired; sign in again.",
        )
    })?;
    let revoked = || {
        Problem::new(
            Code::Unauthorized,
            "This session is no longer valid; sign in again.",
        )
    };
    let id = UserId::parse(&claims.sub).ok_or_else(revoked)?;
    let user = store.get_user(&id).await?.ok_or_else(revoked)?;
    if user.session_version != claims.sv
        || user.status != UserStatus::Active
        || user.tenant.as_str() != claims.tid
    {
        return Err(revoked());
    }
    Ok(Caller { user })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::store::items::now;

    fn caller(tenant: &str, role: Role) -> Caller {
        Caller {
            user: User::active(
                UserId::generate(),
                TenantId::parse(tenant).unwrap(),
                Email::parse("c@example.com").unwrap(),
                role,
                None,
                now(),
            ),
        }
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn managing_users_follows_the_role_and_tenant_table() {
        // (caller tenant, caller role, target tenant, expected status or None for allowed)
        let cases = [
            ("admin", Role::TeamAdmin, "acme", None),
            ("admin", Role::Admin, "acme", None),
            ("admin", Role::Admin, "admin", None),
            ("admin", Role::Member, "acme", Some(403)),
            ("admin", Role::Member, "admin", Some(403)),
            ("acme", Role::Admin, "acme", None),
            ("acme", Role::Admin, "globex", Some(404)),
            ("acme", Role::Admin, "admin", Some(404)),
            ("acme", Role::Member, "acme", Some(403)),
            ("acme", Role::Member, "globex", Some(404)),
        ];
        for (ct, role, target, expected) in cases {
            let got = caller(ct, role)
                .require_manager_of(&tenant(target), "user")
                .err()
                .map(|p| p.status());
            assert_eq!(got, expected, "{ct}/{role} on {target}");
        }
    }

    #[test]
    fn only_operator_admins_manage_tenants() {
        assert!(
            caller("admin", Role::TeamAdmin)
                .require_operator_admin()
                .is_ok()
        );
        assert!(
            caller("admin", Role::Admin)
                .require_operator_admin()
                .is_ok()
        );
        assert_eq!(
            caller("admin", Role::Member)
                .require_operator_admin()
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            caller("acme", Role::Admin)
                .require_operator_admin()
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn only_a_team_admin_may_assign_team_admin() {
        assert!(caller("admin", Role::TeamAdmin).may_assign(Role::TeamAdmin));
        assert!(!caller("admin", Role::Admin).may_assign(Role::TeamAdmin));
        assert!(caller("admin", Role::Admin).may_assign(Role::Admin));
        assert!(caller("acme", Role::Admin).may_assign(Role::Member));
    }
}
