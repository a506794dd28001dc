//! Global state: what every shard shares read-only or through atomics (the process-wide
//! counters), and the replicated tables each shard holds a copy of.

pub mod presence;
pub mod vitals;

use std::{
    hash::BuildHasher,
    net::IpAddr,
    sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};

/// The version string ringgate reports (`server.version`, `runtimeVersion`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Client-triggerable log lines allowed per second (see [`Globals::log_allowed`]).
pub const LOG_LINES_PER_SECOND: u64 = 20;

/// Buckets of the per-IP pre-auth socket counter.
const PREAUTH_BUCKETS: usize = 65_536;

/// Process-wide counters, shared by every shard as atomics (never locked).
pub struct Globals {
    pub started: Instant,
    pub started_ms: u64,
    /// `stateVersion.presence`.
    pub presence_version: AtomicU64,
    /// `stateVersion.health`.
    pub health_version: AtomicU64,
    /// Unauthenticated sockets per hashed IP. Hash collisions can only make the cap stricter
    /// for the colliding addresses, never looser.
    preauth: Box<[AtomicU32]>,
    /// Authenticated connections, all shards.
    pub connections: AtomicUsize,
    /// Connected approval clients (receivers of `exec.approval.*`), all shards.
    pub approval_clients: AtomicUsize,
    /// Connections closed as slow consumers.
    pub slow_closes: AtomicU64,
    /// Of those, closed because their shard was over its buffered-bytes budget.
    pub budget_closes: AtomicU64,
    /// Droppable events skipped for slow consumers.
    pub dropped_events: AtomicU64,
    /// Live-text frames held back for slow clients (coalesced).
    pub coalesced_events: AtomicU64,
    /// Panics confined to the connection that caused them (`crate::panic_policy`).
    pub panics_contained: AtomicU64,
    /// Failed `accept(2)` calls (descriptor or memory exhaustion), all shards.
    pub accept_errors: AtomicU64,
    /// Server instance id (presence self entry).
    pub instance_id: String,
    pub hostname: String,
    hasher: std::collections::hash_map::RandomState,
    log_second: AtomicU64,
    log_count: AtomicU64,
    /// Log lines suppressed by [`Globals::log_allowed`].
    pub logs_suppressed: AtomicU64,
    /// Each shard's last housekeeping pass (ms since the epoch; 0 before its first): the
    /// watchdog and `/readyz` read these to tell a live shard from a stalled one.
    pub shard_beats: Box<[AtomicU64]>,
    /// Each shard's loop health (delay, busy fraction, connections), published by the shard.
    pub loops: Box<[vitals::LoopGauge]>,
    /// Process and host CPU, sampled by the watchdog thread.
    pub process: vitals::ProcessGauge,
    /// Set when the gateway begins to stop (the watchdog stands down).
    pub stopping: std::sync::atomic::AtomicBool,
    /// The port the gateway listens on (known once bound; `--port 0` picks one).
    pub port: std::sync::atomic::AtomicU16,
    /// Mints and checks agent-worker credentials (a key drawn at start, never stored).
    pub worker_minter: crate::worker::credential::Minter,
}

impl Default for Globals {
    fn default() -> Self {
        Self::new()
    }
}

impl Globals {
    /// Globals for one shard (tests and benches).
    pub fn new() -> Self {
        Self::with_shards(1)
    }

    /// Globals for a gateway of `shards` shards.
    pub fn with_shards(shards: usize) -> Self {
        Globals {
            started: Instant::now(),
            started_ms: now_ms(),
            presence_version: AtomicU64::new(1),
            health_version: AtomicU64::new(1),
            preauth: (0..PREAUTH_BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            connections: AtomicUsize::new(0),
            approval_clients: AtomicUsize::new(0),
            slow_closes: AtomicU64::new(0),
            budget_closes: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
            coalesced_events: AtomicU64::new(0),
            panics_contained: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            instance_id: uuid::Uuid::new_v4().to_string(),
            hostname: hostname(),
            hasher: std::collections::hash_map::RandomState::new(),
            log_second: AtomicU64::new(0),
            log_count: AtomicU64::new(0),
            logs_suppressed: AtomicU64::new(0),
            shard_beats: (0..shards.max(1)).map(|_| AtomicU64::new(0)).collect(),
            loops: (0..shards.max(1)).map(|_| Default::default()).collect(),
            process: Default::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            port: std::sync::atomic::AtomicU16::new(0),
            worker_minter: crate::worker::credential::Minter::random(),
        }
    }

    /// Records that shard `id` completed a housekeeping pass at `now`.
    pub fn beat(&self, id: usize, now: u64) {
        if let Some(b) = self.shard_beats.get(id) {
            b.store(now, Ordering::Release);
        }
    }

    /// `eventLoop` in the original's shape, over every shard.
    pub fn event_loop(&self) -> Value {
        vitals::event_loop(&self.loops, &self.process, now_ms())
    }

    /// Shards not ready as of `now`: they never ran a pass yet, or their last one is older
    /// than `late_ms` (`/readyz`).
    pub fn unready_shards(&self, now: u64, late_ms: u64) -> Vec<usize> {
        self.shard_beats
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let at = b.load(Ordering::Acquire);
                at == 0 || now.saturating_sub(at) > late_ms
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Shards whose last pass is older than `stall_ms` (counting from the start for those
    /// that never ran one), as of `now` (the watchdog).
    pub fn stalled_shards(&self, now: u64, stall_ms: u64) -> Vec<usize> {
        self.shard_beats
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let at = match b.load(Ordering::Acquire) {
                    0 => self.started_ms,
                    at => at,
                };
                now.saturating_sub(at) > stall_ms
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn bucket(&self, ip: IpAddr) -> &AtomicU32 {
        // Keyed per process (SipHash with random keys, shared by every shard), so a client
        // cannot pick addresses that collide with someone else's bucket.
        let h = self.hasher.hash_one(ip);
        &self.preauth[(h as usize) % PREAUTH_BUCKETS]
    }

    /// Sampling for log lines a client can trigger at will (rejected connects, slow
    /// consumers): at most [`LOG_LINES_PER_SECOND`] per second across all shards; the rest are
    /// counted in `logs_suppressed` (reported by `status`).
    pub fn log_allowed(&self) -> bool {
        let sec = now_ms() / 1000;
        if self.log_second.swap(sec, Ordering::AcqRel) != sec {
            self.log_count.store(0, Ordering::Release);
        }
        if self.log_count.fetch_add(1, Ordering::AcqRel) < LOG_LINES_PER_SECOND {
            true
        } else {
            self.logs_suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Takes a pre-auth slot for `ip`; false when it already holds `cap`.
    pub fn acquire_preauth(&self, ip: IpAddr, cap: u32) -> bool {
        self.bucket(ip)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Connected approval clients on every shard.
    pub fn approval_clients(&self) -> usize {
        self.approval_clients.load(Ordering::Acquire)
    }

    pub fn release_preauth(&self, ip: IpAddr) {
        let _ = self
            .bucket(ip)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn state_version(&self) -> (u64, u64) {
        (
            self.presence_version.load(Ordering::Acquire),
            self.health_version.load(Ordering::Acquire),
        )
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The gateway's own presence entry.
    pub fn self_presence(&self) -> serde_json::Map<String, Value> {
        let platform = format!("{} {}", std::env::consts::OS, kernel_release());
        let text = format!(
            "Gateway: {} · app {VERSION} · mode gateway · reason self",
            self.hostname
        );
        json!({
            "host": self.hostname,
            "version": VERSION,
            "platform": platform,
            "deviceFamily": "Linux",
            "mode": "gateway",
            "reason": "self",
            "instanceId": self.instance_id,
            "text": text,
            "ts": now_ms(),
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preauth_cap_per_ip() {
        let g = Globals::new();
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        for _ in 0..3 {
            assert!(g.acquire_preauth(ip, 3));
        }
        assert!(!g.acquire_preauth(ip, 3));
        g.release_preauth(ip);
        assert!(g.acquire_preauth(ip, 3));
        g.release_preauth("127.0.0.9".parse().unwrap()); // never below zero
    }
}
