//! Email over SMTP with lettre (rustls only): STARTTLS, implicit TLS, or plain for a local
//! relay; authentication when a username is given. Each email is multipart/alternative:
//! the plain text, and the same text escaped into a small HTML page with the issuer's name.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::transport::{Outbound, SendError, Transport};

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    /// Plain connection upgraded with STARTTLS, which is required (port 587 by default).
    StartTls,
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// No TLS at all: only for a relay on the same machine or network (port 25 by default).
    Plain,
}

impl SmtpMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "starttls" => Some(Self::StartTls),
            "tls" => Some(Self::Tls),
            "plain" => Some(Self::Plain),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::Plain => 25,
        }
    }
}

/// Where the server is: a URL as lettre reads it, without a password (`smtps://host` for
/// TLS, `smtp://host:587?tls=required` for STARTTLS, `smtp://host:25` for a plain local
/// relay), or host, port and mode.
#[derive(Clone, Debug)]
pub enum SmtpServer {
    Url(String),
    Host {
        host: String,
        port: Option<u16>,
        mode: SmtpMode,
    },
}

#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub server: SmtpServer,
    pub username: Option<String>,
    /// Read from `smtp_password_file`; never from the configuration itself.
    pub password: Option<String>,
    /// `From`, e.g. `Portcullis Bank <no-reply@bank.example>`.
    pub from: String,
    pub issuer_name: String,
    /// For each SMTP command.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("SMTP: {0}")]
pub struct SmtpConfigError(pub String);

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    issuer_name: String,
    id_domain: String,
}

impl SmtpMailer {
    pub fn new(settings: SmtpSettings) -> Result<Self, SmtpConfigError> {
        let err = |e: lettre::transport::smtp::Error| SmtpConfigError(e.to_string());
        let mut builder = match &settings.server {
            SmtpServer::Url(url) => {
                if url_has_password(url) {
                    return Err(SmtpConfigError(
                        "smtp_url must not hold a password: put it in smtp_password_file".into(),
                    ));
                }
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(err)?
            }
            SmtpServer::Host { host, port, mode } => {
                let port = port.unwrap_or_else(|| mode.default_port());
                match mode {
                    SmtpMode::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(err)?
                    }
                    SmtpMode::Tls => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(err)?
                    }
                    SmtpMode::Plain => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    }
                }
                .port(port)
            }
        };
        match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            (Some(_), None) => {
                return Err(SmtpConfigError(
                    "smtp_username is set but smtp_password_file is not".into(),
                ))
            }
            _ => {}
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| SmtpConfigError(format!("notify.from is not an email address: {e}")))?;
        let id_domain = from.email.domain().to_owned();
        Ok(Self {
            transport: builder.timeout(Some(settings.timeout)).build(),
            from,
            issuer_name: settings.issuer_name,
            id_domain,
        })
    }

    /// The email for one outbox row; its `Message-ID` is the row's, so a receiver can spot a
    /// resend of the same message.
    pub fn build_email(&self, message: &Outbound) -> Result<lettre::Message, SendError> {
        let to: Mailbox = message
            .to
            .parse()
            .map_err(|e| SendError::Rejected(format!("not an email address: {e}")))?;
        let date =
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(message.now.0).unwrap_or(0));
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.as_str())
            .date(date)
            .message_id(Some(message_id(message, &self.id_domain)))
            .multipart(MultiPart::alternative_plain_html(
                message.body.clone(),
                html_body(&self.issuer_name, &message.subject, &message.body),
            ))
            .map_err(|e| SendError::Rejected(format!("cannot build the email: {e}")))
    }
}

/// `<portcullis.outbox.{id}.{created_at}@{domain}>`: stable for one row across retries and
/// nodes.
pub fn message_id(message: &Outbound, domain: &str) -> String {
    format!(
        "<portcullis.outbox.{}.{}@{}>",
        message.id, message.created_at.0, domain
    )
}

/// A 5xx is final only when it is about this message's recipient or content; otherwise it
/// is the relay's own trouble (a relay refusing every connection with `554 5.3.2`, refused
/// credentials, a refused sender) and the message waits for the relay to recover.
///
/// By the enhanced status code (RFC 3463) when the reply has one: `5.1.x` (addressing) and
/// `5.2.x` (the mailbox) and `5.6.x` (the content) are final, every other class is the
/// relay's. Without one, by the reply code (RFC 5321 §4.2.2): 550, 551, 552 and 553 name the
/// mailbox; 554 (no service, transaction failed), 530/535 (authentication) and the rest are
/// the relay's.
pub fn classify_permanent(code: Option<&str>, text: &str) -> SendError {
    let message = format!("SMTP: {text}");
    if let Some(class) = enhanced_subject(text) {
        return match class {
            1 | 2 | 6 => SendError::Rejected(message),
            _ => SendError::Retry(message),
        };
    }
    match code {
        Some("550" | "551" | "552" | "553") => SendError::Rejected(message),
        _ => SendError::Retry(message),
    }
}

/// The subject digit of the first `5.X.Y` enhanced status code in `text`.
fn enhanced_subject(text: &str) -> Option<u32> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')' || c == ',')
        .find_map(|word| {
            let mut parts = word.split('.');
            let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
            let ok = class == "5"
                && parts.next().is_none()
                && !subject.is_empty()
                && subject.len() <= 3
                && subject.bytes().all(|b| b.is_ascii_digit())
                && !detail.is_empty()
                && detail.len() <= 3
                && detail.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| subject.parse().ok()).flatten()
        })
}

fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(creds, _)| creds.contains(':'))
}

#[async_trait]
impl Transport for SmtpMailer {
    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        let email = self.build_email(message)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => {
                let code = e.status().map(|c| c.to_string());
                Err(classify_permanent(code.as_deref(), &e.to_string()))
            }
            Err(e) => Err(SendError::Retry(format!("SMTP: {e}"))),
        }
    }

    fn name(&self) -> &'static str {
        "smtp"
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The HTML alternative: the plain text, escaped, paragraph by paragraph, in a small page
/// with the issuer's name. Inline styles only (mail clients drop stylesheets), no images, no
/// links of its own.
pub fn html_body(issuer_name: &str, subject: &str, body: &str) -> String {
    let issuer = escape_html(issuer_name);
    let paragraphs: String = body
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            format!(
                "<p style=\"margin:0 0 16px\">{}</p>",
                escape_html(p.trim()).replace('\n', "<br>")
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{subject}</title></head>\
         <body style=\"margin:0;padding:0;background:#f3f4f6\">\
         <div style=\"max-width:560px;margin:0 auto;padding:24px;font-family:Arial,Helvetica,sans-serif;\
         font-size:16px;line-height:1.5;color:#1f2937\">\
         <div style=\"background:#0b3d91;color:#ffffff;padding:16px 24px;font-size:20px;font-weight:bold\">{issuer}</div>\
         <div style=\"background:#ffffff;padding:24px\">{paragraphs}</div>\
         <div style=\"padding:16px 24px;font-size:13px;color:#6b7280\">This message was sent by {issuer} \
         about your online account. We never ask for your password or a one-time code by email, \
         text or phone.</div>\
         </div></body></html>\n",
        subject = escape_html(subject),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::clock::UnixTime;
    use portcullis_core::contact::CodeChannel;

    fn settings(server: SmtpServer) -> SmtpSettings {
        SmtpSettings {
            server,
            username: None,
            password: None,
            from: "Portcullis Bank <no-reply@bank.example>".into(),
            issuer_name: "Portcullis <Bank>".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn html_is_escaped_and_branded() {
        let html = html_body("A & B Bank", "Hi <there>", "Code: <b>1</b>\n\nLine\ntwo");
        assert!(html.contains("A &amp; B Bank"));
        assert!(html.contains("&lt;b&gt;1&lt;/b&gt;"));
        assert!(html.contains("Line<br>two"));
        assert!(!html.contains("<b>1"));
        assert!(html.contains("<title>Hi &lt;there&gt;</title>"));
    }

    #[tokio::test]
    async fn emails_are_multipart_with_a_stable_id() {
        let mailer = SmtpMailer::new(settings(SmtpServer::Host {
            host: "127.0.0.1".into(),
            port: Some(2525),
            mode: SmtpMode::Plain,
        }))
        .unwrap();
        let out = Outbound {
            id: 42,
            channel: CodeChannel::Email,
            to: "ann@example.com".into(),
            subject: "Your account".into(),
            body: "Hello <Ann>".into(),
            created_at: UnixTime(1_800_000_000),
            now: UnixTime(1_800_000_005),
        };
        let raw = String::from_utf8(mailer.build_email(&out).unwrap().formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Message-ID: <portcullis.outbox.42.1800000000@bank.example>"));
        assert!(raw.contains("text/html"), "{raw}");
        let bad = Outbound {
            to: "not an address".into(),
            ..out
        };
        assert!(matches!(
            mailer.build_email(&bad),
            Err(SendError::Rejected(_))
        ));
    }

    #[test]
    fn only_a_recipients_5xx_is_final() {
        let retry = |code: &str, text: &str| {
            matches!(classify_permanent(Some(code), text), SendError::Retry(_))
        };
        // The relay's trouble: at connection, authentication, the sender, policy.
        assert!(retry(
            "554",
            "permanent error (554): 5.3.2 service not available"
        ));
        assert!(retry("554", "permanent error (554): no SMTP service here"));
        assert!(retry(
            "535",
            "permanent error (535): 5.7.8 authentication failed"
        ));
        assert!(retry(
            "530",
            "permanent error (530): authentication required"
        ));
        assert!(retry("550", "permanent error (550): 5.7.1 relaying denied"));
        // The recipient's: no such mailbox, a bad address, a full mailbox, content refused.
        assert!(!retry("550", "permanent error (550): 5.1.1 user unknown"));
        assert!(!retry("550", "permanent error (550): no such user"));
        assert!(!retry(
            "553",
            "permanent error (553): mailbox name not allowed"
        ));
        assert!(!retry("552", "permanent error (552): 5.2.2 mailbox full"));
        assert!(!retry(
            "554",
            "permanent error (554): 5.6.0 message content refused"
        ));
    }

    #[test]
    fn passwords_in_urls_are_refused() {
        assert!(url_has_password("smtp://user:pw@mail.example:587"));
        assert!(!url_has_password("smtp://user@mail.example:587"));
        assert!(!url_has_password("smtps://mail.example"));
        assert!(
            SmtpMailer::new(settings(SmtpServer::Url("smtp://u:p@mail.example".into()))).is_err()
        );
        assert!(
            SmtpMailer::new(settings(SmtpServer::Url("smtp://mail.example:25".into()))).is_ok()
        );
    }

    #[test]
    fn modes() {
        assert_eq!(SmtpMode::parse("starttls"), Some(SmtpMode::StartTls));
        assert_eq!(SmtpMode::parse("tls"), Some(SmtpMode::Tls));
        assert_eq!(SmtpMode::parse("plain"), Some(SmtpMode::Plain));
        assert_eq!(SmtpMode::parse("ssl"), None);
        for mode in [SmtpMode::StartTls, SmtpMode::Tls] {
            assert!(SmtpMailer::new(settings(SmtpServer::Host {
                host: "mail.example".into(),
                port: None,
                mode,
            }))
            .is_ok());
        }
    }
}
