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

pub trait Mailer: Send + Sync {
    fn send(&self, mail: &OutgoingMail) -> impl Future<Output = Result<(), MailError>> + Send;
}

pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: Email,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: Email) -> Self {
        Self { client, from }
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
        let result = self
            .client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(
                Destination::builder()
                    .to_addresses(mail.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
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

fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` names are auto-escaped by minijinja; tenant names are user input.
        for (name, source) in [
            ("invite.html", include_str!("../templates/mail/invite.html")),
            ("invite.txt", include_str!("../templates/mail/invite.txt")),
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

pub struct Invitation<'a> {
    pub to: &'a Email,
    pub tenant_name: &'a str,
    pub inviter: &'a str,
    pub role: Role,
    pub link: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub fn render_invitation(inv: &Invitation<'_>) -> Result<OutgoingMail, MailError> {
    let ctx = context! {
        tenant_name => inv.tenant_name,
        inviter => inv.inviter,
        role => inv.role.as_str(),
        // Built here from the configured base and a URL-safe token: nothing to escape.
        link => minijinja::Value::from_safe_string(inv.link.to_owned()),
        expires_at => human_time(inv.expires_at),
    };
    let render = |name: &str| {
        templates()
            .get_template(name)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| MailError::Template(e.to_string()))
    };
    Ok(OutgoingMail {
        to: inv.to.clone(),
        subject: format!("You're invited to {}", one_line(inv.tenant_name)),
        html: render("invite.html")?,
        text: render("invite.txt")?,
    })
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
    fn the_mail_has_no_remote_images_or_tracking() {
        let mail = invitation("Acme");
        assert!(!mail.html.contains("<img"));
    }
}
