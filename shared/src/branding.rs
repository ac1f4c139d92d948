//! Per-tenant branding of the mail: the name the mail speaks of, the sender's display name,
//! and the accent colour of its button. Each value is parsed once into a type that can only
//! hold a safe value, because all three end up in mail headers or HTML.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MAX_DISPLAY_NAME: usize = 100;
pub const MAX_SENDER_NAME: usize = 64;
/// The button colour of unbranded mail.
pub const DEFAULT_ACCENT: &str = "#2657d9";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrandingError {
    #[error("display_name must be 1 to {MAX_DISPLAY_NAME} characters without line breaks")]
    DisplayName,
    #[error(
        "sender_name must be 1 to {MAX_SENDER_NAME} characters without line breaks, quotes, backslashes or angle brackets"
    )]
    SenderName,
    #[error("accent_color must be a hex colour such as #2657d9")]
    AccentColor,
}

/// A colour `#rrggbb`, lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccentColor(String);

impl AccentColor {
    pub fn parse(raw: &str) -> Result<Self, BrandingError> {
        let raw = raw.trim();
        let hex = raw.strip_prefix('#').ok_or(BrandingError::AccentColor)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BrandingError::AccentColor);
        }
        Ok(Self(format!("#{}", hex.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The display name of the From header, e.g. `Acme Support`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderName(String);

impl SenderName {
    pub fn parse(raw: &str) -> Result<Self, BrandingError> {
        let name = raw.trim();
        let len = name.chars().count();
        let forbidden = |c: char| c.is_control() || matches!(c, '"' | '\\' | '<' | '>');
        if len == 0 || len > MAX_SENDER_NAME || name.chars().any(forbidden) {
            return Err(BrandingError::SenderName);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `"Acme Support" <no-reply@example.com>`; a non-ASCII name as an RFC 2047 encoded
    /// word, as SES requires.
    pub fn mailbox(&self, address: &str) -> String {
        if self.0.is_ascii() {
            format!("\"{}\" <{address}>", self.0)
        } else {
            let encoded = base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes());
            format!("=?UTF-8?B?{encoded}?= <{address}>")
        }
    }
}

/// The name mail uses for the tenant instead of its `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, BrandingError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 || len > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
            return Err(BrandingError::DisplayName);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        // Re-parsed when read, so a value tampered with in the table is refused.
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                <$t>::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_serde!(AccentColor);
string_serde!(SenderName);
string_serde!(DisplayName);

/// A tenant's branding; each part is optional, and mail falls back to the tenant's name,
/// the bare sender address and [`DEFAULT_ACCENT`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<SenderName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent_color: Option<AccentColor>,
}

impl Branding {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The branding fields of a request, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandingInput {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub sender_name: Option<String>,
    #[serde(default)]
    pub accent_color: Option<String>,
}

impl BrandingInput {
    pub fn parse(&self) -> Result<Branding, BrandingError> {
        Ok(Branding {
            display_name: self
                .display_name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()?,
            sender_name: self
                .sender_name
                .as_deref()
                .map(SenderName::parse)
                .transpose()?,
            accent_color: self
                .accent_color
                .as_deref()
                .map(AccentColor::parse)
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accent_colours_are_six_hex_digits_normalised_to_lower_case() {
        assert_eq!(AccentColor::parse(" #FF8800 ").unwrap().as_str(), "#ff8800");
        for bad in [
            "ff8800",
            "#fff",
            "#ff880g",
            "red",
            "#ff8800;x:y",
            "#ff8800\"><script>",
        ] {
            assert_eq!(
                AccentColor::parse(bad),
                Err(BrandingError::AccentColor),
                "{bad}"
            );
        }
    }

    #[test]
    fn sender_names_cannot_break_out_of_the_from_header() {
        for bad in [
            "",
            "a\r\nBcc: x@y.z",
            "Eve \"x\" <e@x>",
            "a\\b",
            &"x".repeat(65),
        ] {
            assert_eq!(
                SenderName::parse(bad),
                Err(BrandingError::SenderName),
                "{bad}"
            );
        }
        let ascii = SenderName::parse("Acme Support").unwrap();
        assert_eq!(
            ascii.mailbox("no-reply@example.com"),
            "\"Acme Support\" <no-reply@example.com>"
        );
        let utf8 = SenderName::parse("Équipe Acme").unwrap();
        assert_eq!(
            utf8.mailbox("no-reply@example.com"),
            "=?UTF-8?B?w4lxdWlwZSBBY21l?= <no-reply@example.com>"
        );
    }

    #[test]
    fn a_tampered_stored_value_is_refused_on_read() {
        let stored = serde_json::json!({"accent_color": "url(javascript:x)"});
        assert!(serde_json::from_value::<Branding>(stored).is_err());
    }
}
