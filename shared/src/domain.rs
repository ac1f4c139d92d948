//! Domain types, parsed once at the edge ("parse, don't validate").
//!
//! Every value that reaches the store went through one of these constructors, so an
//! unnormalised email, an unknown role or a malformed tenant id cannot be written.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest address SMTP can carry (RFC 5321 path limit minus the brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// A normalised email address: trimmed, lower-cased, syntactically valid, with a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("The email address is empty.")]
    Empty,
    #[error("The email address is longer than {MAX_EMAIL_LEN} characters.")]
    TooLong,
    #[error("The email address contains a line break or another control character.")]
    ControlCharacter,
    #[error("'{0}' is not a valid email address.")]
    Invalid(String),
}

/// Trimmed and lower-cased, after the checks every address (or part of one) must pass.
fn normalised(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(EmailError::Empty);
    }
    if trimmed.chars().count() > MAX_EMAIL_LEN {
        return Err(EmailError::TooLong);
    }
    // Header injection guard: a CR or LF must never reach a mail header.
    if trimmed.chars().any(char::is_control) {
        return Err(EmailError::ControlCharacter);
    }
    Ok(trimmed.to_lowercase())
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let lowered = normalised(raw)?;
        let trimmed = raw.trim();
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        email_address::EmailAddress::parse_with_options(&lowered, options)
            .map_err(|_| EmailError::Invalid(truncate_for_message(trimmed)))?;
        Ok(Self(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for info-level logs: the domain and the first character of the local part.
    pub fn redacted(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
            }
            None => "***".to_owned(),
        }
    }
}

fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The start of an address, as an admin types it into a search box ("bob", "Bob@Acme"),
/// normalised as [`Email`] is so that it compares with the stored, lower-cased addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailPrefix(String);

impl EmailPrefix {
    /// Any start of an address is accepted, down to one character; only what no address can
    /// hold (nothing, control characters, more than [`MAX_EMAIL_LEN`]) is refused.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        normalised(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` (an address, or a sort key that starts with one) begins with this.
    pub fn is_prefix_of(&self, text: &str) -> bool {
        text.starts_with(&self.0)
    }
}

/// Longest display name, in characters: room for any real name, too short to carry a payload.
pub const MAX_NAME_LEN: usize = 100;

/// A person's display name, as admins type it ("Ada Lovelace"): trimmed, at most
/// [`MAX_NAME_LEN`] characters, with no control character (a line break would reach a mail
/// header or a CSV cell) and no bidirectional override or isolate (which would show another
/// name than the one stored). Anything else a name can hold, any script, is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("The name is empty.")]
    Empty,
    #[error("The name is longer than {MAX_NAME_LEN} characters.")]
    TooLong,
    #[error(
        "The name contains a line break, a control character or a character that reorders text."
    )]
    Forbidden,
}

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.chars().count() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        // Cc, the line and paragraph separators, and the bidi embeddings, overrides and
        // isolates (U+202A-U+202E, U+2066-U+2069), which can make a name display as another.
        let forbidden = |c: char| {
            c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        };
        if trimmed.chars().any(forbidden) {
            return Err(NameError::Forbidden);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A name that may be left out: absent or blank (an empty form field, an empty CSV cell)
    /// is no name.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, NameError> {
        match raw {
            None => Ok(None),
            Some(raw) if raw.trim().is_empty() => Ok(None),
            Some(raw) => Self::parse(raw).map(Some),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as searches and the name order compare it: lower-cased.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant id, which is also its subdomain: a DNS label of 3 to 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error(
        "A subdomain is 3 to 40 characters of lower-case letters, digits and hyphens, and starts and ends with a letter or digit."
    )]
    Malformed,
    #[error("'{0}' is reserved; choose another subdomain.")]
    Reserved(String),
}

impl TenantId {
    /// The operator's own tenant.
    pub const ADMIN: &'static str = "admin";
    /// Host names that must never become a customer tenant.
    const RESERVED: &'static [&'static str] = &[
        "admin", "api", "www", "mail", "smtp", "auth", "login", "static", "assets", "status",
        "support", "help", "docs",
    ];

    /// Parses an id that names an existing tenant (the reserved `admin` included).
    pub fn parse(raw: &str) -> Result<Self, TenantIdError> {
        let ok_len = (3..=40).contains(&raw.len()) || raw == Self::ADMIN;
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = !raw.starts_with('-') && !raw.ends_with('-');
        if ok_len && ok_chars && ok_ends && !raw.is_empty() {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TenantIdError::Malformed)
        }
    }

    /// Parses a subdomain for a new customer tenant: reserved names are refused.
    pub fn parse_new(raw: &str) -> Result<Self, TenantIdError> {
        let id = Self::parse(raw)?;
        if Self::RESERVED.contains(&id.as_str()) {
            return Err(TenantIdError::Reserved(id.0));
        }
        Ok(id)
    }

    pub fn admin() -> Self {
        Self(Self::ADMIN.to_owned())
    }

    pub fn is_admin(&self) -> bool {
        self.0 == Self::ADMIN
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role. `team_admin` exists only in tenant `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    TeamAdmin,
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// `allowed` lists the roles of the tenant the role was meant for, when that is known.
    #[error("'{raw}' is not a role; use one of: {allowed}.")]
    Unknown { raw: String, allowed: &'static str },
    #[error("The role team_admin exists only in tenant admin; use admin or member.")]
    NotInTenant,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "team_admin" => Ok(Self::TeamAdmin),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(RoleError::Unknown {
                raw: truncate_for_message(raw),
                allowed: "team_admin, admin, member",
            }),
        }
    }

    /// Parses a role and checks that it exists in `tenant`.
    pub fn parse_for(raw: &str, tenant: &TenantId) -> Result<Self, RoleError> {
        // A customer tenant's admin should not be offered a role it cannot have.
        let role = Self::parse(raw).map_err(|e| match e {
            RoleError::Unknown { raw, .. } if !tenant.is_admin() => RoleError::Unknown {
                raw,
                allowed: "admin, member",
            },
            e => e,
        })?;
        if role == Self::TeamAdmin && !tenant.is_admin() {
            return Err(RoleError::NotInTenant);
        }
        Ok(role)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TeamAdmin => "team_admin",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Whether this role may manage users at all (the tenant scope is checked separately).
    pub fn is_manager(self) -> bool {
        matches!(self, Self::TeamAdmin | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a user is in the invitation lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Invited,
    Active,
    Expired,
}

impl UserStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "invited" => Some(Self::Invited),
            "active" => Some(Self::Active),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }
}

/// Opaque ids: 128 random bits, URL-safe base64 (22 characters, never a `.`). Each kind of
/// id is its own type, so a user id cannot be passed where an import id is meant.
macro_rules! random_id {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            pub fn generate() -> Self {
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                Self(crate::encoding::b64url(&bytes))
            }

            /// Accepts only the shape `generate` produces, so hostile path parameters never
            /// reach a key.
            pub fn parse(raw: &str) -> Option<Self> {
                let ok = raw.len() == 22
                    && raw
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                ok.then(|| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

random_id!(
    /// A user's id.
    UserId
);
random_id!(
    /// A CSV import's id (also the name of its uploaded file).
    ImportId
);

/// Serde support: values are written as their string form and re-parsed when read, so an
/// item that was tampered with in the table is refused instead of trusted.
macro_rules! string_serde {
    ($ty:ty, $parse:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(&raw).ok_or_else(|| {
                    serde::de::Error::custom(format!("invalid {}: {raw:?}", stringify!($ty)))
                })
            }
        }
    };
}

string_serde!(Email, |s| Email::parse(s).ok());
string_serde!(TenantId, |s| TenantId::parse(s).ok());
string_serde!(Role, |s| Role::parse(s).ok());
string_serde!(UserStatus, UserStatus::parse);
string_serde!(UserId, UserId::parse);
string_serde!(ImportId, ImportId::parse);
string_serde!(DisplayName, |s| DisplayName::parse(s).ok());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn hostile_or_malformed_emails_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(10_000));
        let cases: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            (&long_local, EmailError::TooLong),
            (
                "ada@example.com\r\nBcc: x@evil.test",
                EmailError::ControlCharacter,
            ),
            ("ada@exa\nmple.com", EmailError::ControlCharacter),
            ("no-at-sign", EmailError::Invalid("no-at-sign".into())),
            ("ada@localhost", EmailError::Invalid("ada@localhost".into())),
            (
                "Ada <ada@example.com>",
                EmailError::Invalid("Ada <ada@example.com>".into()),
            ),
            (
                "ada@[127.0.0.1]",
                EmailError::Invalid("ada@[127.0.0.1]".into()),
            ),
            (
                "<script>@x.com",
                EmailError::Invalid("<script>@x.com".into()),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(Email::parse(raw).as_ref(), Err(expected), "input {raw:?}");
        }
    }

    #[test]
    fn an_email_prefix_is_normalised_as_the_addresses_it_is_compared_with() {
        let stored = Email::parse("Ada.Lovelace@Example.com").unwrap();
        for typed in ["ada", "  ADA.L", "Ada.Lovelace@EXAMPLE.COM", "a"] {
            let prefix = EmailPrefix::parse(typed).unwrap();
            assert!(prefix.is_prefix_of(stored.as_str()), "{typed:?}");
        }
        for typed in ["lovelace", "ada.lovelace@example.com.au", "ada lovelace"] {
            let prefix = EmailPrefix::parse(typed).unwrap();
            assert!(!prefix.is_prefix_of(stored.as_str()), "{typed:?}");
        }
    }

    #[test]
    fn an_email_prefix_refuses_what_no_address_can_start_with() {
        let long = "a".repeat(MAX_EMAIL_LEN + 1);
        let cases: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            (" \t ", EmailError::Empty),
            (&long, EmailError::TooLong),
            ("ada\r\nbcc", EmailError::ControlCharacter),
            ("ada\u{0}", EmailError::ControlCharacter),
        ];
        for (raw, expected) in cases {
            assert_eq!(EmailPrefix::parse(raw).as_ref(), Err(expected), "{raw:?}");
        }
        assert!(EmailPrefix::parse(&"a".repeat(MAX_EMAIL_LEN)).is_ok());
    }

    #[test]
    fn a_display_name_is_trimmed_and_kept_as_written_in_any_script() {
        for (raw, kept) in [
            ("  Ada Lovelace ", "Ada Lovelace"),
            ("Zoë O'Brien-Łukasiewicz", "Zoë O'Brien-Łukasiewicz"),
            ("山田 太郎", "山田 太郎"),
            ("עדה", "עדה"),
            ("<b>Bob</b>", "<b>Bob</b>"),
        ] {
            assert_eq!(DisplayName::parse(raw).unwrap().as_str(), kept, "{raw:?}");
        }
        let longest = "é".repeat(MAX_NAME_LEN);
        assert_eq!(DisplayName::parse(&longest).unwrap().as_str(), longest);
    }

    #[test]
    fn a_display_name_refuses_what_would_hide_or_break_it() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            (" \t ", NameError::Empty),
            ("Ada\r\nBcc: x@evil.test", NameError::Forbidden),
            ("Ada\u{0}", NameError::Forbidden),
            ("Ada\u{7f}", NameError::Forbidden),
            ("Ada\u{2028}Lovelace", NameError::Forbidden),
            ("evil\u{202E}gnp.exe", NameError::Forbidden),
            ("Ada\u{2066}x\u{2069}", NameError::Forbidden),
        ];
        for (raw, expected) in cases {
            assert_eq!(DisplayName::parse(raw).as_ref(), Err(expected), "{raw:?}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(DisplayName::parse(&long), Err(NameError::TooLong));
    }

    #[test]
    fn a_blank_optional_name_is_no_name() {
        assert_eq!(DisplayName::parse_optional(None), Ok(None));
        assert_eq!(DisplayName::parse_optional(Some("   ")), Ok(None));
        assert_eq!(
            DisplayName::parse_optional(Some(" Ada "))
                .unwrap()
                .unwrap()
                .as_str(),
            "Ada"
        );
        assert!(DisplayName::parse_optional(Some("a\nb")).is_err());
    }

    #[test]
    fn redacted_email_keeps_only_first_letter_and_domain() {
        let email = Email::parse("grace@navy.mil").unwrap();
        assert_eq!(email.redacted(), "g***@navy.mil");
    }

    #[test]
    fn tenant_ids_are_dns_labels() {
        for ok in ["acme", "acme-corp", "a1b", "admin"] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "-acme",
            "acme-",
            "Acme",
            "ac_me",
            "a.b.c",
            "x".repeat(41).as_str(),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_tenants_cannot_take_reserved_subdomains() {
        assert_eq!(
            TenantId::parse_new("admin"),
            Err(TenantIdError::Reserved("admin".into()))
        );
        assert!(TenantId::parse_new("www").is_err());
        assert!(TenantId::parse_new("acme").is_ok());
    }

    #[test]
    fn team_admin_exists_only_in_the_admin_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        assert_eq!(
            Role::parse_for("team_admin", &acme),
            Err(RoleError::NotInTenant)
        );
        assert_eq!(
            Role::parse_for("team_admin", &TenantId::admin()),
            Ok(Role::TeamAdmin)
        );
        assert_eq!(Role::parse_for("Admin", &acme), Ok(Role::Admin));
        assert!(matches!(
            Role::parse("owner"),
            Err(RoleError::Unknown { .. })
        ));
    }

    #[test]
    fn an_unknown_role_is_answered_with_the_roles_of_the_tenant_it_was_meant_for() {
        let acme = TenantId::parse("acme").unwrap();
        let cases = [
            (&acme, "'owner' is not a role; use one of: admin, member."),
            (
                &TenantId::admin(),
                "'owner' is not a role; use one of: team_admin, admin, member.",
            ),
        ];
        for (tenant, message) in cases {
            let error = Role::parse_for("owner", tenant).unwrap_err();
            assert_eq!(error.to_string(), message, "tenant {tenant}");
        }
    }
    #[test]
    fn user_ids_round_trip_and_reject_other_shapes() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(id.as_str()), Some(id));
        assert_eq!(UserId::parse("../../etc/passwd"), None);
        assert_eq!(UserId::parse("a.b"), None);
    }
}
