//! The hardware's best: argon2id hashes per second on every core, in this process, with the
//! same crate and the same discipline as the server's pool (one thread per core, each reusing
//! one memory block through `hash_password_into_with_memory`). Sign-in throughput is divided
//! by this.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Context;

/// argon2id cost parameters, as the server's configuration names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Cost {
    /// The production defaults (OWASP's m = 19 MiB, t = 2, p = 1), as in `HashParams`.
    pub const PRODUCTION: Cost = Cost {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
}

/// Hashes and the time they took.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub hashes: u64,
    pub elapsed: Duration,
}

impl Rate {
    /// Nothing measured yet: the start of a sum over rounds.
    pub const ZERO: Rate = Rate {
        hashes: 0,
        elapsed: Duration::ZERO,
    };

    /// Adds another round's hashes and time.
    pub fn add(&mut self, other: Rate) {
        self.hashes += other.hashes;
        self.elapsed += other.elapsed;
    }

    pub fn per_second(&self) -> f64 {
        self.hashes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One thread's hash function: (password, salt, out). It owns whatever memory it reuses.
pub type Hasher = Box<dyn FnMut(&[u8], &[u8], &mut [u8]) -> anyhow::Result<()>>;

/// Runs `threads` hashing threads for about `run_for` (at most `max_per_thread` hashes each)
/// after one untimed warm-up hash each (which also allocates the memory block), with the
/// server's kernel (`portcullis-argon2`: the reference C's fill loop for the widest vectors
/// this CPU has, as the server's hashing pool calls it).
pub fn measure(
    cost: Cost,
    threads: usize,
    run_for: Duration,
    max_per_thread: u64,
) -> anyhow::Result<Rate> {
    let params = portcullis_argon2::Params {
        memory_kib: cost.memory_kib,
        iterations: cost.iterations,
        parallelism: cost.parallelism,
    };
    let make = |_index: usize| -> anyhow::Result<Hasher> {
        let mut memory = portcullis_argon2::Memory::new();
        Ok(Box::new(move |password, salt, out| {
            portcullis_argon2::hash_into(params, password, salt, out, &mut memory)
                .map_err(anyhow::Error::msg)
        }))
    };
    measure_kernel(threads, run_for, max_per_thread, &make)
}

/// [`measure`] with any kernel: `make(thread_index)` builds each thread's hash function.
pub fn measure_kernel(
    threads: usize,
    run_for: Duration,
    max_per_thread: u64,
    make: &(dyn Fn(usize) -> anyhow::Result<Hasher> + Sync),
) -> anyhow::Result<Rate> {
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let results: Vec<anyhow::Result<(u64, Instant, Instant)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                scope.spawn(move || hash_loop(index, make, barrier, run_for, max_per_thread))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a hashing thread failed")))
            })
            .collect()
    });
    let mut hashes = 0;
    let mut start: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    for result in results {
        let (n, s, e) = result?;
        hashes += n;
        start = Some(start.map_or(s, |x| x.min(s)));
        end = Some(end.map_or(e, |x| x.max(e)));
    }
    let elapsed = match (start, end) {
        (Some(s), Some(e)) => e.duration_since(s),
        _ => Duration::ZERO,
    };
    Ok(Rate { hashes, elapsed })
}

fn hash_loop(
    index: usize,
    make: &(dyn Fn(usize) -> anyhow::Result<Hasher> + Sync),
    barrier: &Barrier,
    run_for: Duration,
    max: u64,
) -> anyhow::Result<(u64, Instant, Instant)> {
    let mut out = [0u8; 32];
    let salt = [u8::try_from(index % 256).unwrap_or(0); 16];
    let password = b"Bench-Kestrel-7391!";
    let warm_up = make(index).and_then(|mut hash| hash(password, &salt, &mut out).map(|()| hash));
    // Every thread reaches the barrier, even one whose warm-up failed, so none waits forever.
    barrier.wait();
    let mut hash = warm_up.context("warm-up hash")?;
    let started = Instant::now();
    let deadline = started + run_for;
    let mut n = 0;
    while n < max && Instant::now() < deadline {
        hash(password, &salt, &mut out)?;
        n += 1;
    }
    Ok((n, started, Instant::now()))
}
