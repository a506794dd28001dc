//! Loop health, the thread-per-core way. The original reports its one Node event loop
//! (`eventLoop` in `health`, `status`, `channels.status`); ringgate has one loop per shard,
//! so each shard measures its own and publishes the figures here, and any shard can answer
//! with the aggregate (the original's shape) or per shard (`diagnostics.lanes`).
//!
//! What is measured, and how:
//! - **delay**: a probe task on each shard sleeps [`PROBE_MS`] and records how late it woke
//!   (what Node's `monitorEventLoopDelay` does); each [`WINDOW_MS`] window publishes its p99
//!   and max. The runtime's timer wheel rounds sleeps up, so an idle shard reports a floor
//!   of a few milliseconds (4–6 ms measured at idle on a 2-core VM); socket readiness does not
//!   wait on the timer, so requests do not see that floor — changes above it are the signal.
//! - **utilization**: the shard thread's CPU time over the window's wall time. A monoio loop
//!   with nothing to do blocks in `io_uring_enter` and burns no CPU, so this is its busy
//!   fraction.
//! - **process CPU and host utilization**: read from `/proc` once a second by the watchdog
//!   thread (never by a shard).
//!
//! The aggregate takes the worst shard for delay and utilization — one saturated loop is what
//! a client on it feels — and the whole process for CPU.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

/// How often the probe wakes.
pub const PROBE_MS: u64 = 10;
/// How long a measurement window lasts.
pub const WINDOW_MS: u64 = 1_000;
/// The original's thresholds (`DEFAULT_LIVENESS_*_WARN`).
const DELAY_WARN_MS: f64 = 1_000.0;
const UTILIZATION_WARN: f64 = 0.95;
const CPU_CORE_RATIO_WARN: f64 = 0.9;

/// Lateness samples of one window (no IO: the probe feeds it, tests drive it directly).
#[derive(Debug, Default)]
pub struct DelayWindow {
    samples_us: Vec<u64>,
}

impl DelayWindow {
    pub fn record(&mut self, late_us: u64) {
        // A window holds ~100 samples; a stalled loop records one long one, not many.
        if self.samples_us.len() < 4_096 {
            self.samples_us.push(late_us);
        }
    }

    /// The window's p99 and max lateness (µs), and starts a new window.
    pub fn take(&mut self) -> (u64, u64) {
        if self.samples_us.is_empty() {
            return (0, 0);
        }
        self.samples_us.sort_unstable();
        let n = self.samples_us.len();
        let p99 = self.samples_us[((n * 99).div_ceil(100)).saturating_sub(1).min(n - 1)];
        let max = self.samples_us[n - 1];
        self.samples_us.clear();
        (p99, max)
    }
}

/// One shard's latest window, published for every other thread to read.
#[derive(Debug, Default)]
pub struct LoopGauge {
    pub delay_p99_us: AtomicU64,
    pub delay_max_us: AtomicU64,
    /// Thread CPU ÷ wall over the window, in millionths.
    pub busy_ppm: AtomicU64,
    pub interval_ms: AtomicU64,
    pub connections: AtomicU64,
    /// When the window ended (ms since the epoch; 0 before the first).
    pub sampled_at_ms: AtomicU64,
    /// Since when this shard has been degraded (0 when it is not).
    pub degraded_since_ms: AtomicU64,
}

/// One finished window of a shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopSample {
    pub delay_p99_us: u64,
    pub delay_max_us: u64,
    pub busy_ppm: u64,
    pub interval_ms: u64,
    pub connections: u64,
}

impl LoopGauge {
    pub fn publish(&self, s: LoopSample, now_ms: u64) {
        self.delay_p99_us.store(s.delay_p99_us, Ordering::Relaxed);
        self.delay_max_us.store(s.delay_max_us, Ordering::Relaxed);
        self.busy_ppm.store(s.busy_ppm, Ordering::Relaxed);
        self.interval_ms.store(s.interval_ms, Ordering::Relaxed);
        self.connections.store(s.connections, Ordering::Relaxed);
        let degraded = !reasons(
            ms(s.delay_p99_us),
            ms(s.delay_max_us),
            ppm(s.busy_ppm),
            0.0,
            1,
        )
        .is_empty();
        let since = self.degraded_since_ms.load(Ordering::Relaxed);
        match (degraded, since) {
            (true, 0) => self.degraded_since_ms.store(now_ms, Ordering::Relaxed),
            (false, _) => self.degraded_since_ms.store(0, Ordering::Relaxed),
            _ => {}
        }
        self.sampled_at_ms.store(now_ms, Ordering::Release);
    }

    pub fn read(&self) -> LoopSample {
        LoopSample {
            delay_p99_us: self.delay_p99_us.load(Ordering::Relaxed),
            delay_max_us: self.delay_max_us.load(Ordering::Relaxed),
            busy_ppm: self.busy_ppm.load(Ordering::Relaxed),
            interval_ms: self.interval_ms.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

/// Process-wide figures, sampled by the watchdog thread from `/proc`.
#[derive(Debug, Default)]
pub struct ProcessGauge {
    /// Process CPU ÷ wall over the last second, in millionths (may exceed one core).
    pub cpu_ppm: AtomicU64,
    /// Host CPU busy fraction over the last second, in millionths.
    pub host_ppm: AtomicU64,
    pub host_cpus: AtomicU64,
    /// The shards' CPU ÷ wall together, in millionths.
    pub shards_cpu_ppm: AtomicU64,
    /// The worker threads' (storage, scan, model calls) CPU ÷ wall, in millionths.
    pub workers_cpu_ppm: AtomicU64,
    pub rss_bytes: AtomicU64,
    /// Resident anonymous memory and the data mappings' size (`/proc/self/statm`): ringgate's
    /// heap, where Node reports its JS heap.
    pub heap_used_bytes: AtomicU64,
    pub heap_total_bytes: AtomicU64,
    /// Open file descriptors (`/proc/self/fd`), and the soft limit on them.
    pub open_fds: AtomicU64,
    pub max_fds: AtomicU64,
}

impl ProcessGauge {
    /// `processMemory` in the original's shape (Node's `external` and `arrayBuffers` have no
    /// counterpart and are left out; the schema makes them optional).
    pub fn memory_json(&self) -> Value {
        json!({
            "rssBytes": self.rss_bytes.load(Ordering::Relaxed),
            "heapUsedBytes": self.heap_used_bytes.load(Ordering::Relaxed),
            "heapTotalBytes": self.heap_total_bytes.load(Ordering::Relaxed),
        })
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

fn ppm(v: u64) -> f64 {
    v as f64 / 1_000_000.0
}

fn round3(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

/// The original's degradation reasons for these figures. `cpu` compares the process's CPU
/// with the cores its shards may use (`cores`), where the original compares with one.
fn reasons(p99_ms: f64, max_ms: f64, util: f64, cpu: f64, cores: usize) -> Vec<&'static str> {
    let mut r = Vec::new();
    if p99_ms >= DELAY_WARN_MS || max_ms >= DELAY_WARN_MS {
        r.push("event_loop_delay");
    }
    if util >= UTILIZATION_WARN {
        r.push("event_loop_utilization");
    }
    if cpu >= CPU_CORE_RATIO_WARN * cores.max(1) as f64 {
        r.push("cpu");
    }
    r
}

/// `eventLoop` in the original's shape, aggregated over the shards. A shard whose last
/// window ended more than two windows ago is stuck inside one: its delay is at least the
/// time since.
pub fn event_loop(loops: &[LoopGauge], process: &ProcessGauge, now_ms: u64) -> Value {
    let samples: Vec<LoopSample> = loops
        .iter()
        .map(|l| {
            let mut s = l.read();
            let at = l.sampled_at_ms.load(Ordering::Acquire);
            let stuck_ms = now_ms.saturating_sub(at);
            if at > 0 && stuck_ms > 2 * WINDOW_MS {
                s.delay_max_us = s.delay_max_us.max(stuck_ms * 1_000);
                s.delay_p99_us = s.delay_p99_us.max(stuck_ms * 1_000);
            }
            s
        })
        .collect();
    let worst = |f: fn(&LoopSample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let p99 = ms(worst(|s| s.delay_p99_us));
    let max = ms(worst(|s| s.delay_max_us));
    let util = ppm(worst(|s| s.busy_ppm));
    let interval = worst(|s| s.interval_ms);
    let cpu = ppm(process.cpu_ppm.load(Ordering::Relaxed));
    let shards_cpu = ppm(process.shards_cpu_ppm.load(Ordering::Relaxed));
    let workers_cpu = ppm(process.workers_cpu_ppm.load(Ordering::Relaxed));
    let reasons = reasons(p99, max, util, cpu, loops.len());
    let since = loops
        .iter()
        .map(|l| l.degraded_since_ms.load(Ordering::Relaxed))
        .filter(|s| *s > 0)
        .min();
    json!({
        "degraded": !reasons.is_empty(),
        "degradedSinceMs": if reasons.is_empty() { None } else { since },
        "reasons": reasons,
        "intervalMs": interval,
        "delayP99Ms": round3(p99),
        "delayMaxMs": round3(max),
        "utilization": round3(util),
        "cpuCoreRatio": round3(cpu),
        "cpuBreakdown": {
            "mainThreadCoreRatio": round3(shards_cpu),
            "workerCoreRatio": round3(workers_cpu),
            "otherThreadsCoreRatio": round3((cpu - shards_cpu - workers_cpu).max(0.0)),
            "hostUtilization": round3(ppm(process.host_ppm.load(Ordering::Relaxed)).min(1.0)),
            "hostCpuCount": process.host_cpus.load(Ordering::Relaxed).max(1),
        },
    })
}

/// One shard as a `diagnostics.lanes` lane: the original's lane fields (queued = messages
/// waiting in its bus inbox, active = its open connections) plus its loop figures.
pub fn lane(id: usize, gauge: &LoopGauge, inbox_depth: usize, draining: bool) -> Value {
    let s = gauge.read();
    json!({
        "lane": format!("shard-{id}"),
        "queuedCount": inbox_depth,
        "activeCount": s.connections,
        "maxConcurrent": null,
        "draining": draining,
        "generation": 0,
        "blockedBy": null,
        "delayP99Ms": round3(ms(s.delay_p99_us)),
        "delayMaxMs": round3(ms(s.delay_max_us)),
        "utilization": round3(ppm(s.busy_ppm)),
        "intervalMs": s.interval_ms,
        "sampledAtMs": gauge.sampled_at_ms.load(Ordering::Acquire),
    })
}

/// CPU time this thread has used (ns): `CLOCK_THREAD_CPUTIME_ID`, answered from the kernel
/// without IO.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Samples process and host CPU from `/proc` (called once a second by the watchdog thread).
#[derive(Debug, Default)]
pub struct ProcSampler {
    last: Option<(std::time::Instant, u64, (u64, u64), u64)>,
}

impl ProcSampler {
    pub fn sample(&mut self, out: &ProcessGauge) {
        let now = std::time::Instant::now();
        let (Some(cpu_ticks), Some(host)) = (process_ticks(), host_ticks()) else {
            return;
        };
        let worker_ticks = worker_ticks();
        if let Some((then, last_cpu, (last_busy, last_total), last_workers)) = self.last {
            let wall_s = now.duration_since(then).as_secs_f64().max(1e-3);
            let hz = ticks_per_second();
            let cpu = cpu_ticks.saturating_sub(last_cpu) as f64 / hz / wall_s;
            out.cpu_ppm.store((cpu * 1e6) as u64, Ordering::Relaxed);
            let workers = worker_ticks.saturating_sub(last_workers) as f64 / hz / wall_s;
            out.workers_cpu_ppm
                .store((workers * 1e6) as u64, Ordering::Relaxed);
            let total = host.1.saturating_sub(last_total).max(1) as f64;
            let busy = host.0.saturating_sub(last_busy) as f64 / total;
            out.host_ppm.store((busy * 1e6) as u64, Ordering::Relaxed);
        }
        out.host_cpus.store(
            std::thread::available_parallelism().map_or(1, |n| n.get()) as u64,
            Ordering::Relaxed,
        );
        if let Some(m) = statm() {
            out.rss_bytes.store(m.rss, Ordering::Relaxed);
            out.heap_used_bytes.store(m.anon, Ordering::Relaxed);
            out.heap_total_bytes.store(m.data, Ordering::Relaxed);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.open_fds.store(dir.count() as u64, Ordering::Relaxed);
        }
        out.max_fds.store(fd_limit(), Ordering::Relaxed);
        self.last = Some((now, cpu_ticks, host, worker_ticks));
    }
}

/// The soft `RLIMIT_NOFILE`.
fn fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    r.rlim_cur
}

/// Memory figures from `/proc/self/statm` (kernel counters: reading them takes no lock the
/// shards' allocator uses — `mallinfo2` did, and cost pipelined RPC a few percent).
struct Statm {
    rss: u64,
    /// Resident memory not backed by files (RSS − shared): the heap and stacks in use.
    anon: u64,
    /// The data and stack mappings' size: the heap the process holds.
    data: u64,
}

fn statm() -> Option<Statm> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let f: Vec<u64> = statm
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let (rss, shared, data) = (*f.get(1)?, *f.get(2)?, *f.get(5)?);
    Some(Statm {
        rss: rss * page,
        anon: rss.saturating_sub(shared) * page,
        data: data * page,
    })
}

/// CPU ticks of the worker threads (storage, scan, file reads, model calls, webhook
/// deliveries), found by thread name. Thread names are cut at 15 bytes by the kernel.
fn worker_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            let worker = [
                "ringgate-store",
                "ringgate-scan",
                "ringgate-agent",
                "ringgate-files",
                "webhook-",
            ]
            .iter()
            .any(|w| name.starts_with(w));
            if !worker {
                return None;
            }
            let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// utime + stime of this process, in clock ticks.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) jiffies of the host, from the first line of `/proc/stat`.
fn host_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_reports_p99_and_max_then_starts_over() {
        let mut w = DelayWindow::default();
        for i in 1..=100 {
            w.record(i * 10);
        }
        assert_eq!(w.take(), (990, 1000));
        assert_eq!(w.take(), (0, 0), "a new window is empty");
        w.record(7);
        assert_eq!(w.take(), (7, 7));
    }

    #[test]
    fn a_stalled_shard_degrades_the_aggregate_and_clears_when_it_recovers() {
        let loops: Vec<LoopGauge> = (0..2).map(|_| LoopGauge::default()).collect();
        let process = ProcessGauge::default();
        let calm = LoopSample {
            delay_p99_us: 800,
            delay_max_us: 1_500,
            busy_ppm: 50_000,
            interval_ms: 1_000,
            connections: 3,
        };
        loops[0].publish(calm, 10);
        loops[1].publish(
            LoopSample {
                delay_max_us: 2_500_000,
                ..calm
            },
            20,
        );
        let v = event_loop(&loops, &process, 40);
        assert_eq!(v["degraded"], true);
        assert_eq!(v["reasons"], json!(["event_loop_delay"]));
        assert_eq!(v["delayMaxMs"], 2500.0);
        assert_eq!(v["delayP99Ms"], 0.8);
        assert_eq!(v["degradedSinceMs"], 20);
        assert_eq!(v["utilization"], 0.05);
        loops[1].publish(calm, 30);
        let v = event_loop(&loops, &process, 40);
        assert_eq!(v["degraded"], false);
        assert_eq!(v["degradedSinceMs"], Value::Null);
        assert_eq!(lane(1, &loops[1], 4, false)["queuedCount"], 4);
        assert_eq!(lane(1, &loops[1], 4, false)["activeCount"], 3);
    }

    #[test]
    fn busy_loops_and_process_cpu_are_reasons() {
        let loops = [LoopGauge::default()];
        loops[0].publish(
            LoopSample {
                delay_p99_us: 0,
                delay_max_us: 0,
                busy_ppm: 990_000,
                interval_ms: 1_000,
                connections: 0,
            },
            5,
        );
        let process = ProcessGauge::default();
        process.cpu_ppm.store(950_000, Ordering::Relaxed);
        let v = event_loop(&loops, &process, 40);
        assert_eq!(v["reasons"], json!(["event_loop_utilization", "cpu"]));
        // No window for 5 s: the loop is stuck at least that long.
        let v = event_loop(&loops, &process, 5_005);
        assert_eq!(v["delayMaxMs"], 5000.0);
        assert!(v["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("event_loop_delay")));
    }

    #[test]
    fn proc_sampler_reads_this_process() {
        let g = ProcessGauge::default();
        let mut s = ProcSampler::default();
        s.sample(&g);
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(60) {
            std::hint::black_box(thread_cpu_ns());
        }
        s.sample(&g);
        assert!(
            g.cpu_ppm.load(Ordering::Relaxed) > 0,
            "a spinning thread uses CPU"
        );
        assert!(g.host_cpus.load(Ordering::Relaxed) >= 1);
        assert!(thread_cpu_ns() > 0);
    }
}
