//! Text messages: the HTTP SMS gateway and the cost controls in front of it.
//!
//! SMS pumping (fraudsters making a service send texts to premium numbers they are paid
//! for) is fought with an allow-list of country prefixes and daily quotas per number, per
//! country prefix and for the whole service, counted in the database so every node shares
//! them. A refused text goes by email when the message names a fallback address.

use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::ports::QuotaClaim;
use reqwest::header::{HeaderName, HeaderValue};

use crate::stats::SmsBlock;
use crate::transport::{Outbound, SendError, Transport};

/// The cost controls. A quota of 0 means no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmsPolicy {
    /// Prefixes such as `+1` or `+44`; empty allows every number.
    pub allowed_prefixes: Vec<String>,
    pub per_number_per_day: u32,
    pub per_prefix_per_day: u32,
    pub per_day: u32,
}

impl SmsPolicy {
    /// Whether the allow-list lets `number` (E.164) through.
    pub fn prefix_allowed(&self, number: &str) -> bool {
        self.allowed_prefixes.is_empty()
            || self
                .allowed_prefixes
                .iter()
                .any(|p| !p.is_empty() && number.starts_with(p.as_str()))
    }

    /// The counters one text to `number` takes a place in, each with the reason it would
    /// give when full, in a fixed order (number, prefix, service) so claimers never deadlock.
    pub fn quota_claims(&self, number: &str) -> Vec<(QuotaClaim, SmsBlock)> {
        let mut claims = Vec::new();
        if self.per_number_per_day > 0 {
            claims.push((
                QuotaClaim {
                    key: format!("number:{number}"),
                    limit: self.per_number_per_day,
                },
                SmsBlock::NumberQuota,
            ));
        }
        if self.per_prefix_per_day > 0 {
            claims.push((
                QuotaClaim {
                    key: format!("prefix:{}", country_prefix(number)),
                    limit: self.per_prefix_per_day,
                },
                SmsBlock::PrefixQuota,
            ));
        }
        if self.per_day > 0 {
            claims.push((
                QuotaClaim {
                    key: "service".into(),
                    limit: self.per_day,
                },
                SmsBlock::DailyQuota,
            ));
        }
        claims
    }
}

pub use portcullis_core::contact::country_prefix;

/// How the gateway wants its request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsFormat {
    /// A JSON template with `{to}`, `{body}` and `{from}` placeholders, each replaced by the
    /// JSON-escaped text (put the placeholders inside quotes).
    Json { template: String },
    /// A Twilio-style form: `To=…&From=…&Body=…`.
    Twilio,
}

pub const DEFAULT_JSON_TEMPLATE: &str = r#"{"to":"{to}","from":"{from}","body":"{body}"}"#;

#[derive(Clone, Debug)]
pub struct SmsGatewaySettings {
    pub url: String,
    /// `Name: value`, or just a value for `Authorization`.
    pub auth_header: Option<String>,
    pub format: SmsFormat,
    pub from: String,
    pub timeout: Duration,
}

/// Sends text messages by HTTP POST. 2xx is sent; 408, 429, 5xx, timeouts and connection
/// failures are retried; any other answer is a rejection.
pub struct SmsGateway {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Option<(HeaderName, HeaderValue)>,
    format: SmsFormat,
    from: String,
}

#[derive(Debug, thiserror::Error)]
#[error("SMS gateway: {0}")]
pub struct SmsConfigError(pub String);

impl SmsGateway {
    pub fn new(settings: SmsGatewaySettings) -> Result<Self, SmsConfigError> {
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|e| SmsConfigError(format!("sms_url is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SmsConfigError("sms_url must be http:// or https://".into()));
        }
        let auth = settings
            .auth_header
            .as_deref()
            .map(parse_auth_header)
            .transpose()?;
        if let SmsFormat::Json { template } = &settings.format {
            let sample = render_json(template, "+15555550100", "sample \"text\"\n", "x");
            serde_json::from_str::<serde_json::Value>(&sample).map_err(|e| {
                SmsConfigError(format!(
                    "sms_json_template does not give JSON (put the placeholders in quotes): {e}"
                ))
            })?;
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SmsConfigError(e.to_string()))?;
        Ok(Self {
            client,
            url,
            auth,
            format: settings.format,
            from: settings.from,
        })
    }
}

fn parse_auth_header(raw: &str) -> Result<(HeaderName, HeaderValue), SmsConfigError> {
    let raw = raw.trim();
    let (name, value) = match raw.split_once(':') {
        // `Bearer abc` has no colon; `Authorization: Bearer abc` names its header. A value
        // such as `Basic dXNlcjpwdw==` has no colon either (base64 has none).
        Some((name, value)) if !name.contains(' ') && !name.is_empty() => (name, value.trim()),
        _ => ("Authorization", raw),
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| SmsConfigError("the auth header file names an invalid header".into()))?;
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| SmsConfigError("the auth header file holds an invalid value".into()))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Fills `{to}`, `{body}` and `{from}` in one pass (so a body that itself contains `{to}`
/// stays as it is), JSON-escaping each value.
pub fn render_json(template: &str, to: &str, body: &str, from: &str) -> String {
    let mut out = String::with_capacity(template.len() + body.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let value = [("{to}", to), ("{body}", body), ("{from}", from)]
            .into_iter()
            .find(|(p, _)| after.starts_with(p));
        match value {
            Some((placeholder, v)) => {
                out.push_str(&json_escape(v));
                rest = after.get(placeholder.len()..).unwrap_or("");
            }
            None => {
                out.push('{');
                rest = after.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

fn json_escape(v: &str) -> String {
    let quoted = serde_json::Value::String(v.to_owned()).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or("")
        .to_owned()
}

/// What an answer from the gateway means. Refused credentials (401, 403) are the service's
/// account trouble, not the message's: retried, like SMTP's AUTH.
pub fn classify_status(status: u16) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        401 | 403 | 408 | 429 => Err(SendError::Retry(format!("SMS gateway answered {status}"))),
        500..=599 => Err(SendError::Retry(format!("SMS gateway answered {status}"))),
        _ => Err(SendError::Rejected(format!(
            "SMS gateway answered {status}"
        ))),
    }
}

#[async_trait]
impl Transport for SmsGateway {
    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        let mut request = self.client.post(self.url.clone());
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }
        request = match &self.format {
            SmsFormat::Json { template } => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(render_json(
                    template,
                    &message.to,
                    &message.body,
                    &self.from,
                )),
            SmsFormat::Twilio => request.form(&[
                ("To", message.to.as_str()),
                ("From", self.from.as_str()),
                ("Body", message.body.as_str()),
            ]),
        };
        let response = request.send().await.map_err(|e| {
            // Without the URL: it may carry an account id.
            SendError::Retry(format!("SMS gateway unreachable: {}", e.without_url()))
        })?;
        classify_status(response.status().as_u16())
    }

    fn name(&self) -> &'static str {
        "sms-gateway"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_prefixes_follow_e164() {
        assert_eq!(country_prefix("+15555550100"), "+1");
        assert_eq!(country_prefix("+447700900123"), "+44");
        assert_eq!(country_prefix("+353871234567"), "+353");
        assert_eq!(country_prefix("+79161234567"), "+7");
        assert_eq!(country_prefix("+4201234567"), "+420");
        assert_eq!(country_prefix("+33612345678"), "+33");
        assert_eq!(country_prefix("+35512345678"), "+355");
        assert_eq!(country_prefix("+8613812345678"), "+86");
        assert_eq!(country_prefix("+88212345678"), "+882");
        assert_eq!(country_prefix("+97150123456"), "+971");
        assert_eq!(country_prefix("+2348012345678"), "+234");
    }

    #[test]
    fn allow_list() {
        let open = SmsPolicy::default();
        assert!(open.prefix_allowed("+447700900123"));
        let p = SmsPolicy {
            allowed_prefixes: vec!["+1".into(), "+44".into()],
            ..Default::default()
        };
        assert!(p.prefix_allowed("+15555550100"));
        assert!(p.prefix_allowed("+447700900123"));
        assert!(!p.prefix_allowed("+8821234567"));
    }

    #[test]
    fn unlimited_quotas_take_no_counter() {
        let p = SmsPolicy {
            per_number_per_day: 3,
            per_day: 100,
            ..Default::default()
        };
        let claims = p.quota_claims("+447700900123");
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].0.key, "number:+447700900123");
        assert_eq!(claims[0].1, SmsBlock::NumberQuota);
        assert_eq!(claims[1].0.key, "service");
        let p = SmsPolicy {
            per_prefix_per_day: 9,
            ..Default::default()
        };
        assert_eq!(p.quota_claims("+447700900123")[0].0.key, "prefix:+44");
    }

    #[test]
    fn templates_escape_and_keep_other_braces() {
        let out = render_json(
            r#"{"msg":{"to":"{to}","text":"{body}"},"x":"{other}"}"#,
            "+1555",
            "say \"hi\"\n{to}",
            "",
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["msg"]["to"], "+1555");
        assert_eq!(v["msg"]["text"], "say \"hi\"\n{to}");
        assert_eq!(v["x"], "{other}");
    }

    #[test]
    fn statuses() {
        assert_eq!(classify_status(201), Ok(()));
        assert!(matches!(classify_status(400), Err(SendError::Rejected(_))));
        assert!(matches!(classify_status(429), Err(SendError::Retry(_))));
        assert!(matches!(classify_status(401), Err(SendError::Retry(_))));
        assert!(matches!(classify_status(503), Err(SendError::Retry(_))));
        assert!(matches!(classify_status(302), Err(SendError::Rejected(_))));
    }

    #[test]
    fn auth_headers() {
        let (n, v) = parse_auth_header("X-Api-Key: abc\n").unwrap();
        assert_eq!(n.as_str(), "x-api-key");
        assert_eq!(v.to_str().unwrap(), "abc");
        let (n, v) = parse_auth_header("Basic dXNlcjpwdw==").unwrap();
        assert_eq!(n.as_str(), "authorization");
        assert_eq!(v.to_str().unwrap(), "Basic dXNlcjpwdw==");
        assert!(v.is_sensitive());
    }

    #[test]
    fn bad_templates_are_refused() {
        let s = SmsGatewaySettings {
            url: "http://127.0.0.1:9/send".into(),
            auth_header: None,
            format: SmsFormat::Json {
                template: r#"{"to":{to}}"#.into(),
            },
            from: String::new(),
            timeout: Duration::from_secs(1),
        };
        assert!(SmsGateway::new(s).is_err());
    }
}
