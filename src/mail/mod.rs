//! Outgoing account email: the five token mails (email confirmation, email update, password
//! reset, account deletion, PLC operation) and the SMTP transport that sends them.
//!
//! Invariants:
//! - A mail goes out over SMTP only when `PDS_EMAIL_SMTP_URL` and `PDS_EMAIL_FROM_ADDRESS` are
//!   both set (the configuration refuses one without the other).
//! - Without them, dev mode writes the whole mail (token included) to the log at info level,
//!   so a developer can finish the flow; outside dev mode [`Mailer::send`] fails with
//!   [`MailError::NotConfigured`] and the operation that needed the mail is refused, instead of
//!   pretending a token was delivered.
//! - The SMTP URL may carry credentials; it is never logged or put in an error message.

pub mod templates;

use crate::config::Config;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// Plain text.
    pub body: String,
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// No SMTP server is configured and this is not a dev-mode server.
    #[error(
        "this server cannot send email (PDS_EMAIL_SMTP_URL and PDS_EMAIL_FROM_ADDRESS are not set)"
    )]
    NotConfigured,
    /// The recipient or sender address could not be parsed.
    #[error("invalid email address {0:?}")]
    Address(String),
    /// The SMTP URL could not be used (scheme, host, TLS parameters). The URL itself is left
    /// out: it may hold a password.
    #[error("the SMTP URL is not usable: {0}")]
    Url(String),
    /// The SMTP server refused the mail or could not be reached.
    #[error("sending email failed: {0}")]
    Send(String),
}

/// Sends account mail as the configuration says: SMTP, the dev-mode log, or not at all.
#[derive(Clone)]
pub struct Mailer {
    inner: Transport,
}

#[derive(Clone)]
enum Transport {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
    /// Dev mode without SMTP.
    Log,
    Disabled,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Transport::Smtp { .. } => "smtp",
            Transport::Log => "log",
            Transport::Disabled => "disabled",
        };
        f.debug_struct("Mailer").field("transport", &kind).finish()
    }
}

impl Mailer {
    /// The mailer for the account email settings. Building it opens no connection; each
    /// [`Mailer::send`] connects anew (account mail is rare, a pool would sit idle).
    pub fn from_config(config: &Config) -> Result<Mailer, MailError> {
        let inner = match &config.email {
            Some(email) => Transport::Smtp {
                transport: Box::new(smtp_transport(email.smtp_url.expose())?),
                from: parse_mailbox(&email.from_address)?,
            },
            None if config.service.dev_mode => Transport::Log,
            None => Transport::Disabled,
        };
        Ok(Mailer { inner })
    }

    /// Whether a mail would reach anyone (SMTP or the dev-mode log).
    pub fn is_enabled(&self) -> bool {
        !matches!(self.inner, Transport::Disabled)
    }

    /// Sends `mail`; returns once the SMTP server accepted it.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        match &self.inner {
            Transport::Smtp { transport, from } => {
                let message = Message::builder()
                    .from(from.clone())
                    .to(parse_mailbox(&mail.to)?)
                    .subject(mail.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())
                    .map_err(|e| MailError::Send(e.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
                Ok(())
            }
            Transport::Log => {
                tracing::info!(
                    to = %mail.to,
                    subject = %mail.subject,
                    body = %mail.body,
                    "dev mode, no SMTP server configured: mail not sent"
                );
                Ok(())
            }
            Transport::Disabled => Err(MailError::NotConfigured),
        }
    }
}

/// The transport for `smtp://` and `smtps://` URLs (credentials as `user:pass@`, percent-
/// encoded). `smtps://` is TLS from the first byte (port 465 by default). A plain `smtp://`
/// URL without a `tls=` parameter upgrades with STARTTLS when the server offers it (port 587
/// by default), as the reference's nodemailer does; `?tls=required` insists on it.
fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let url = if url.starts_with("smtp://") && !url.contains("tls=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}tls=opportunistic")
    } else {
        url.to_string()
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .map_err(|e| MailError::Url(without_url(&e.to_string(), &url)))?;
    Ok(builder.build())
}

/// An error message with the URL (and so its password) cut out, should lettre quote it.
fn without_url(message: &str, url: &str) -> String {
    message.replace(url, "<PDS_EMAIL_SMTP_URL>")
}

fn parse_mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|_| MailError::Address(address.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse() {
        assert!(smtp_transport("smtp://127.0.0.1:2525").is_ok());
        assert!(smtp_transport("smtps://user:p%40ss@smtp.example.com:465").is_ok());
        assert!(smtp_transport("smtp://user:pass@smtp.example.com?tls=required").is_ok());
        assert!(smtp_transport("http://smtp.example.com").is_err());
    }

    #[test]
    fn addresses() {
        assert!(parse_mailbox("alice@example.com").is_ok());
        assert!(parse_mailbox("Berth <noreply@example.com>").is_ok());
        assert!(parse_mailbox("not an address").is_err());
    }
}
