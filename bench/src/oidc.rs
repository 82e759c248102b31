//! Figure 11, the OpenID Connect provider: full authorization-code flows per second (PAR →
//! authorize → the sign-in page → the password, whose answer leads back with the code →
//! token) against direct
//! sign-ins per second in the same run (each flow costs one argon2id hash, the password's,
//! so the target is ≥ 0.9), and refresh-token requests per second (a rotation each; no
//! hashing, target ≥ 2,000/s on SQLite).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{HeaderMap, Method};
use portcullis_crypto::jws::s256;
use portcullis_crypto::token::Token;

use crate::load::{self, Conn, Loop};
use crate::seed::{Account, PASSWORD};
use crate::server::{Server, Setup};
use crate::suite::{progress, round_robin, Ctx, MAX_PER_CONNECTION};
use crate::sys::CpuMark;

const RP: &str = "https://rp.bench.example/cb";

/// The cookies one simulated browser holds.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn absorb(&mut self, headers: &HeaderMap) {
        for line in headers.get_all(SET_COOKIE) {
            let line = line.to_str().unwrap_or_default();
            let pair = line.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() && !line.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn header(&self) -> Option<(HeaderName, String)> {
        (!self.0.is_empty()).then(|| {
            let all: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
            (COOKIE, all.join("; "))
        })
    }
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn encode(pairs: &[(&str, &str)]) -> Bytes {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect();
    Bytes::from(body.join("&"))
}

fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn json_field(body: &[u8], name: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    v.get(name)
        .and_then(|x| x.as_str())
        .map(str::to_owned)
        .with_context(|| format!("no {name} in {v}"))
}

/// The hidden `csrf` field of the sign-in page.
fn csrf_of(html: &str) -> anyhow::Result<String> {
    let at = html.find("name=\"csrf\"").context("no csrf field")?;
    let start = html.get(..at).and_then(|h| h.rfind('<')).unwrap_or(0);
    let tag = html.get(start..).unwrap_or_default();
    let tag = tag
        .get(..tag.find('>').unwrap_or(tag.len()))
        .unwrap_or_default();
    let v = tag.find("value=\"").context("no csrf value")? + 7;
    let rest = tag.get(v..).unwrap_or_default();
    let value = rest
        .get(..rest.find('"').unwrap_or(rest.len()))
        .unwrap_or_default();
    Ok(value.replace("&#x2f;", "/").replace("&#43;", "+"))
}

/// One browser and relying party: a connection and a cookie jar.
struct Flow {
    conn: Conn,
    client_id: String,
}

impl Flow {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        jar: Option<&Jar>,
        form: Option<Bytes>,
    ) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
        let mut headers = Vec::new();
        if let Some((name, value)) = jar.and_then(Jar::header) {
            headers.push((name, HeaderValue::from_str(&value)?));
        }
        if form.is_some() {
            headers.push((
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ));
        }
        self.conn
            .send_with(method, path, &headers, form.unwrap_or_default())
            .await
    }

    /// One full flow for `account`: the refresh token it ends with.
    async fn run(&mut self, account: &Account) -> anyhow::Result<String> {
        let verifier = Token::generate().expose().to_owned();
        let challenge = s256(&verifier);
        let par = encode(&[
            ("client_id", &self.client_id),
            ("response_type", "code"),
            ("redirect_uri", RP),
            ("scope", "openid offline_access"),
            ("state", "bench"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let (status, _, body) = self
            .send(Method::POST, "/oidc/par", None, Some(par))
            .await?;
        ensure!(status == 201, "PAR answered {status}");
        let request_uri = json_field(&body, "request_uri")?;
        let mut jar = Jar::default();
        if let Some(device) = &account.device_token {
            // Under either name: `__Host-` when the server sets secure cookies (its default).
            for name in ["portcullis_device", "__Host-portcullis_device"] {
                jar.0.push((name.into(), device.clone()));
            }
        }
        let authorize = format!(
            "/oidc/authorize?client_id={}&request_uri={}",
            escape(&self.client_id),
            escape(&request_uri)
        );
        let location = self.follow(&authorize, &mut jar).await?;
        ensure!(
            location.starts_with('/'),
            "authorize sent the browser to {location}"
        );
        let (status, headers, page) = self.send(Method::GET, &location, Some(&jar), None).await?;
        ensure!(status == 200, "the sign-in page answered {status}");
        jar.absorb(&headers);
        let csrf = csrf_of(&String::from_utf8_lossy(&page))?;
        let form = encode(&[
            ("csrf", &csrf),
            ("user_id", &account.user_id),
            ("password", PASSWORD),
            ("account_type", &account.account_type),
        ]);
        let (status, headers, page) = self.send(Method::POST, "/", Some(&jar), Some(form)).await?;
        jar.absorb(&headers);
        let back = way_back(status, &headers, &page).with_context(|| {
            format!(
                "sign-in answered {status}: {}",
                String::from_utf8_lossy(&page)
                    .lines()
                    .filter(|l| l.contains("<h1") || l.contains("<p") || l.contains("role="))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })?;
        let code = query(&back, "code").with_context(|| format!("no code in {back}"))?;
        let token = encode(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &self.client_id),
            ("code_verifier", &verifier),
            ("redirect_uri", RP),
        ]);
        let (status, _, body) = self
            .send(Method::POST, "/oidc/token", None, Some(token))
            .await?;
        ensure!(status == 200, "the token endpoint answered {status}");
        json_field(&body, "refresh_token")
    }

    async fn follow(&mut self, path: &str, jar: &mut Jar) -> anyhow::Result<String> {
        let (status, headers, _) = self.send(Method::GET, path, Some(jar), None).await?;
        jar.absorb(&headers);
        ensure!((300..400).contains(&status), "{path} answered {status}");
        Ok(location_of(&headers))
    }

    /// One refresh: the rotated refresh token.
    async fn refresh(&mut self, token: &str) -> anyhow::Result<(u16, Option<String>)> {
        let form = encode(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", &self.client_id),
        ]);
        let (status, _, body) = self
            .send(Method::POST, "/oidc/token", None, Some(form))
            .await?;
        Ok((status, json_field(&body, "refresh_token").ok()))
    }
}

/// The sign-in form's answer goes on with the request: the way back to the client is a page
/// (a refresh and a link, since the pages' CSP forbids a form's redirect to leave the
/// origin), or a redirect.
fn way_back(status: u16, headers: &HeaderMap, page: &[u8]) -> anyhow::Result<String> {
    if (300..400).contains(&status) {
        return Ok(location_of(headers));
    }
    ensure!(status == 200, "the sign-in answered {status}");
    let page = String::from_utf8_lossy(page);
    let link = page
        .split("id=\"continue\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .with_context(|| "no way back on the sign-in's answer".to_owned())?;
    Ok(link.replace("&#38;", "&").replace("&amp;", "&"))
}

fn location_of(headers: &HeaderMap) -> String {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Runs `conns` flows at a time for `run_for`: flows done, refresh tokens they gave, time.
async fn flows(
    addr: SocketAddr,
    client_id: &str,
    accounts: &[Account],
    conns: usize,
    run_for: Duration,
) -> anyhow::Result<(usize, Vec<String>, Duration)> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let mut flow = Flow {
            conn: Conn::new(addr)?,
            client_id: client_id.to_owned(),
        };
        let mine: Vec<Account> = accounts.iter().skip(c).step_by(conns).cloned().collect();
        ensure!(!mine.is_empty(), "fewer accounts than connections");
        tasks.spawn(async move {
            let mut last = None;
            let mut done = 0usize;
            for account in mine.iter().cycle().take(MAX_PER_CONNECTION as usize) {
                // At least one flow each, for the refresh figure's tokens.
                if started.elapsed() >= run_for && last.is_some() {
                    break;
                }
                last = Some(flow.run(account).await?);
                done += 1;
            }
            anyhow::Ok((done, last, Instant::now()))
        });
    }
    let (mut done, mut tokens, mut finished) = (0, Vec::new(), started);
    while let Some(joined) = tasks.join_next().await {
        let (n, last, end) = joined.context("a flow task failed")??;
        done += n;
        tokens.extend(last);
        finished = finished.max(end);
    }
    Ok((done, tokens, finished.duration_since(started)))
}

/// Figure 11 on `server` (SQLite), seeded with `accounts`.
pub async fn figure(
    ctx: &mut Ctx,
    setup: &Setup,
    server: &Server,
    accounts: &[Account],
) -> anyhow::Result<()> {
    progress("figure 11: OpenID Connect flows against direct sign-ins; refresh tokens");
    let client_id = setup
        .oidc_client(&[
            "--name",
            "Bench",
            "--redirect-uri",
            RP,
            "--public",
            "--first-party",
        ])
        .await?;
    let conns = 2 * ctx.cores;
    let direct = round_robin(
        accounts.iter().map(|a| a.sign_in(PASSWORD)).collect(),
        conns,
    )?;
    let plan = Loop {
        connections: conns,
        run_for: ctx.sizes.sign_ins,
        max_per_connection: MAX_PER_CONNECTION,
        pace: None,
    };
    // Direct, flows, direct: the ratio divides by the mean of the chunks around it.
    let before = load::run(server.addr, plan, direct.clone()).await?;
    let mark = CpuMark::now(Some(server.pid));
    let (done, tokens, elapsed) =
        flows(server.addr, &client_id, accounts, conns, ctx.sizes.sign_ins).await?;
    let flow_cpu = mark.used_since(Some(server.pid), ctx.ticks);
    let after = load::run(server.addr, plan, direct).await?;
    let flow_rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let direct_rate = (before.rate(201) + after.rate(201)) / 2.0;
    ctx.report.info(
        "11",
        format!("SQLite: full authorization-code flows/s (PAR → authorize → sign-in page → sign-in with the code → token; c={conns})"),
        format!("{flow_rate:.1}/s"),
    );
    ctx.report.cpu(flow_cpu);
    ctx.report.info(
        "11",
        "SQLite: direct sign-ins/s (POST /api/v1/sessions), before and after".to_owned(),
        format!(
            "{direct_rate:.1}/s ({:.1}, {:.1})",
            before.rate(201),
            after.rate(201)
        ),
    );
    let ratio = flow_rate / direct_rate.max(1e-9);
    ctx.report.check(
        "11",
        "SQLite: OIDC flows/s ÷ direct sign-ins/s".to_owned(),
        format!("{ratio:.3}"),
        "≥ 0.90",
        ratio >= 0.90,
    );

    // Refresh: each connection rotates its own grant's refresh token as fast as it can.
    let started = Instant::now();
    let run_for = ctx.sizes.http_chunk;
    let mut tasks = tokio::task::JoinSet::new();
    let mark = CpuMark::now(Some(server.pid));
    for token in tokens {
        let mut flow = Flow {
            conn: Conn::new(server.addr)?,
            client_id: client_id.clone(),
        };
        tasks.spawn(async move {
            let (mut current, mut ok, mut other) = (token, 0usize, 0usize);
            while started.elapsed() < run_for {
                match flow.refresh(&current).await? {
                    (200, Some(next)) => {
                        current = next;
                        ok += 1;
                    }
                    _ => {
                        other += 1;
                        break;
                    }
                }
            }
            anyhow::Ok((ok, other, Instant::now()))
        });
    }
    let (mut ok, mut other, mut finished) = (0, 0, started);
    while let Some(joined) = tasks.join_next().await {
        let (o, x, end) = joined.context("a refresh task failed")??;
        ok += o;
        other += x;
        finished = finished.max(end);
    }
    let refresh_cpu = mark.used_since(Some(server.pid), ctx.ticks);
    if other > 0 {
        bail!("{other} refresh requests were refused");
    }
    let refresh_rate = ok as f64 / finished.duration_since(started).as_secs_f64().max(1e-9);
    ctx.report.check(
        "11",
        format!("SQLite: refresh-token requests/s (rotation each; c={conns})"),
        format!("{refresh_rate:.0}/s"),
        "≥ 2,000/s",
        refresh_rate >= 2000.0,
    );
    ctx.report.cpu(refresh_cpu);
    ctx.report.note(
        "11",
        format!(
            "{done} flows in {:.2} s, each one argon2id hash (the password's) and 5 requests; \
             {ok} refreshes; the public client is registered with `oidc client add --public \
             --first-party`; a flow sends the account's device cookie, as the direct sign-ins \
             send its device token",
            elapsed.as_secs_f64()
        ),
    );
    Ok(())
}
