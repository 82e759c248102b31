//! Slow salted hashing (argon2id) for passwords, security answers and recovery codes, on a
//! fixed set of worker threads with a bounded queue.
//!
//! Why a pool: argon2id is memory-hard by design, so every hash in flight holds `m` KiB. With
//! one hash per request an attack (or a campaign) drives memory up without bound and
//! throughput down. Here `workers` threads each own one reusable memory block; at most
//! `queue` jobs wait; beyond that [`HashError::Overloaded`] comes back at once, so memory stays
//! near `workers × m` under any load and the caller can answer 503 with Retry-After quickly.
//!
//! A caller that must do other work before it hashes (a sign-in looks up the account first)
//! [`HashPool::reserve`]s a place first: when the pool is full it learns so before spending
//! anything else, and the place it holds cannot be taken by someone else meanwhile. Every job
//! holds its place until a worker has finished it, so `workers + queue` bounds the work in
//! flight exactly, even when the caller stops waiting.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so a change of parameters
//! is detected on verification (`needs_rehash`) and old hashes keep working. Hashes imported
//! from an earlier login system (bcrypt, PBKDF2, scrypt, other argon2: [`crate::legacy`]) are
//! checked by the same workers, and always answer `needs_rehash`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use portcullis_argon2::{Kernel, Memory, Params};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::ct::ct_eq;
use crate::token::random_bytes;

const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// argon2id cost parameters. The default is OWASP's (m=19 MiB, t=2, p=1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashParams {
    /// Cheap parameters for tests only: never configure these in production.
    pub fn insecure_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// The kernel's parameters, once the `argon2` crate's rules (RFC 9106's bounds) accept
    /// them: a stored hash's parameters are checked this way before any memory is taken.
    fn to_kernel(self) -> Result<Params, HashError> {
        argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| HashError::Internal(format!("invalid argon2 parameters: {e}")))?;
        Ok(Params {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        })
    }
}

/// The outcome of checking a secret against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    Match { needs_rehash: bool },
    Mismatch,
}

impl Verification {
    pub fn is_match(self) -> bool {
        matches!(self, Verification::Match { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the hashing pool is full")]
    Overloaded,
    #[error("the hashing pool has stopped")]
    Stopped,
    #[error("hashing failed: {0}")]
    Internal(String),
}

enum Work {
    /// Several secrets hashed by one worker in one turn (a registration's password and
    /// security answers take one place in the queue, not four).
    Hash {
        secrets: Vec<Zeroizing<Vec<u8>>>,
        reply: oneshot::Sender<Result<Vec<String>, HashError>>,
    },
    /// `stored: None` hashes the secret anyway and answers `Mismatch`: the cost of checking
    /// an unknown user is the cost of checking a known one.
    Verify {
        secret: Zeroizing<Vec<u8>>,
        stored: Option<String>,
        /// `stored` is the unknown-user dummy: whatever it answers, the answer is `Mismatch`.
        dummy: bool,
        reply: oneshot::Sender<Result<Verification, HashError>>,
    },
}

/// A job and the place it holds, given back when the worker drops the job.
struct Job {
    work: Work,
    _slot: Slot,
}

/// A place in the pool (a worker or a queue position), reserved by [`HashPool::reserve`]
/// and given back when dropped: unused, or when the job it was spent on is finished.
#[must_use = "a reserved place is given back when dropped"]
pub struct Slot {
    pool: HashPool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slot {
    /// Hashes several secrets as one job (see [`HashPool::hash_many`]), in this place.
    pub async fn hash_many(self, secrets: &[&[u8]]) -> Result<Vec<String>, HashError> {
        let secrets = secrets.iter().map(|s| Zeroizing::new(s.to_vec())).collect();
        self.run(|reply| Work::Hash { secrets, reply }).await
    }

    /// Checks a secret (see [`HashPool::verify`]), in this place.
    pub async fn verify(
        self,
        secret: &[u8],
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let secret = Zeroizing::new(secret.to_vec());
        let stored = stored.map(str::to_owned);
        self.run(|reply| Work::Verify {
            secret,
            stored,
            dummy: false,
            reply,
        })
        .await
    }

    /// A sign-in's check for a User ID that has no account: always `Mismatch`, at the cost of
    /// the pool's unknown-user hash when one is set ([`HashPool::set_unknown_user_hash`]),
    /// else of the current argon2id (as `verify(_, None)`).
    pub async fn verify_unknown_user(self, secret: &[u8]) -> Result<Verification, HashError> {
        let secret = Zeroizing::new(secret.to_vec());
        let stored = self.pool.unknown_user_hash();
        let dummy = stored.is_some();
        self.run(|reply| Work::Verify {
            secret,
            stored,
            dummy,
            reply,
        })
        .await
    }

    /// Queues `work` with this place and waits for its answer.
    async fn run<T>(
        self,
        work: impl FnOnce(oneshot::Sender<Result<T, HashError>>) -> Work,
    ) -> Result<T, HashError> {
        let (reply, rx) = oneshot::channel();
        let pool = self.pool.clone();
        pool.submit(Job {
            work: work(reply),
            _slot: self,
        })?;
        rx.await.map_err(|_| HashError::Stopped)?
    }
}

/// A handle on the hashing workers; cheap to clone.
#[derive(Clone)]
pub struct HashPool {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Sender<Job>,
    params: HashParams,
    workers: usize,
    queue: usize,
    busy: Arc<AtomicUsize>,
    /// Places reserved: jobs queued or being hashed, and places held for a job to come.
    in_flight: AtomicUsize,
    /// Jobs refused because every place was taken (answered 503), since start.
    refused: std::sync::atomic::AtomicU64,
    /// What an unknown user's check runs against instead of a fresh argon2id: a dummy in
    /// the form most imported accounts still carry ([`HashPool::set_unknown_user_hash`]).
    unknown_user_hash: std::sync::RwLock<Option<String>>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("params", &self.inner.params)
            .field("workers", &self.inner.workers)
            .field("queue", &self.inner.queue)
            .finish()
    }
}

impl HashPool {
    /// Starts `workers` hashing threads (at least one) with room for `queue` waiting jobs,
    /// at normal priority.
    pub fn start(params: HashParams, workers: usize, queue: usize) -> Result<Self, HashError> {
        Self::start_with_nice(params, workers, queue, 0)
    }

    /// Like [`HashPool::start`], with the hashing threads at scheduling niceness `nice`
    /// (0–19, Linux; elsewhere ignored). Above 0, request handling (normal priority) gets a
    /// core whenever it needs one while the hashing threads still use every idle cycle: under
    /// a flood of sign-ins, pages and `/me` stay fast and refusals stay cheap.
    pub fn start_with_nice(
        params: HashParams,
        workers: usize,
        queue: usize,
        nice: i32,
    ) -> Result<Self, HashError> {
        let argon_params = params.to_kernel()?;
        let workers = workers.max(1);
        // The places (`in_flight`) bound the jobs; the channel only needs room for them all.
        let (tx, rx) = crossbeam_channel::bounded::<Job>(workers + queue);
        let busy = Arc::new(AtomicUsize::new(0));
        for index in 0..workers {
            let rx = rx.clone();
            let busy = busy.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority(nice);
                    worker(rx, params, argon_params, busy)
                })
                .map_err(|e| HashError::Internal(format!("cannot start hashing worker: {e}")))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                params,
                workers,
                queue,
                busy,
                in_flight: AtomicUsize::new(0),
                refused: std::sync::atomic::AtomicU64::new(0),
                unknown_user_hash: std::sync::RwLock::new(None),
            }),
        })
    }

    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    /// Makes an unknown user's sign-in check ([`Slot::verify_unknown_user`]) run against
    /// `stored` (see
    /// [`crate::legacy::unknown_user_hash`]) and answer `Mismatch`; `None` goes back to the
    /// current argon2id. The same-time rule while imported accounts keep their old hashes.
    pub fn set_unknown_user_hash(&self, stored: Option<String>) {
        if let Ok(mut slot) = self.inner.unknown_user_hash.write() {
            *slot = stored;
        }
    }

    /// The dummy an unknown user's check runs against, if one is set.
    pub fn unknown_user_hash(&self) -> Option<String> {
        self.inner
            .unknown_user_hash
            .read()
            .ok()
            .and_then(|s| s.clone())
    }

    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.inner.tx.len()
    }

    pub fn queue_capacity(&self) -> usize {
        self.inner.queue
    }

    /// Workers currently hashing.
    pub fn busy_workers(&self) -> usize {
        self.inner.busy.load(Ordering::Relaxed)
    }

    /// Places taken: jobs waiting or hashing, and places reserved for a job to come.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Jobs refused since start because every place was taken (`/metrics`).
    pub fn refusals(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) -> HashError {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        HashError::Overloaded
    }

    /// Reserves a place for one job, or answers [`HashError::Overloaded`] at once when all
    /// `workers + queue` places are taken. Costs two atomic operations: call it before any
    /// other work a refused request would waste.
    pub fn reserve(&self) -> Result<Slot, HashError> {
        let capacity = self.inner.workers + self.inner.queue;
        self.inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .map_err(|_| self.refuse())?;
        Ok(Slot { pool: self.clone() })
    }

    /// Hashes `secret` with a fresh random salt, returning a PHC string.
    pub async fn hash(&self, secret: &[u8]) -> Result<String, HashError> {
        self.hash_many(&[secret])
            .await?
            .pop()
            .ok_or_else(|| HashError::Internal("no hash returned".into()))
    }

    /// Hashes several secrets as one job, each with its own salt, in order.
    pub async fn hash_many(&self, secrets: &[&[u8]]) -> Result<Vec<String>, HashError> {
        self.reserve()?.hash_many(secrets).await
    }

    /// Checks `secret` against `stored`; with `None` it spends the same effort and answers
    /// `Mismatch` (used for unknown users so that timing does not tell them apart).
    pub async fn verify(
        &self,
        secret: &[u8],
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        self.reserve()?.verify(secret, stored).await
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        match self.inner.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(self.refuse()),
            Err(TrySendError::Disconnected(_)) => Err(HashError::Stopped),
        }
    }
}

/// Sets this thread's niceness (Linux: `setpriority` on the thread's own id changes only this
/// thread). A failure leaves the thread at normal priority, which is only slower under load.
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice.min(19))
    {
        tracing::warn!(error = %e, "could not lower the hashing threads' priority");
    }
}

/// One worker: owns its argon2 memory and reuses it for every job.
fn worker(rx: Receiver<Job>, params: HashParams, argon_params: Params, busy: Arc<AtomicUsize>) {
    let mut memory = Memory::new();
    while let Ok(Job { work, _slot: slot }) = rx.recv() {
        busy.fetch_add(1, Ordering::Relaxed);
        // The place is given back once the work is done and before the answer goes out, so a
        // caller that has its answer never finds its own job still counted.
        match work {
            Work::Hash { secrets, reply } => {
                let result = secrets
                    .iter()
                    .map(|secret| {
                        let salt = random_bytes::<SALT_LEN>();
                        compute(&argon_params, secret, &salt, &mut memory)
                            .map(|out| encode_phc(params, &salt, out.as_ref()))
                    })
                    .collect();
                busy.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
                let _ = reply.send(result);
            }
            Work::Verify {
                secret,
                stored,
                dummy,
                reply,
            } => {
                let result = verify_one(
                    params,
                    &argon_params,
                    &secret,
                    stored.as_deref(),
                    &mut memory,
                );
                let result = if dummy {
                    Ok(Verification::Mismatch)
                } else {
                    result
                };
                busy.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
                let _ = reply.send(result);
            }
        }
    }
}

fn verify_one(
    current: HashParams,
    current_argon: &Params,
    secret: &[u8],
    stored: Option<&str>,
    memory: &mut Memory,
) -> Result<Verification, HashError> {
    let Some(stored) = stored else {
        let salt = random_bytes::<SALT_LEN>();
        compute(current_argon, secret, &salt, memory)?;
        return Ok(Verification::Mismatch);
    };
    let Some(phc) = decode_phc(stored) else {
        // A hash imported from an earlier login system (see `legacy`): checked as it is, and
        // always asks for a rehash, so the first success replaces it with our argon2id.
        match crate::legacy::verify(secret, stored) {
            Ok(true) => return Ok(Verification::Match { needs_rehash: true }),
            Ok(false) => return Ok(Verification::Mismatch),
            Err(_) => {}
        }
        // A malformed stored hash must not be a way in; still spend the effort.
        let salt = random_bytes::<SALT_LEN>();
        compute(current_argon, secret, &salt, memory)?;
        return Err(HashError::Internal(
            "stored hash is neither an argon2id PHC string nor an importable form".into(),
        ));
    };
    let argon_params = phc.params.to_kernel()?;
    let out = compute(&argon_params, secret, &phc.salt, memory)?;
    if ct_eq(&out[..], &phc.hash) {
        Ok(Verification::Match {
            needs_rehash: phc.params != current,
        })
    } else {
        Ok(Verification::Mismatch)
    }
}

/// argon2id v0x13 of `secret` with `salt`, in the worker's reused `memory`, by the reference
/// C's fill loop for the widest vectors this CPU has (`portcullis-argon2`, figure 12 of the
/// benchmark); the library wipes the block when the hash is done.
fn compute(
    params: &Params,
    secret: &[u8],
    salt: &[u8],
    memory: &mut Memory,
) -> Result<Zeroizing<[u8; OUTPUT_LEN]>, HashError> {
    let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
    portcullis_argon2::hash_with(
        Kernel::best(),
        *params,
        portcullis_argon2::Input::new(secret, salt),
        out.as_mut(),
        memory,
    )
    .map_err(|e| HashError::Internal(e.to_string()))?;
    Ok(out)
}

fn encode_phc(params: HashParams, salt: &[u8], out: &[u8]) -> String {
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

struct Phc {
    params: HashParams,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn decode_phc(s: &str) -> Option<Phc> {
    let mut parts = s.split('$');
    if !parts.next()?.is_empty() || parts.next()? != "argon2id" || parts.next()? != "v=19" {
        return None;
    }
    let mut params = HashParams {
        memory_kib: 0,
        iterations: 0,
        parallelism: 0,
    };
    for kv in parts.next()?.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => params.memory_kib = v,
            "t" => params.iterations = v,
            "p" => params.parallelism = v,
            _ => return None,
        }
    }
    let salt = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    let hash = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    if parts.next().is_some() || hash.len() != OUTPUT_LEN || salt.len() < 8 {
        return None;
    }
    Some(Phc { params, salt, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> HashPool {
        HashPool::start(HashParams::insecure_for_tests(), 2, 16).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let pool = pool();
        let phc = pool.hash(b"correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            pool.verify(b"correct horse", Some(&phc)).await.unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            pool.verify(b"Correct horse", Some(&phc)).await.unwrap(),
            Verification::Mismatch
        );
        assert_eq!(
            pool.verify(b"x", None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn hash_many_keeps_order() {
        let pool = pool();
        let hashes = pool.hash_many(&[b"one", b"two", b"three"]).await.unwrap();
        assert_eq!(hashes.len(), 3);
        assert!(pool
            .verify(b"two", Some(&hashes[1]))
            .await
            .unwrap()
            .is_match());
        assert!(!pool
            .verify(b"two", Some(&hashes[0]))
            .await
            .unwrap()
            .is_match());
    }

    #[tokio::test]
    async fn salts_differ() {
        let pool = pool();
        assert_ne!(
            pool.hash(b"a").await.unwrap(),
            pool.hash(b"a").await.unwrap()
        );
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_rehash() {
        let old = pool().hash(b"pw").await.unwrap();
        let newer = HashPool::start(
            HashParams {
                memory_kib: 128,
                iterations: 1,
                parallelism: 1,
            },
            1,
            4,
        )
        .unwrap();
        assert_eq!(
            newer.verify(b"pw", Some(&old)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn matches_the_reference_argon2_encoding() {
        // Our PHC string must verify with the argon2 crate's own PasswordVerifier.
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let phc = pool().hash(b"interop").await.unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(argon2::Argon2::default()
            .verify_password(b"interop", &parsed)
            .is_ok());
    }

    #[tokio::test]
    async fn malformed_hash_is_an_error_not_a_match() {
        assert!(pool()
            .verify(b"pw", Some("$argon2id$v=19$m=64$zz"))
            .await
            .is_err());
    }

    /// The hashing threads really run at the niceness asked for (read back from /proc), and
    /// the caller's own thread keeps its priority.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_the_niceness_asked_for() {
        fn nice_of(stat: &str) -> Option<i64> {
            // Fields after the ")" that ends the thread name: state is field 3, nice is 19.
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        }
        let own = || nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
        let before = own();
        let pool = HashPool::start_with_nice(HashParams::insecure_for_tests(), 2, 1, 7).unwrap();
        pool.hash(b"x").await.unwrap();
        let argon_threads = || {
            let mut found = Vec::new();
            for task in std::fs::read_dir("/proc/thread-self/..").unwrap() {
                let dir = task.unwrap().path();
                let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if name.trim().starts_with("argon2-") {
                    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
                    found.extend(nice_of(&stat));
                }
            }
            found
        };
        // The second thread may not have run yet: give it up to two seconds.
        let mut found = argon_threads();
        for _ in 0..200 {
            if found.iter().filter(|&&n| n == 7).count() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            found = argon_threads();
        }
        // Other tests' pools (at 0) may share this process under `cargo test`.
        assert!(
            found.iter().filter(|&&n| n == 7).count() >= 2,
            "this pool's two threads at niceness 7, found {found:?}"
        );
        assert_eq!(own(), before, "the caller's thread was changed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn places_are_reserved_before_the_work_and_held_until_it_is_done() {
        let slow = HashParams {
            memory_kib: 65_536,
            iterations: 3,
            parallelism: 1,
        };
        // One worker and one queue place: two places in all.
        let pool = HashPool::start(slow, 1, 1).unwrap();
        let a = pool.reserve().unwrap();
        let b = pool.reserve().unwrap();
        assert_eq!(pool.in_flight(), 2);
        // Full: refused at once, before any hashing, and so is a job that did not reserve.
        assert!(matches!(pool.reserve(), Err(HashError::Overloaded)));
        assert!(matches!(pool.hash(b"x").await, Err(HashError::Overloaded)));
        assert_eq!(pool.refusals(), 2, "each refusal is counted");
        // An unused place is given back when dropped.
        drop(b);
        assert_eq!(pool.in_flight(), 1);
        // A job whose caller stops waiting keeps its place until the worker has done it.
        let job = tokio::spawn(async move { a.hash_many(&[b"secret"]).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        job.abort();
        let _ = job.await;
        assert_eq!(
            pool.in_flight(),
            1,
            "the abandoned job still holds its place"
        );
        // A second job can still be queued behind it, then the pool is full again.
        let c = pool.reserve().unwrap();
        assert!(matches!(pool.reserve(), Err(HashError::Overloaded)));
        assert!(matches!(
            c.verify(b"x", None).await,
            Ok(Verification::Mismatch)
        ));
        // Both jobs are done: every place is free.
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn full_queue_answers_overloaded() {
        // One slow worker and a queue of one: the third concurrent job must be refused.
        let pool = HashPool::start(
            HashParams {
                memory_kib: 65_536,
                iterations: 3,
                parallelism: 1,
            },
            1,
            1,
        )
        .unwrap();
        let mut handles = Vec::new();
        for _ in 0..8 {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move { pool.hash(b"x").await }));
        }
        let mut overloaded = 0;
        for h in handles {
            if matches!(h.await.unwrap(), Err(HashError::Overloaded)) {
                overloaded += 1;
            }
        }
        assert!(overloaded >= 1, "expected refusals, got {overloaded}");
    }

    #[test]
    fn rfc9106_argon2id_test_vector() {
        // RFC 9106 §5.3: checks the engine under our pool (the kernel `compute` uses) against
        // the published tag.
        let mut out = [0u8; 32];
        let input = portcullis_argon2::Input {
            secret: &[1u8; 32],
            salt: &[2u8; 16],
            key: &[3u8; 8],
            ad: &[4u8; 12],
        };
        let params = Params {
            memory_kib: 32,
            iterations: 3,
            parallelism: 4,
        };
        portcullis_argon2::hash_with(Kernel::best(), params, input, &mut out, &mut Memory::new())
            .unwrap();
        assert_eq!(
            hex::encode(out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn the_pools_kernel_agrees_with_the_argon2_crate_at_the_servers_parameters() {
        // An independent implementation (the `argon2` crate) must make the same tag as the
        // kernel the workers call, at the production parameters and at a two-lane shape.
        for (m, t, p) in [(19_456, 2, 1), (1_024, 3, 2)] {
            let ours = HashParams {
                memory_kib: m,
                iterations: t,
                parallelism: p,
            };
            let mut memory = Memory::new();
            let tag = compute(
                &ours.to_kernel().unwrap(),
                b"pw 1234",
                b"saltsaltsalt",
                &mut memory,
            )
            .unwrap();
            let theirs = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                argon2::Params::new(m, t, p, Some(OUTPUT_LEN)).unwrap(),
            );
            let mut out = [0u8; OUTPUT_LEN];
            theirs
                .hash_password_into(b"pw 1234", b"saltsaltsalt", &mut out)
                .unwrap();
            assert_eq!(*tag, out, "m={m} t={t} p={p}");
        }
    }

    #[test]
    fn parameters_outside_rfc9106_are_refused_before_hashing() {
        let bad = HashParams {
            memory_kib: 4,
            iterations: 1,
            parallelism: 1,
        };
        assert!(bad.to_kernel().is_err());
        let none = HashParams {
            memory_kib: 64,
            iterations: 0,
            parallelism: 1,
        };
        assert!(none.to_kernel().is_err());
    }
}
