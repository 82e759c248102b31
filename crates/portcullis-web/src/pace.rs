//! Answers that must not tell by their timing: every step of both recoveries (forgot
//! password start, card ID or security answers, code, resend, reset; forgot User ID start,
//! code, resend), in the API and on the pages, answers no sooner than [`RECOVERY_FLOOR`]
//! after the request arrived ([`recovery_floor`], a layer on the whole public router), and
//! so does every card check (registration's first step, linking a card). The use cases already do the same
//! statements for known and unknown User IDs and addresses; what a known one does more
//! (its code and message written, the delivery worker woken) is a millisecond or two, and
//! the floor hides it: both answer at the floor, and the work behind it varies unseen.

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Longer than either path takes on a loaded node (a few milliseconds), short enough for
/// a person not to notice.
pub const RECOVERY_FLOOR: Duration = Duration::from_millis(25);

/// Runs `work` and answers no sooner than `floor` after it started (monotonic time).
pub async fn at_least<T>(floor: Duration, work: impl Future<Output = T>) -> T {
    let started = tokio::time::Instant::now();
    let out = work.await;
    tokio::time::sleep_until(started + floor).await;
    out
}

/// The paced POSTs, in the API and on the pages: every recovery step, and every card check
/// (registration's first step, linking a card), where a right card ID that cannot be used
/// must not answer later than a wrong one (its holder's notice is written behind the floor).
fn is_recovery_step(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (path.starts_with("/api/v1/recovery/")
            || path.starts_with("/recover/")
            || path == "/recover/password"
            || path == "/recover/user-id"
            || path == "/api/v1/registration/verify-card"
            || path == "/register"
            || path == "/api/v1/me/cards"
            || path == "/security/cards")
}

/// Middleware: a recovery step or a card check answers no sooner than [`RECOVERY_FLOOR`] (a
/// known card's guard claims, a known address's code and message, an unusable card's notice
/// to its holder are work the other answer does not do).
pub async fn recovery_floor(request: Request, next: Next) -> Response {
    if is_recovery_step(request.method(), request.uri().path()) {
        at_least(RECOVERY_FLOOR, next.run(request)).await
    } else {
        next.run(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recovery_post_and_nothing_else_is_paced() {
        for path in [
            "/api/v1/recovery/password/start",
            "/api/v1/recovery/password/verify",
            "/api/v1/recovery/password/resend",
            "/api/v1/recovery/user-id/start",
            "/api/v1/recovery/user-id/verify",
            "/recover/password",
            "/recover/password/verify",
            "/recover/password/code",
            "/recover/user-id",
            "/recover/user-id/code",
            "/api/v1/recovery/card/start",
            "/api/v1/recovery/card/verify",
            "/recover/card",
            "/recover/card/verify",
            "/api/v1/registration/verify-card",
            "/register",
            "/api/v1/me/cards",
            "/security/cards",
        ] {
            assert!(is_recovery_step(&Method::POST, path), "{path}");
            assert!(!is_recovery_step(&Method::GET, path), "{path}");
        }
        for path in [
            "/api/v1/sessions",
            "/signin",
            "/register/account",
            "/api/v1/recoveryx",
            "/security/cards/3/unlink",
        ] {
            assert!(!is_recovery_step(&Method::POST, path), "{path}");
        }
    }

    #[tokio::test]
    async fn an_answer_waits_for_the_floor() {
        let started = tokio::time::Instant::now();
        assert_eq!(at_least(Duration::from_millis(30), async { 7 }).await, 7);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
    }
}
