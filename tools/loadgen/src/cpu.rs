//! CPU time of the server under test and of loadgen itself, read from `/proc`, so every
//! scenario can report what its load cost the server beside the wall-clock figures (the server
//! and loadgen share a small machine; a faster wall clock bought with more server CPU is not a
//! win).

use std::time::Instant;

/// CPU seconds (user + system) this process has used so far.
pub fn self_s() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// CPU seconds (utime + stime, all threads) process `pid` has used so far.
pub fn process_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (u64, u64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / hz)
}

/// Server and loadgen CPU over one measured phase.
pub struct Meter {
    /// Every server process measured (several hosts of a cluster on this machine).
    pids: Vec<u32>,
    t0: Instant,
    server0: Option<f64>,
    self0: f64,
}

/// What a [`Meter`] saw.
pub struct Spent {
    pub wall_s: f64,
    /// `None` when the server's PID is unknown or its `/proc` entry unreadable.
    pub server_s: Option<f64>,
    pub loadgen_s: f64,
}

impl Meter {
    /// Measures the sum of several server processes.
    pub fn start_all(pids: Vec<u32>) -> Meter {
        Meter {
            server0: total_s(&pids),
            pids,
            t0: Instant::now(),
            self0: self_s(),
        }
    }

    pub fn stop(&self) -> Spent {
        let server = total_s(&self.pids);
        Spent {
            wall_s: self.t0.elapsed().as_secs_f64(),
            server_s: match (self.server0, server) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            loadgen_s: self_s() - self.self0,
        }
    }
}

/// CPU seconds of all `pids` (`None` when there are none or one is unreadable).
fn total_s(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| process_s(p)).sum()
}

impl Spent {
    /// Adds `server_cpu_s`, `server_cpu_pct` (of one core), `loadgen_cpu_pct` and, when `units`
    /// is non-zero, `server_cpu_us_per_<unit>`.
    pub fn report(&self, r: &mut crate::stats::Report, unit: &str, units: u64) {
        let pct = |s: f64| (s / self.wall_s.max(1e-9) * 1000.0).round() / 10.0;
        match self.server_s {
            Some(s) => {
                r.add("server_cpu_s", (s * 1000.0).round() / 1000.0);
                r.add("server_cpu_pct", pct(s));
                if units > 0 {
                    let per = s * 1e6 / units as f64;
                    r.add(
                        &format!("server_cpu_us_per_{unit}"),
                        (per * 100.0).round() / 100.0,
                    );
                }
            }
            None => r.add("server_cpu_s", serde_json::Value::Null),
        }
        r.add("loadgen_cpu_pct", pct(self.loadgen_s));
    }
}
