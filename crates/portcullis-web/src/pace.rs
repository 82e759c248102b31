//! Answers that must not tell by their timing: every step of both recoveries (forgot
//! password start, card ID or security answers, code, resend, reset; forgot User ID start,
//! code, resend), in the API and on the pages, answers no sooner than [`RECOVERY_FLOOR`]
//! after the request arrived ([`recovery_floor`], a layer on the whole public router). The use cases already do the same
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

/// The anonymous recovery steps: their POSTs, in the API and on the pages.
fn is_recovery_step(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (path.starts_with("/api/v1/recovery/")
            || path == "/recover/password"
            || path == "/recover/user-id"
            || path.starts_with("/recover/"))
}

/// Middleware: a recovery step answers no sooner than [`RECOVERY_FLOOR`] (a known card's
/// guard claims, a known address's code and message are work an unknown one does not do).
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
        ] {
            assert!(is_recovery_step(&Method::POST, path), "{path}");
            assert!(!is_recovery_step(&Method::GET, path), "{path}");
        }
        for path in [
            "/api/v1/sessions",
            "/signin",
            "/register",
            "/api/v1/recoveryx",
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
