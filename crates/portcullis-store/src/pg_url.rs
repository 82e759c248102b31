//! PostgreSQL's multi-host connection URL, which sqlx does not take (its issues #2290 and
//! #3333): `postgres://user:pass@h1:p1,h2:p2,[::1]:p3/db?target_session_attrs=read-write&…`.
//!
//! [`PgUrl::parse`] splits it into one single-host URL per host, in order, each with the
//! same user, password, database and query parameters (less `target_session_attrs`, which
//! this crate acts on itself, as libpq does: see `failover.rs`). The parts are kept as they
//! were written, percent-encoding included, so each single-host URL means to sqlx exactly
//! what the part meant in the whole; [`PgUrl::user`] and [`PgHost::host`] decode theirs.

use std::fmt;

/// The port a host without one is reached on.
pub const DEFAULT_PORT: u16 = 5432;

/// Which host a pool accepts, by libpq's `target_session_attrs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetSession {
    /// The first host that answers (libpq's default).
    Any,
    /// A host whose sessions may write (`transaction_read_only` off, not in recovery).
    ReadWrite,
    /// A host that is not a standby (`pg_is_in_recovery()` false).
    Primary,
}

/// One host of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgHost {
    /// As written (percent-encoded; an IPv6 address without its brackets).
    raw: String,
    ipv6: bool,
    pub port: u16,
}

impl PgHost {
    /// The host name or address, percent-decoded (empty: sqlx's default, the local socket).
    pub fn host(&self) -> String {
        percent_decode(&self.raw)
    }

    /// As it goes in a URL: IPv6 addresses in brackets.
    fn authority(&self) -> String {
        if self.ipv6 {
            format!("[{}]:{}", self.raw, self.port)
        } else if self.raw.is_empty() {
            String::new()
        } else {
            format!("{}:{}", self.raw, self.port)
        }
    }
}

impl fmt::Display for PgHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ipv6 {
            write!(f, "[{}]:{}", self.host(), self.port)
        } else {
            write!(f, "{}:{}", self.host(), self.port)
        }
    }
}

/// A `postgres://` URL with one or more hosts. Debug leaves out the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    scheme: String,
    /// `user[:password]` as written, without the `@`.
    userinfo: Option<String>,
    pub hosts: Vec<PgHost>,
    /// The path as written, with its leading `/` (may be empty).
    path: String,
    /// The query parameters as written, `target_session_attrs` taken out.
    params: Vec<String>,
    pub target: TargetSession,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUrl")
            .field("scheme", &self.scheme)
            .field("user", &self.user())
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Why a URL was refused. Never holds the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("database_url: {0}")]
pub struct PgUrlError(String);

impl PgUrl {
    /// Parses `postgres://…` or `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, PgUrlError> {
        let err = |m: &str| PgUrlError(m.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
            .ok_or_else(|| err("not a postgres:// URL"))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        if before_query.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return Err(err("a fragment (#) has no meaning in a database URL"));
        }
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        // The password may hold an unencoded '@' in practice; the last '@' ends userinfo.
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (
                Some(authority.get(..i).unwrap_or_default().to_owned()),
                authority.get(i + 1..).unwrap_or_default(),
            ),
            None => (None, authority),
        };
        let hosts = parse_hosts(hostlist)?;
        let mut params = Vec::new();
        let mut target = TargetSession::Any;
        for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if percent_decode(key) == "target_session_attrs" {
                target = match percent_decode(value).as_str() {
                    "any" => TargetSession::Any,
                    "read-write" => TargetSession::ReadWrite,
                    "primary" => TargetSession::Primary,
                    other => {
                        return Err(PgUrlError(format!(
                            "target_session_attrs={other} is not supported for the main \
                             pool (use read-write, primary or any)"
                        )))
                    }
                };
            } else if matches!(percent_decode(key).as_str(), "host" | "hostaddr" | "port")
                && percent_decode(value).contains(',')
            {
                return Err(err("a list of hosts or ports goes in the URL's host part \
                     (postgres://user@h1:5432,h2:5432/db), not in a query parameter"));
            } else {
                params.push(param.to_owned());
            }
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            userinfo,
            hosts,
            path: path.to_owned(),
            params,
            target,
        })
    }

    /// Whether this URL needs this crate's own host choice: several hosts, or a
    /// `target_session_attrs` that asks for a check after connecting.
    pub fn needs_host_choice(&self) -> bool {
        self.hosts.len() > 1 || self.target != TargetSession::Any
    }

    /// The single-host URL of host `i`, for sqlx.
    pub fn host_url(&self, i: usize) -> Option<String> {
        let host = self.hosts.get(i)?;
        let mut out = format!("{}://", self.scheme);
        if let Some(u) = &self.userinfo {
            out.push_str(u);
            out.push('@');
        }
        out.push_str(&host.authority());
        out.push_str(&self.path);
        if !self.params.is_empty() {
            out.push('?');
            out.push_str(&self.params.join("&"));
        }
        Some(out)
    }

    /// The user name, percent-decoded.
    pub fn user(&self) -> Option<String> {
        let u = self.userinfo.as_deref()?;
        Some(percent_decode(u.split(':').next().unwrap_or("")))
    }

    /// The database name, percent-decoded (`None`: the server's default).
    pub fn database(&self) -> Option<String> {
        let db = self.path.strip_prefix('/')?;
        (!db.is_empty()).then(|| percent_decode(db))
    }

    /// The hosts, `h1:p1, h2:p2`, for messages.
    pub fn host_list(&self) -> String {
        self.hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn parse_hosts(list: &str) -> Result<Vec<PgHost>, PgUrlError> {
    let err = |m: String| PgUrlError(m);
    if list.is_empty() {
        // `postgres:///db`: sqlx's default host.
        return Ok(vec![PgHost {
            raw: String::new(),
            ipv6: false,
            port: DEFAULT_PORT,
        }]);
    }
    let mut hosts = Vec::new();
    let mut rest = list;
    loop {
        let (raw, ipv6, after) = if let Some(inner) = rest.strip_prefix('[') {
            let close = inner
                .find(']')
                .ok_or_else(|| err("an IPv6 address without its closing ]".into()))?;
            let addr = inner.get(..close).unwrap_or_default();
            // The address, then perhaps a zone (`%25eth0`, percent-encoded).
            let (ip, zone) = addr.split_once('%').unwrap_or((addr, ""));
            let ip_ok = ip.contains(':')
                && ip
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":.".contains(c));
            let zone_ok = zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "%-_.".contains(c));
            if !(ip_ok && zone_ok) {
                return Err(err(format!("[{addr}] is not an IPv6 address")));
            }
            (addr, true, inner.get(close + 1..).unwrap_or_default())
        } else {
            let end = rest.find([':', ',']).unwrap_or(rest.len());
            let name = rest.get(..end).unwrap_or_default();
            (name, false, rest.get(end..).unwrap_or_default())
        };
        if raw.is_empty() {
            return Err(err("an empty host in the host list".into()));
        }
        if raw.contains(['[', ']', '@', '/']) {
            return Err(err("a host in the host list is not a host name".into()));
        }
        let (port, after) = match after.strip_prefix(':') {
            Some(p) => {
                let end = p.find(',').unwrap_or(p.len());
                let digits = p.get(..end).unwrap_or_default();
                let port = if digits.is_empty() {
                    DEFAULT_PORT
                } else {
                    digits
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0 && digits.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| {
                            err("a port in the host list is not a number from 1 to 65535".into())
                        })?
                };
                (port, p.get(end..).unwrap_or_default())
            }
            None => (DEFAULT_PORT, after),
        };
        hosts.push(PgHost {
            raw: raw.to_owned(),
            ipv6,
            port,
        });
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None if after.is_empty() => return Ok(hosts),
            None => return Err(err("unexpected text after a host in the host list".into())),
        }
    }
}

/// Whether `url` names several hosts (in its host part or in `host`/`port` parameters) or
/// a `target_session_attrs`: then it must parse here.
pub fn asks_for_host_choice(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let listed = query.split('&').any(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        matches!(percent_decode(k).as_str(), "host" | "hostaddr" | "port")
            && percent_decode(v).contains(',')
    });
    authority.contains(',') || url.contains("target_session_attrs") || listed
}

/// `%XX` decoded; anything else kept. Invalid UTF-8 is replaced, never panics.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "pg_url_tests.rs"]
mod tests;
