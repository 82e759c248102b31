//! The lockout rule as a state machine, over HTTP: random interleavings of wrong and right
//! answers (sign-in, the current password on `POST /me/password` and `POST /me/contact`),
//! clock advances and password resets by recovery, from several client addresses, run
//! against the real application and against the pure machine (`LockState` of
//! `core/src/lockout.rs`). After every step the answer must be the machine's: never more
//! than the limit of wrong answers before the lock, 423 only to the right password, the
//! owner told once per lock, and a lock that always ends.

use portcullis_core::clock::Clock;
use portcullis_core::lockout::{Claim, LockState, LockoutPolicy};
use portcullis_testkit::{both, Backend, TestApp, ANN, PASSWORD};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::json;

use crate::not_me::{app_with_addresses, post, sign_in_from};

const LOCK_FOR: i64 = 3_600;
const OTHER_PASSWORD: &str = "Brand-New-Day-9";
const ADDRESSES: [&str; 4] = ["192.0.2.10", "198.51.100.20", "203.0.113.30", "192.0.2.40"];

#[derive(Clone, Debug)]
enum Op {
    SignIn {
        right: bool,
        ip: usize,
    },
    /// The current password on `POST /me/password` (wrong only: a right one would change
    /// it) or `POST /me/contact` (`contact`), through the newest session.
    CurrentPassword {
        right: bool,
        contact: bool,
        ip: usize,
    },
    Advance(i64),
    /// Forgot password by card ID + code, and a new password.
    Reset {
        ip: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ip = 0..ADDRESSES.len();
    prop_oneof![
        // Mostly wrong answers, so that cases reach the lock often.
        5 => (prop::bool::weighted(0.15), ip.clone()).prop_map(|(right, ip)| Op::SignIn { right, ip }),
        4 => (prop::bool::weighted(0.25), any::<bool>(), ip.clone())
            .prop_map(|(right, contact, ip)| Op::CurrentPassword { right: right && contact, contact, ip }),
        2 => prop_oneof![Just(60), Just(LOCK_FOR - 1), Just(LOCK_FOR)].prop_map(Op::Advance),
        1 => ip.prop_map(|ip| Op::Reset { ip }),
    ]
}

/// What the machine says a password answer gets: the status, and whether it locked.
fn model_answer(
    state: &mut LockState,
    policy: &LockoutPolicy,
    right: bool,
    now: i64,
) -> (bool, bool) {
    let now = portcullis_core::clock::UnixTime(now);
    match state.claim(policy, now) {
        Claim::Granted(n) => {
            if right {
                state.succeed();
                (true, false)
            } else {
                (false, state.fail(policy, n, now))
            }
        }
        Claim::Locked(_) | Claim::Exhausted => (false, false),
    }
}

fn lock_notices(app: &TestApp) -> usize {
    app.outbox_messages()
        .iter()
        .filter(|m| m["subject"].as_str().unwrap_or("").contains("is locked"))
        .count()
}

/// Runs one case; how many locks it set (and saw end), and how many of them a current
/// password set.
async fn run_case(backend: Backend, ops: &[Op]) -> (usize, usize) {
    let app = app_with_addresses(backend, |c| {
        c.lockout.lock_for_secs = LOCK_FOR;
        // Only the lockout rule is under test: no per-address throttle, and sessions that
        // outlive the clock's jumps.
        c.limits.enabled = false;
        c.session.idle_secs = 365 * 86_400;
        c.session.absolute_secs = 365 * 86_400;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let policy = LockoutPolicy {
        lock_after_failures: 6,
        lock_for_secs: LOCK_FOR,
        device_allowance: 4,
    };
    let mut state = LockState::default();
    let mut locks = 0;
    let mut by_current_password = 0;
    let mut password = PASSWORD;
    let mut session: Option<String> = None;
    let mut emails = 0;
    for (i, op) in ops.iter().enumerate() {
        let now = app.clock.now().0;
        let context = format!("step {i} {op:?} of {ops:?}");
        match op {
            Op::SignIn { right, ip } => {
                let given = if *right { password } else { "Wrong-Horse-42" };
                let was_locked = state.is_locked(portcullis_core::clock::UnixTime(now));
                let (ok, locked) = model_answer(&mut state, &policy, *right, now);
                locks += usize::from(locked);
                let (status, body) = sign_in_from(&app, ADDRESSES[*ip], given, None).await;
                let expected = match (ok, right, was_locked) {
                    (true, _, _) => 201,
                    (false, true, true) => 423,
                    _ => 401,
                };
                assert_eq!(status, expected, "{context}: {body}");
                if ok {
                    session = body["session_token"].as_str().map(str::to_owned);
                }
            }
            Op::CurrentPassword { right, contact, ip } => {
                let Some(bearer) = session.clone() else {
                    continue;
                };
                let given = if *right { password } else { "Wrong-Horse-42" };
                let (ok, locked) = model_answer(&mut state, &policy, *right, now);
                locks += usize::from(locked);
                by_current_password += usize::from(locked);
                let (status, body) = if *contact {
                    emails += 1;
                    post(
                        &app,
                        ADDRESSES[*ip],
                        "/api/v1/me/contact",
                        Some(&bearer),
                        &json!({
                        "current_password": given, "field": "email",
                        "value": format!("ann{emails}@example.org")}),
                    )
                    .await
                } else {
                    post(
                        &app,
                        ADDRESSES[*ip],
                        "/api/v1/me/password",
                        Some(&bearer),
                        &json!({
                        "current_password": given, "new_password": "Never-Set-This-1"}),
                    )
                    .await
                };
                assert_eq!(status, if ok { 202 } else { 400 }, "{context}: {body}");
            }
            Op::Advance(secs) => app.clock.advance(*secs),
            Op::Reset { ip } => {
                let ip = ADDRESSES[*ip];
                let (_, start) = post(
                    &app,
                    ip,
                    "/api/v1/recovery/password/start",
                    None,
                    &json!({"user_id": "ann.example"}),
                )
                .await;
                let token = start["recovery_token"].as_str().unwrap().to_owned();
                let seen = app.outbox_messages().len();
                let (status, body) = post(
                    &app,
                    ip,
                    "/api/v1/recovery/password/verify",
                    None,
                    &json!({"recovery_token": token, "card_id": ANN.verification}),
                )
                .await;
                assert_eq!(status, 200, "{context}: {body}");
                let code = crate::recovery::latest_code(&app, "ann@example.com", seen).await;
                let (status, body) = post(
                    &app,
                    ip,
                    "/api/v1/recovery/password/verify",
                    None,
                    &json!({"recovery_token": token, "code": code}),
                )
                .await;
                assert_eq!(status, 200, "{context}: {body}");
                let reset = body["reset_token"].as_str().unwrap().to_owned();
                let next = if password == PASSWORD {
                    OTHER_PASSWORD
                } else {
                    PASSWORD
                };
                let (status, body) = post(
                    &app,
                    ip,
                    "/api/v1/recovery/password/reset",
                    None,
                    &json!({"reset_token": reset, "new_password": next}),
                )
                .await;
                assert_eq!(status, 204, "{context}: {body}");
                password = next;
                state.unlock();
                session = None;
            }
        }
        assert_eq!(lock_notices(&app), locks, "{context}: one notice per lock");
    }
    // However the case ended, the lock ends: after its time the right password signs in.
    app.clock.advance(LOCK_FOR);
    let (status, body) = sign_in_from(&app, ADDRESSES[0], password, None).await;
    assert_eq!(status, 201, "the lock ended after {ops:?}: {body}");
    (locks, by_current_password)
}

async fn lockout_state_machine(backend: Backend) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = proptest::collection::vec(op(), 20..60);
    let (mut locks, mut by_current_password) = (0, 0);
    for _ in 0..cases {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let (l, c) = run_case(backend, &ops).await;
        locks += l;
        by_current_password += c;
    }
    // The cases reach the lock, through sign-ins and current passwords alike, not only the
    // counts below it.
    eprintln!("{cases} cases, {locks} locks, {by_current_password} by a current password");
    assert!(
        locks > by_current_password,
        "{locks} locks, {by_current_password} by current passwords"
    );
    assert!(
        by_current_password >= 1,
        "{locks} locks, none by a current password"
    );
}
both!(
    the_lockout_rule_holds_under_random_interleavings,
    lockout_state_machine
);
