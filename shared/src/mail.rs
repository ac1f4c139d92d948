//! Outgoing mail: templates rendered to HTML and plain text, sent through SES v2.
//!
//! The [`Mailer`] trait is as narrow as the `ses:SendEmail` permission the sending functions
//! get; tests of the rules may use a fake, and the end-to-end tests read what moto received.

use std::future::Future;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use chrono::{DateTime, Utc};
use minijinja::{Environment, context};

use crate::domain::{Email, Role};

pub struct OutgoingMail {
    pub to: Email,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// The display name of the From header (the tenant's sender name), if any.
    pub from_name: Option<crate::branding::SenderName>,
    /// SES message tags, echoed in the delivery events of the configuration set: how
    /// `ops::delivery` finds the user a bounce is about. Values are ids, never addresses.
    pub tags: Vec<(&'static str, String)>,
}

impl OutgoingMail {
    /// Tags the mail with the user it is for (and their tenant).
    pub fn for_user(mut self, user: &crate::store::User) -> Self {
        self.tags
            .push((crate::ops::delivery::USER_TAG, user.id.to_string()));
        self.tags.push(("tenant", user.tenant.to_string()));
        self
    }
}

/// SES accepts tag names and values of ASCII letters, digits, `_` and `-` only (max 256).
fn valid_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a mail was not sent; the reason is safe to show to an admin.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the mail service refused the message: {0}")]
    Rejected(String),
    #[error("the mail service is unavailable or throttling: {0}")]
    Unavailable(String),
    #[error("the mail could not be rendered: {0}")]
    Template(String),
}

impl MailError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "email_rejected",
            Self::Unavailable(_) => "email_unavailable",
            Self::Template(_) => "email_template",
        }
    }
}

/// How long SES may take over one send before the mail counts as not sent (and the caller
/// is told so): it answers in well under a second, and a function has 10 s in all (the
/// template's `Timeout`), shared with its reads and writes. The SDK retries within this.
///
/// There is deliberately no per-attempt timeout: SendEmail takes no idempotency token, so an
/// attempt abandoned while SES was slowly accepting it, then retried, mails the person twice
/// (seen under load: an import's rerun test caught a duplicate). The SDK still retries what
/// SES answered with throttling or a transient error.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

fn send_timeouts() -> aws_sdk_sesv2::config::timeout::TimeoutConfig {
    aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
        .operation_timeout(SEND_TIMEOUT)
        .build()
}

pub trait Mailer: Send + Sync {
    fn send(&self, mail: &OutgoingMail) -> impl Future<Output = Result<(), MailError>> + Send;
}

/// The mailer of a function whose role may not send mail (no `ses:SendEmail` in
/// `infra/template.yaml`). It holds no SES client, so the function's binary links none and
/// starts sooner. None of those functions' routes sends mail; were one to, it would be
/// refused here as SES would refuse the role.
pub struct NoMail;

impl Mailer for NoMail {
    async fn send(&self, _: &OutgoingMail) -> Result<(), MailError> {
        Err(MailError::Rejected(
            "this function is not allowed to send mail".into(),
        ))
    }
}

pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: Email,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: Email) -> Self {
        Self {
            client,
            from,
            configuration_set: None,
        }
    }

    /// Sends every mail with this SES configuration set, whose event destination publishes
    /// sends, deliveries, bounces and complaints (see `ops::delivery`).
    pub fn with_configuration_set(mut self, name: Option<String>) -> Self {
        self.configuration_set = name;
        self
    }
}

fn content(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Template(e.to_string()))
}

impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(
                Body::builder()
                    .html(content(&mail.html)?)
                    .text(content(&mail.text)?)
                    .build(),
            )
            .build();
        let tags = mail
            .tags
            .iter()
            .filter(|(name, value)| valid_tag(name) && valid_tag(value))
            .map(|(name, value)| {
                aws_sdk_sesv2::types::MessageTag::builder()
                    .name(*name)
                    .value(value)
                    .build()
                    .map_err(|e| MailError::Template(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let from = match &mail.from_name {
            Some(name) => name.mailbox(self.from.as_str()),
            None => self.from.as_str().to_owned(),
        };
        let result = self
            .client
            .send_email()
            .set_configuration_set_name(self.configuration_set.clone())
            .set_email_tags((!tags.is_empty()).then_some(tags))
            .from_email_address(from)
            .destination(
                Destination::builder()
                    .to_addresses(mail.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .customize()
            .config_override(
                aws_sdk_sesv2::config::Builder::default().timeout_config(send_timeouts()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => {
                let code = e.err().code().unwrap_or("Unknown").to_owned();
                let message = e.err().message().unwrap_or_default().to_owned();
                let text = format!("{code}: {message}");
                if matches!(
                    code.as_str(),
                    "TooManyRequestsException"
                        | "LimitExceededException"
                        | "Throttling"
                        | "ServiceUnavailable"
                ) || e.raw().status().as_u16() >= 500
                {
                    Err(MailError::Unavailable(text))
                } else {
                    Err(MailError::Rejected(text))
                }
            }
            Err(other) => Err(MailError::Unavailable(
                aws_sdk_sesv2::error::DisplayErrorContext(other).to_string(),
            )),
        }
    }
}

/// The mails this service sends; each is an HTML and a text template of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invite,
    Reset,
    Verify,
    EmailChange,
    EmailChanged,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::Reset => "reset",
            Self::Verify => "verify",
            Self::EmailChange => "email-change",
            Self::EmailChanged => "email-changed",
        }
    }

    fn subject(self, tenant_name: &str) -> String {
        let tenant = one_line(tenant_name);
        match self {
            Self::Invite => format!("You're invited to {tenant}"),
            Self::Reset => format!("Reset your {tenant} password"),
            Self::Verify => format!("Confirm your email address for {tenant}"),
            Self::EmailChange => format!("Confirm your new sign-in address for {tenant}"),
            Self::EmailChanged => format!("Your {tenant} sign-in address was changed"),
        }
    }
}

fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` names are auto-escaped by minijinja; tenant names are user input.
        for (name, source) in [
            ("invite.html", include_str!("../templates/mail/invite.html")),
            ("invite.txt", include_str!("../templates/mail/invite.txt")),
            ("reset.html", include_str!("../templates/mail/reset.html")),
            ("reset.txt", include_str!("../templates/mail/reset.txt")),
            ("verify.html", include_str!("../templates/mail/verify.html")),
            ("verify.txt", include_str!("../templates/mail/verify.txt")),
            (
                "email-change.html",
                include_str!("../templates/mail/email-change.html"),
            ),
            (
                "email-change.txt",
                include_str!("../templates/mail/email-change.txt"),
            ),
            (
                "email-changed.html",
                include_str!("../templates/mail/email-changed.html"),
            ),
            (
                "email-changed.txt",
                include_str!("../templates/mail/email-changed.txt"),
            ),
        ] {
            env.add_template(name, source)
                .expect("mail templates are valid");
        }
        env
    })
}

/// How a link's expiry reads in a mail: unambiguous and in UTC.
pub fn human_time(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y at %H:%M UTC").to_string()
}

/// Everything a mail may mention. Links are built by this service from the configured base
/// and a URL-safe token, so they are marked safe; every other value is escaped in HTML.
pub struct Mail<'a> {
    pub kind: Kind,
    pub to: &'a Email,
    pub tenant_name: &'a str,
    pub link: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub inviter: Option<&'a str>,
    pub role: Option<Role>,
    pub new_email: Option<&'a Email>,
    /// The button colour (`#rrggbb`), else [`crate::branding::DEFAULT_ACCENT`].
    pub accent: Option<&'a str>,
    pub sender_name: Option<&'a crate::branding::SenderName>,
}

impl<'a> Mail<'a> {
    pub fn new(kind: Kind, to: &'a Email, tenant_name: &'a str) -> Self {
        Self {
            kind,
            to,
            tenant_name,
            link: None,
            expires_at: None,
            inviter: None,
            role: None,
            new_email: None,
            accent: None,
            sender_name: None,
        }
    }

    /// The tenant's branding: its display name instead of `tenant_name`, its accent colour,
    /// and its sender name on the From header.
    pub fn branded(mut self, tenant: &'a crate::store::Tenant) -> Self {
        if let Some(name) = &tenant.branding.display_name {
            self.tenant_name = name.as_str();
        }
        self.accent = tenant.branding.accent_color.as_ref().map(|c| c.as_str());
        self.sender_name = tenant.branding.sender_name.as_ref();
        self
    }

    pub fn link(mut self, link: &'a str, expires_at: DateTime<Utc>) -> Self {
        self.link = Some(link);
        self.expires_at = Some(expires_at);
        self
    }

    pub fn render(&self) -> Result<OutgoingMail, MailError> {
        let ctx = context! {
            tenant_name => self.tenant_name,
            email => self.to.as_str(),
            inviter => self.inviter,
            role => self.role.map(Role::as_str),
            link => self.link.map(|l| minijinja::Value::from_safe_string(l.to_owned())),
            expires_at => self.expires_at.map(human_time),
            new_email => self.new_email.map(Email::as_str),
            accent => self.accent.unwrap_or(crate::branding::DEFAULT_ACCENT),
        };
        let render = |ext: &str| {
            templates()
                .get_template(&format!("{}.{ext}", self.kind.name()))
                .and_then(|t| t.render(&ctx))
                .map_err(|e| MailError::Template(e.to_string()))
        };
        Ok(OutgoingMail {
            to: self.to.clone(),
            subject: self.kind.subject(self.tenant_name),
            html: render("html")?,
            text: render("txt")?,
            from_name: self.sender_name.cloned(),
            tags: vec![("mail", self.kind.name().to_owned())],
        })
    }
}

pub struct Invitation<'a> {
    pub to: &'a Email,
    pub tenant_name: &'a str,
    pub inviter: &'a str,
    pub role: Role,
    pub link: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub fn render_invitation(inv: &Invitation<'_>) -> Result<OutgoingMail, MailError> {
    let mut mail = Mail::new(Kind::Invite, inv.to, inv.tenant_name).link(inv.link, inv.expires_at);
    mail.inviter = Some(inv.inviter);
    mail.role = Some(inv.role);
    mail.render()
}

/// Subjects are headers: no line breaks, bounded length.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(tenant_name: &str) -> OutgoingMail {
        render_invitation(&Invitation {
            to: &Email::parse("ada@example.com").unwrap(),
            tenant_name,
            inviter: "grace@example.com",
            role: Role::Member,
            link: "https://acme.example.com/accept-invite#token=abc.def",
            expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn the_invitation_carries_the_link_and_expiry_in_both_parts() {
        let mail = invitation("Acme");
        for body in [&mail.html, &mail.text] {
            assert!(body.contains("https://acme.example.com/accept-invite#token=abc.def"));
            assert!(body.contains("15 January 2027 at 08:00 UTC"));
        }
        assert_eq!(mail.subject, "You're invited to Acme");
    }

    #[test]
    fn tenant_names_are_escaped_in_html_and_flattened_in_the_subject() {
        let mail = invitation("<script>alert(1)</script>\r\nBcc: x");
        assert!(!mail.html.contains("<script>"));
        assert!(mail.html.contains("&lt;script&gt;"));
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
    }

    #[test]
    fn every_kind_renders_both_parts_with_its_link_and_expiry() {
        let to = Email::parse("ada@example.com").unwrap();
        let new = Email::parse("ada@new.example.com").unwrap();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for kind in [Kind::Reset, Kind::Verify, Kind::EmailChange] {
            let mail = Mail::new(kind, &to, "Acme")
                .link("https://acme.example.com/x#token=abc.def", at)
                .render()
                .unwrap();
            for body in [&mail.html, &mail.text] {
                assert!(
                    body.contains("https://acme.example.com/x#token=abc.def"),
                    "{kind:?}"
                );
                assert!(body.contains("15 January 2027 at 08:00 UTC"), "{kind:?}");
            }
        }
        let mut notice = Mail::new(Kind::EmailChanged, &to, "Acme");
        notice.new_email = Some(&new);
        let notice = notice.render().unwrap();
        assert!(notice.text.contains("ada@new.example.com") && !notice.text.contains("token"));
    }

    /// One HTTP exchange on loopback: answers like SES v2 and hands back the request body.
    async fn capture_one_request(listener: tokio::net::TcpListener) -> serde_json::Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let body_start = loop {
            let n = socket.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&raw[..body_start]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while raw.len() < body_start + length {
            let n = socket.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
        }
        let answer = r#"{"MessageId":"m-1"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        serde_json::from_slice(&raw[body_start..body_start + length]).unwrap()
    }

    #[tokio::test]
    async fn ses_gets_the_configuration_set_and_the_tags_that_identify_the_user() {
        use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(capture_one_request(listener));
        let client = aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("k", "s", None, None, "test"))
                .endpoint_url(url)
                .build(),
        );
        let mailer = SesMailer::new(client, Email::parse("no-reply@example.com").unwrap())
            .with_configuration_set(Some("latchkey-mail".into()));
        let mut mail = invitation("Acme");
        mail.tags.push(("user_id", "AAAAAAAAAAAAAAAAAAAAAA".into()));
        mail.tags.push(("tenant", "not valid!".into()));
        mail.from_name = Some(crate::branding::SenderName::parse("Acme Support").unwrap());
        mailer.send(&mail).await.unwrap();

        let sent = server.await.unwrap();
        assert_eq!(sent["ConfigurationSetName"], "latchkey-mail");
        assert_eq!(
            sent["FromEmailAddress"],
            "\"Acme Support\" <no-reply@example.com>"
        );
        let tags: Vec<(String, String)> = sent["EmailTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["Name"].as_str().unwrap().to_owned(),
                    t["Value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(tags.contains(&("user_id".into(), "AAAAAAAAAAAAAAAAAAAAAA".into())));
        assert!(tags.contains(&("mail".into(), "invite".into())));
        assert!(
            tags.iter().all(|(name, _)| name != "tenant"),
            "SES refuses a whole mail over one malformed tag: such a tag is dropped"
        );
    }

    fn branded_tenant() -> crate::store::Tenant {
        let mut tenant =
            crate::store::Tenant::unnamed(&crate::domain::TenantId::parse("acme").unwrap());
        tenant.name = "Acme Corp".into();
        tenant.branding = serde_json::from_value(serde_json::json!({
            "display_name": "Acme <Support>",
            "sender_name": "Acme Support",
            "accent_color": "#FF8800",
        }))
        .unwrap();
        tenant
    }

    #[test]
    fn every_template_renders_the_tenants_branding_and_the_links_expiry() {
        let to = Email::parse("ada@example.com").unwrap();
        let new = Email::parse("ada@new.example.com").unwrap();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let tenant = branded_tenant();
        for kind in [
            Kind::Invite,
            Kind::Reset,
            Kind::Verify,
            Kind::EmailChange,
            Kind::EmailChanged,
        ] {
            let mut mail = Mail::new(kind, &to, &tenant.name).branded(&tenant);
            if kind != Kind::EmailChanged {
                mail = mail.link("https://acme.example.com/x#token=abc.def", at);
            }
            mail.inviter = Some("grace@example.com");
            mail.role = Some(Role::Member);
            mail.new_email = Some(&new);
            let out = mail.render().unwrap();
            assert!(
                out.subject.contains("Acme <Support>"),
                "{kind:?}: {}",
                out.subject
            );
            assert!(!out.subject.contains("Acme Corp"), "{kind:?}");
            assert!(
                out.html.contains("Acme &lt;Support&gt;"),
                "{kind:?}: escaped in HTML"
            );
            assert!(out.text.contains("Acme <Support>"), "{kind:?}");
            assert_eq!(
                out.from_name.as_ref().map(|n| n.as_str()),
                Some("Acme Support")
            );
            assert!(!out.html.contains("<img"), "{kind:?}: no tracking pixel");
            if kind != Kind::EmailChanged {
                assert!(
                    out.html.contains("background:#ff8800"),
                    "{kind:?}: accent colour"
                );
                for body in [&out.html, &out.text] {
                    assert!(
                        body.contains("15 January 2027 at 08:00 UTC"),
                        "{kind:?}: expiry"
                    );
                }
            }
        }
    }

    #[test]
    fn unbranded_mail_uses_the_tenant_name_the_default_accent_and_the_bare_sender() {
        let to = Email::parse("ada@example.com").unwrap();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let tenant =
            crate::store::Tenant::unnamed(&crate::domain::TenantId::parse("acme").unwrap());
        let out = Mail::new(Kind::Reset, &to, &tenant.name)
            .branded(&tenant)
            .link("https://acme.example.com/x#token=abc.def", at)
            .render()
            .unwrap();
        assert!(out.subject.contains("acme"));
        assert!(
            out.html
                .contains(&format!("background:{}", crate::branding::DEFAULT_ACCENT))
        );
        assert!(out.from_name.is_none());
    }

    #[test]
    fn the_mail_has_no_remote_images_or_tracking() {
        let mail = invitation("Acme");
        assert!(!mail.html.contains("<img"));
    }
}
