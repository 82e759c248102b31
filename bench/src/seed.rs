//! Accounts to measure with, made the way real ones are: a generated issuer registry loaded
//! with `portcullis registry import`, then each card registered through the JSON API
//! (verify-card, complete) and signed in once for a bearer token.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};

use crate::load::{Conn, Req};
use portcullis::gen::write_demo_registry;

/// The password of every benchmark account (it meets the `issuer` profile).
pub const PASSWORD: &str = "Bench-Kestrel-7391!";
/// A wrong password of the same length, for failed sign-ins.
pub const WRONG_PASSWORD: &str = "Bench-Kestrel-7392?";
/// The registry's seed: the same file on every run.
const REGISTRY_SEED: u64 = 2024;

/// A card from the generated registry.
#[derive(Clone, Debug)]
pub struct Card {
    pub account_type: String,
    pub number: String,
    pub verification: String,
    /// The holder's email address on the record (forgot User ID).
    pub email: String,
}

/// A registered, signed-in account.
#[derive(Clone, Debug)]
pub struct Account {
    pub user_id: String,
    pub account_type: String,
    /// The bearer token of the first sign-in.
    pub token: String,
    /// The device token the first sign-in gave: a returning browser or app sends it back.
    pub device_token: Option<String>,
}

impl Account {
    /// A sign-in from the account's own, known device (the usual case: a returning customer).
    pub fn sign_in(&self, password: &str) -> Req {
        let mut body = json!({
            "user_id": self.user_id,
            "password": password,
            "account_type": self.account_type,
        });
        if let (Some(token), Some(map)) = (&self.device_token, body.as_object_mut()) {
            map.insert("device_token".into(), Value::String(token.clone()));
        }
        Req::post_json("/api/v1/sessions", &body)
    }

    /// A sign-in from a device the account has not seen (a stranger, or a new browser): it
    /// counts failures on the account, and a success adds a device and notifies the owner.
    pub fn sign_in_from_new_device(&self, password: &str) -> Req {
        sign_in_req(&self.user_id, password, &self.account_type)
    }

    pub fn me(&self) -> anyhow::Result<Req> {
        Req::get("/api/v1/me").with_bearer(&self.token)
    }
}

pub fn sign_in_req(user_id: &str, password: &str, account_type: &str) -> Req {
    Req::post_json(
        "/api/v1/sessions",
        &json!({"user_id": user_id, "password": password, "account_type": account_type}),
    )
}

/// Writes a registry of `rows` records (CSV, the import contract's columns) and returns
/// its first `cards` records.
pub fn write_registry(path: &Path, rows: u64, cards: usize) -> anyhow::Result<Vec<Card>> {
    write_demo_registry(path, rows, REGISTRY_SEED).context("writing the registry file")?;
    let mut reader = csv::Reader::from_path(path)?;
    let mut out = Vec::with_capacity(cards);
    for record in reader.records().take(cards) {
        let record = record?;
        let cell = |i: usize| record.get(i).map(str::to_owned).unwrap_or_default();
        out.push(Card {
            account_type: cell(0),
            number: cell(1),
            verification: cell(2),
            email: cell(5),
        });
    }
    ensure!(
        out.len() == cards,
        "the registry has fewer than {cards} records"
    );
    Ok(out)
}

/// Registers every card (with `concurrency` clients) and signs each account in once.
pub async fn register(
    addr: SocketAddr,
    cards: &[Card],
    concurrency: usize,
) -> anyhow::Result<Vec<Account>> {
    let concurrency = concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..concurrency {
        let mine: Vec<(usize, Card)> = cards
            .iter()
            .cloned()
            .enumerate()
            .skip(lane)
            .step_by(concurrency)
            .collect();
        tasks.spawn(async move {
            let mut conn = Conn::new(addr)?;
            let mut done = Vec::with_capacity(mine.len());
            for (i, card) in mine {
                done.push((i, register_one(&mut conn, i, &card).await?));
            }
            anyhow::Ok(done)
        });
    }
    let mut accounts = Vec::with_capacity(cards.len());
    while let Some(done) = tasks.join_next().await {
        accounts.extend(done.context("a registration task failed")??);
    }
    accounts.sort_by_key(|(i, _)| *i);
    Ok(accounts.into_iter().map(|(_, a)| a).collect())
}

async fn register_one(conn: &mut Conn, index: usize, card: &Card) -> anyhow::Result<Account> {
    let user_id = format!("bench.user{index:05}");
    let verified = expect_json(
        conn,
        &Req::post_json(
            "/api/v1/registration/verify-card",
            &json!({"account_type": card.account_type, "number": card.number, "verification": card.verification}),
        ),
        200,
    )
    .await
    .context("verify-card")?;
    let token = text(&verified, "registration_token")?;
    expect_json(
        conn,
        &Req::post_json(
            "/api/v1/registration/complete",
            &json!({
                "registration_token": token,
                "user_id": user_id,
                "password": PASSWORD,
                "security_answers": [],
                "code_channel": "email"
            }),
        ),
        201,
    )
    .await
    .context("registration/complete")?;
    let session = expect_json(
        conn,
        &sign_in_req(&user_id, PASSWORD, &card.account_type),
        201,
    )
    .await
    .context("the first sign-in")?;
    Ok(Account {
        user_id,
        account_type: card.account_type.clone(),
        token: text(&session, "session_token")?,
        device_token: text(&session, "device_token").ok(),
    })
}

/// Sends `req`, fails unless the status is `want`, and returns the JSON body.
async fn expect_json(conn: &mut Conn, req: &Req, want: u16) -> anyhow::Result<Value> {
    let (status, body) = conn.send(req).await?;
    if status != want {
        // Problem documents never echo card data, so the body is safe to show.
        bail!(
            "{} answered {status}: {}",
            req.path,
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

fn text(v: &Value, key: &str) -> anyhow::Result<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {key} in the answer"))
}
