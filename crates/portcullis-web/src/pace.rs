//! Answers that must not tell by their timing: the anonymous recovery steps (forgot
//! password start, forgot User ID start, resend and code) answer no sooner than
//! [`RECOVERY_FLOOR`] after the request arrived. The use cases already do the same
//! statements for known and unknown User IDs and addresses; what a known one does more
//! (its code and message written, the delivery worker woken) is a millisecond or two, and
//! the floor hides it: both answer at the floor, and the work behind it varies unseen.

use std::future::Future;
use std::time::Duration;

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
