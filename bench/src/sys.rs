//! What the kernel says about memory and CPU: `/proc/PID/status` for resident memory and
//! `/proc/*/stat` for CPU time, so that each figure can say how much of the machine the
//! server, this program, PostgreSQL and everything else (other engineers' builds) used.

use std::time::Instant;

/// A `Vm*` line of `/proc/PID/status`, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key) && l.get(key.len()..key.len() + 1) == Some(":"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A process's proportional set size in KiB (`Pss:` of `/proc/PID/smaps_rollup`, Linux ≥ 4.14):
/// its resident pages with each shared page divided among the processes that map it, so the
/// sum over a group of forked workers counts their shared pages once.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Where a process's resident memory is, from `/proc/PID/smaps` (KiB): the pages of its own
/// executable (`text`: code, `rodata`: read-only data and unwind tables, `data`: relocated
/// and written data), of shared libraries, the main heap, other anonymous memory (the
/// malloc arenas of threads other than the main one, thread stacks), and the rest; with
/// the number of threads and of database connection threads (`sqlx-sqlite-worker`).
#[derive(Clone, Debug, Default)]
pub struct Resident {
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub libs: u64,
    pub heap: u64,
    pub anon: u64,
    pub other: u64,
    pub threads: usize,
    pub sqlite_threads: usize,
}

impl Resident {
    pub fn of(pid: u32, exe: &std::path::Path) -> Option<Self> {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let exe = std::fs::canonicalize(exe).ok()?;
        let exe = exe.to_string_lossy();
        let mut r = Self::default();
        // The part the mapping read last belongs to (`None` before the first mapping).
        let mut part: Option<fn(&mut Self) -> &mut u64> = None;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or_default();
            if first == "Rss:" {
                let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                *part.unwrap_or(|r| &mut r.other)(&mut r) += kib;
            } else if first.contains('-')
                && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            {
                // A mapping's header: range, permissions, offset, device, inode, path.
                let perms = fields.next().unwrap_or_default();
                let name = fields.nth(3).unwrap_or_default();
                part = Some(match name {
                    n if n == exe.as_ref() && perms.contains('x') => |r| &mut r.text,
                    n if n == exe.as_ref() && perms.contains('w') => |r| &mut r.data,
                    n if n == exe.as_ref() => |r| &mut r.rodata,
                    "[heap]" => |r| &mut r.heap,
                    "" => |r| &mut r.anon,
                    n if n.starts_with('/') => |r| &mut r.libs,
                    _ => |r| &mut r.other,
                });
            }
        }
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            r.threads += 1;
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("sqlx-sqlite") {
                r.sqlite_threads += 1;
            }
        }
        Some(r)
    }
}

/// Resets the process's peak resident memory (VmHWM) to its current RSS, so the next peak
/// belongs to the next phase (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0).
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// User plus system CPU ticks of a process (`self` or a pid), all threads.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // After the name: state (field 3) … utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The name a process runs under (`comm`).
fn process_name(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start = stat.find('(')? + 1;
    let end = stat.rfind(')')?;
    stat.get(start..end).map(str::to_owned)
}

/// Context switches (voluntary and not) of every thread of a process: each hand-off of work
/// between threads (a query sent to a database connection's thread and its answer back)
/// costs at least one.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Busy CPU ticks of the whole machine, all cores.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// CPU ticks of every PostgreSQL process (its backends do the database's share of the work).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| process_name(pid).as_deref() == Some("postgres"))
        .filter_map(|pid| process_ticks(&pid))
        .sum()
}

/// Ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The 1-minute load average and the two after it, as printed by the kernel.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// CPU counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    at: Instant,
    busy: u64,
    server: u64,
    bench: u64,
    postgres: u64,
    switches: u64,
}

/// Where the CPU went between two marks, in cores (1.0 = one core busy all the time).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub server: f64,
    pub bench: f64,
    pub postgres: f64,
    /// Everything else on the machine: other engineers' compilers, for one.
    pub others: f64,
    /// The server's context switches, all threads.
    pub server_switches: u64,
}

impl CpuMark {
    pub fn now(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            busy: machine_busy_ticks().unwrap_or(0),
            server: server_pid
                .and_then(|p| process_ticks(&p.to_string()))
                .unwrap_or(0),
            bench: process_ticks("self").unwrap_or(0),
            postgres: postgres_ticks(),
            switches: server_pid.map_or(0, context_switches),
        }
    }

    /// The CPU used since this mark.
    pub fn used_since(&self, server_pid: Option<u32>, ticks_per_second: f64) -> CpuUse {
        let end = Self::now(server_pid);
        let seconds = end.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / ticks_per_second / seconds;
        let busy = end.busy.saturating_sub(self.busy);
        let server = end.server.saturating_sub(self.server);
        let bench = end.bench.saturating_sub(self.bench);
        let postgres = end.postgres.saturating_sub(self.postgres);
        CpuUse {
            server: cores(server),
            bench: cores(bench),
            postgres: cores(postgres),
            others: cores(busy.saturating_sub(server + bench + postgres)),
            server_switches: end.switches.saturating_sub(self.switches),
        }
    }
}

/// The direct children of a process (`/proc/*/stat`'s parent field), e.g. a pre-forking
/// server's workers.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|child| parent_of(child) == Some(pid))
        .filter_map(|child| child.parse().ok())
        .collect()
}

/// The parent process id of a process (field 4 of `/proc/PID/stat`).
fn parent_of(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}
