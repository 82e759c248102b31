//! The `[notify]` section: how messages leave (SMTP, the SMS gateway, the outbox file).

use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// When set, every message is appended to this JSON Lines file (the transport for both
    /// channels; `--demo` sets it when it is not set).
    pub outbox_file: Option<PathBuf>,
    /// The email `From`, e.g. `Portcullis Bank <no-reply@bank.example>`.
    pub from: String,
    /// The SMTP server as a URL without a password (`smtps://host`,
    /// `smtp://host:587?tls=required`, `smtp://host:25`); or use `smtp_host` and the rest.
    pub smtp_url: Option<String>,
    pub smtp_host: Option<String>,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `plain`.
    pub smtp_port: Option<u16>,
    /// `starttls`, `tls`, or `plain` (only for a relay on the same host or network).
    pub smtp_mode: String,
    pub smtp_username: Option<String>,
    /// A file holding the SMTP password (the password is never in the configuration).
    pub smtp_password_file: Option<PathBuf>,
    /// The SMS gateway's URL (an HTTP POST per message).
    pub sms_url: Option<String>,
    /// A file holding the gateway's auth header: `Name: value`, or a value for
    /// `Authorization`.
    pub sms_auth_header_file: Option<PathBuf>,
    /// `json` (the body is `sms_json_template`) or `twilio` (a form `To`, `From`, `Body`).
    pub sms_format: String,
    /// JSON with `"{to}"`, `"{body}"` and `"{from}"` placeholders.
    pub sms_json_template: String,
    #[serde(deserialize_with = "string_or_number")]
    pub sms_from: String,
    /// Country prefixes text messages may go to (`["+1", "+44"]`); empty allows all.
    #[serde(deserialize_with = "prefix_list")]
    pub sms_allowed_prefixes: Vec<String>,
    /// Daily SMS quotas (UTC days); 0 means no limit. A text refused by a quota or the
    /// prefix list goes by email when the message has a fallback address.
    pub sms_per_number_per_day: u32,
    pub sms_per_prefix_per_day: u32,
    pub sms_per_day: u32,
    /// How often the delivery worker looks for due messages (it is also woken at once when
    /// this node queues one). Fractions allowed.
    pub poll_secs: f64,
    /// How long a node's claim on a message lasts; a crashed node's messages are sent by
    /// another node (or itself, restarted) after this.
    pub lease_secs: i64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            outbox_file: None,
            from: String::new(),
            smtp_url: None,
            smtp_host: None,
            smtp_port: None,
            smtp_mode: "starttls".into(),
            smtp_username: None,
            smtp_password_file: None,
            sms_url: None,
            sms_auth_header_file: None,
            sms_format: "json".into(),
            sms_json_template: portcullis_notify::sms::DEFAULT_JSON_TEMPLATE.into(),
            sms_from: String::new(),
            sms_allowed_prefixes: Vec::new(),
            sms_per_number_per_day: 5,
            sms_per_prefix_per_day: 1000,
            sms_per_day: 5000,
            poll_secs: 2.0,
            lease_secs: 60,
        }
    }
}

impl NotifyConfig {
    /// The longest one send may take: a third of the lease, between 1 and 30 seconds, so a
    /// send always ends well inside the lease it started under.
    pub fn send_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            u64::try_from((self.lease_secs / 3).clamp(1, 30)).unwrap_or(1),
        )
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if portcullis_notify::SmtpMode::parse(&self.smtp_mode).is_none() {
            bail!(
                "notify.smtp_mode must be starttls, tls or plain, not {:?}",
                self.smtp_mode
            );
        }
        if self.smtp_url.is_some() && self.smtp_host.is_some() {
            bail!("set notify.smtp_url or notify.smtp_host, not both");
        }
        if (self.smtp_url.is_some() || self.smtp_host.is_some())
            && self.outbox_file.is_none()
            && self.from.trim().is_empty()
        {
            bail!("notify.from is needed to send email over SMTP");
        }
        if !matches!(self.sms_format.as_str(), "json" | "twilio") {
            bail!(
                "notify.sms_format must be json or twilio, not {:?}",
                self.sms_format
            );
        }
        for prefix in &self.sms_allowed_prefixes {
            let digits = prefix.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                bail!("notify.sms_allowed_prefixes: {prefix:?} is not a prefix such as \"+44\"");
            }
        }
        if !(self.poll_secs.is_finite() && self.poll_secs >= 0.01 && self.poll_secs <= 3600.0) {
            bail!("notify.poll_secs must be between 0.01 and 3600");
        }
        if !(2..=3600).contains(&self.lease_secs) {
            bail!("notify.lease_secs must be between 2 and 3600");
        }
        Ok(())
    }
}

/// A string, or a number written without quotes (an environment variable such as
/// `PORTCULLIS_NOTIFY_SMS_FROM=+15555550100` reads as one): `+` and its digits.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Text(s) => s,
        Raw::Number(n) => format!("+{n}"),
    })
}

/// A list of prefixes, or one string of them separated by commas (handy in the
/// environment), or a single bare number (`+44` read as TOML).
fn prefix_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Text(String),
        Number(i64),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<Item>),
        One(Item),
    }
    let item = |i: Item| match i {
        Item::Text(s) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>(),
        Item::Number(n) => vec![format!("+{n}")],
    };
    Ok(match Raw::deserialize(d)? {
        Raw::List(items) => items.into_iter().flat_map(item).collect(),
        Raw::One(i) => item(i),
    })
}
