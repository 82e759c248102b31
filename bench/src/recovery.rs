//! Figure 9 (issue 13): the timing of every recovery step a stranger can reach, known
//! against unknown User IDs and email addresses. Each pair is sent back to back on one
//! connection, in alternating order, and each step's two medians are compared: a step that
//! did less work for an unknown account would answer measurably faster and tell a stranger
//! who has an account.

use std::time::Instant;

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use crate::load::{self, Conn, Req};
use crate::report::ms;
use crate::seed::{Account, Card};
use crate::server::Server;
use crate::suite::{progress, Ctx};
use crate::sys::CpuMark;

/// The steps measured, in the order each pair runs them.
const STEPS: [&str; 5] = [
    "forgot password: start (User ID)",
    "forgot password: wrong card ID",
    "forgot User ID: start (email)",
    "forgot User ID: resend at once",
    "forgot User ID: wrong code",
];

/// The same length as the real one, one letter changed: not a registered address.
fn stranger_email(known: &str) -> String {
    let mut out: String = "zq".into();
    out.push_str(known.get(2..).unwrap_or_default());
    out
}

fn token(body: &[u8], key: &str) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get(key)?
        .as_str()
        .map(str::to_owned)
}

/// One side of a pair: every step for one person (known or not), timed; the statuses
/// alongside, so the two sides can be checked to answer alike.
async fn one_side(
    conn: &mut Conn,
    user_id: &str,
    email: &str,
) -> anyhow::Result<([u32; 5], [u16; 5])> {
    let mut micros = [0u32; 5];
    let mut statuses = [0u16; 5];
    let mut timed = |i: usize, started: Instant, status: u16| {
        if let (Some(m), Some(s)) = (micros.get_mut(i), statuses.get_mut(i)) {
            *m = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            *s = status;
        }
    };
    let req = Req::post_json(
        "/api/v1/recovery/password/start",
        &json!({"user_id": user_id}),
    );
    let t = Instant::now();
    let (status, body) = conn.send(&req).await?;
    timed(0, t, status);
    let recovery = token(&body, "recovery_token").context("no recovery token")?;
    let req = Req::post_json(
        "/api/v1/recovery/password/verify",
        &json!({"recovery_token": recovery, "card_id": "0000"}),
    );
    let t = Instant::now();
    let (status, _) = conn.send(&req).await?;
    timed(1, t, status);
    let req = Req::post_json(
        "/api/v1/recovery/user-id/start",
        &json!({"email": email, "channel": "email"}),
    );
    let t = Instant::now();
    let (status, body) = conn.send(&req).await?;
    timed(2, t, status);
    let step = token(&body, "recovery_token").context("no forgot-User-ID token")?;
    let req = Req::post_json(
        "/api/v1/recovery/user-id/resend",
        &json!({"recovery_token": step}),
    );
    let t = Instant::now();
    let (status, _) = conn.send(&req).await?;
    timed(3, t, status);
    let req = Req::post_json(
        "/api/v1/recovery/user-id/verify",
        &json!({"recovery_token": step, "code": "000000"}),
    );
    let t = Instant::now();
    let (status, _) = conn.send(&req).await?;
    timed(4, t, status);
    Ok((micros, statuses))
}

pub async fn timing(
    ctx: &mut Ctx,
    server: &Server,
    accounts: &[Account],
    cards: &[Card],
    fig: &str,
    label: &str,
) -> anyhow::Result<()> {
    progress(&format!(
        "{label}: figure {fig}: recovery step timing, known vs unknown"
    ));
    ensure!(!accounts.is_empty(), "no accounts");
    let mut conn = Conn::new(server.addr)?;
    let mut known: Vec<Vec<u32>> = vec![Vec::new(); STEPS.len()];
    let mut unknown: Vec<Vec<u32>> = vec![Vec::new(); STEPS.len()];
    let mut differing = 0usize;
    let mark = CpuMark::now(Some(server.pid));
    // Four of the five steps answer at the 25 ms floor: ten requests a pair take about
    // a quarter of a second, so this figure gets three times figure 8's time.
    let deadline = Instant::now() + 3 * ctx.sizes.timing_limit;
    let mut pairs = 0;
    for k in 0..ctx.sizes.timing_pairs {
        if Instant::now() >= deadline {
            break;
        }
        let i = k % accounts.len();
        let (Some(account), Some(card)) = (accounts.get(i), cards.get(i)) else {
            continue;
        };
        let stranger_id = format!("bench.none{:05}", k % 100_000);
        let stranger = stranger_email(&card.email);
        let known_first = k % 2 == 0;
        let mut sides = Vec::with_capacity(2);
        for first in [true, false] {
            let is_known = first == known_first;
            let side = if is_known {
                one_side(&mut conn, &account.user_id, &card.email).await?
            } else {
                one_side(&mut conn, &stranger_id, &stranger).await?
            };
            sides.push((is_known, side));
        }
        if let [(_, (_, a)), (_, (_, b))] = sides.as_slice() {
            if a != b {
                differing += 1;
            }
        }
        for (is_known, (micros, _)) in sides {
            let into = if is_known { &mut known } else { &mut unknown };
            for (samples, m) in into.iter_mut().zip(micros) {
                samples.push(m);
            }
        }
        pairs += 1;
    }
    let cpu = mark.used_since(Some(server.pid), ctx.ticks);
    for (s, step) in STEPS.iter().enumerate() {
        let (Some(kn), Some(un)) = (
            known.get(s).and_then(|v| load::median(v)),
            unknown.get(s).and_then(|v| load::median(v)),
        ) else {
            continue;
        };
        let ratio = f64::from(kn) / f64::from(un.max(1));
        ctx.report.info(
            fig,
            format!("{label}: {step}: median known / unknown ({pairs} pairs)"),
            format!(
                "{} / {}",
                ms(f64::from(kn) / 1000.0),
                ms(f64::from(un) / 1000.0)
            ),
        );
        ctx.report.check(
            fig,
            format!("{label}: {step}: known ÷ unknown median"),
            format!("{ratio:.3}"),
            "within ±10%",
            (ratio - 1.0).abs() <= 0.10,
        );
    }
    ctx.report.cpu(cpu);
    if differing > 0 {
        ctx.report.note(
            fig,
            format!("{label}: in {differing} pairs the two sides answered with different statuses"),
        );
    }
    Ok(())
}
