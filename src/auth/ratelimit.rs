//! Auth-failure rate limiting per client IP (protocol §3.1, `auth-rate-limit.ts`): 10 failures in
//! a 60 s sliding window lock the IP out for 5 minutes; loopback is never locked out but each
//! failure is answered after an escalating delay (250 ms doubling, at most 5 s).
//!
//! One limiter per shard, owned by the shard thread (no lock). The kernel spreads one IP's
//! connections over the shards, so each shard tells the others of every failure (and of a
//! success that cleared one) over the bus: the count is per IP across the whole gateway, not
//! per shard.

use std::{collections::HashMap, net::IpAddr};

pub const WINDOW_MS: u64 = 60_000;
pub const MAX_FAILURES: usize = 10;
pub const LOCKOUT_MS: u64 = 300_000;
const LOOPBACK_BASE_DELAY_MS: u64 = 250;
const LOOPBACK_MAX_DELAY_MS: u64 = 5_000;
/// Entries kept at most; the oldest are pruned past this so a spray of addresses cannot grow
/// memory without bound.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Default)]
struct Entry {
    failures: Vec<u64>,
    locked_until: u64,
}

/// How many failures in what window lock an address out, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub window_ms: u64,
    pub max_failures: usize,
    pub lockout_ms: u64,
    /// Loopback is never locked (its failures are slowed down instead).
    pub exempt_loopback: bool,
}

/// The gateway's connect and HTTP API auth (10 in 60 s, 5 minutes, loopback exempt).
pub const GATEWAY: Policy = Policy {
    window_ms: WINDOW_MS,
    max_failures: MAX_FAILURES,
    lockout_ms: LOCKOUT_MS,
    exempt_loopback: true,
};

/// The hook token (the original's hook limiter: 20 in 60 s lock for 60 s; loopback counts,
/// since a local relay in front of the hooks is the usual shape).
pub const HOOKS: Policy = Policy {
    window_ms: 60_000,
    max_failures: 20,
    lockout_ms: 60_000,
    exempt_loopback: false,
};

/// Which limiter a failure or success shared over the bus belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Gateway,
    Hooks,
}

/// Per-IP failure tracker.
#[derive(Debug)]
pub struct AuthLimiter {
    by_ip: HashMap<IpAddr, Entry>,
    policy: Policy,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter::new(GATEWAY)
    }
}

/// What to do with the next connect from an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Allow,
    /// Locked out: reject with `rate_limited`, retry after this many ms.
    Locked {
        retry_after_ms: u64,
    },
}

impl AuthLimiter {
    pub fn new(policy: Policy) -> AuthLimiter {
        AuthLimiter {
            by_ip: HashMap::new(),
            policy,
        }
    }

    /// Checked before the shared secret is evaluated.
    pub fn gate(&mut self, ip: IpAddr, now_ms: u64) -> Gate {
        if self.policy.exempt_loopback && ip.is_loopback() {
            return Gate::Allow;
        }
        match self.by_ip.get(&ip) {
            Some(e) if e.locked_until > now_ms => Gate::Locked {
                retry_after_ms: e.locked_until - now_ms,
            },
            _ => Gate::Allow,
        }
    }

    /// Records a failure; returns the delay (ms) before answering it (loopback only).
    pub fn record_failure(&mut self, ip: IpAddr, now_ms: u64) -> u64 {
        if self.by_ip.len() >= MAX_TRACKED && !self.by_ip.contains_key(&ip) {
            self.prune(now_ms);
        }
        let p = self.policy;
        let e = self.by_ip.entry(ip).or_default();
        e.failures
            .retain(|&t| now_ms.saturating_sub(t) < p.window_ms);
        e.failures.push(now_ms);
        if p.exempt_loopback && ip.is_loopback() {
            let n = e.failures.len().min(16) as u32;
            return (LOOPBACK_BASE_DELAY_MS << (n - 1)).min(LOOPBACK_MAX_DELAY_MS);
        }
        if e.failures.len() >= p.max_failures {
            e.locked_until = now_ms + p.lockout_ms;
            e.failures.clear();
        }
        0
    }

    /// A successful auth clears the IP's failures; true when there were some (the other
    /// shards are then told too).
    pub fn record_success(&mut self, ip: IpAddr) -> bool {
        self.by_ip.remove(&ip).is_some()
    }

    fn prune(&mut self, now_ms: u64) {
        let window = self.policy.window_ms;
        self.by_ip.retain(|_, e| {
            e.locked_until > now_ms
                || e.failures
                    .iter()
                    .any(|&t| now_ms.saturating_sub(t) < window)
        });
        if self.by_ip.len() >= MAX_TRACKED {
            // Still full of live failures: forget unlocked addresses, never lockouts.
            self.by_ip.retain(|_, e| e.locked_until > now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_lockout_after_ten_failures() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mut l = AuthLimiter::default();
        for i in 0..9 {
            assert_eq!(l.record_failure(ip, 1000 + i), 0);
            assert_eq!(l.gate(ip, 1000 + i), Gate::Allow);
        }
        l.record_failure(ip, 2000);
        assert_eq!(
            l.gate(ip, 2001),
            Gate::Locked {
                retry_after_ms: LOCKOUT_MS - 1
            }
        );
        assert_eq!(l.gate(ip, 2000 + LOCKOUT_MS), Gate::Allow);
    }

    #[test]
    fn the_hook_policy_locks_loopback_after_twenty() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut l = AuthLimiter::new(HOOKS);
        for i in 0..19 {
            assert_eq!(l.record_failure(ip, 1000 + i), 0);
            assert_eq!(l.gate(ip, 1000 + i), Gate::Allow);
        }
        l.record_failure(ip, 2000);
        assert_eq!(
            l.gate(ip, 2001),
            Gate::Locked {
                retry_after_ms: 59_999
            }
        );
        assert_eq!(l.gate(ip, 62_000), Gate::Allow);
        assert_eq!(AuthLimiter::default().gate(ip, 0), Gate::Allow);
    }

    #[test]
    fn failures_outside_window_do_not_count() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mut l = AuthLimiter::default();
        for i in 0..9 {
            l.record_failure(ip, i * 10_000);
        }
        l.record_failure(ip, 200_000);
        assert_eq!(l.gate(ip, 200_001), Gate::Allow);
    }

    #[test]
    fn failures_seen_on_other_shards_count_toward_the_lockout() {
        // Two shards, each told of the other's failures (as the bus does): the IP is locked
        // on both after ten failures in all, not ten on each.
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        let (mut a, mut b) = (AuthLimiter::default(), AuthLimiter::default());
        for i in 0..10u64 {
            let (here, there) = if i % 2 == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            here.record_failure(ip, 100 + i);
            there.record_failure(ip, 100 + i);
        }
        assert!(matches!(a.gate(ip, 200), Gate::Locked { .. }));
        assert!(matches!(b.gate(ip, 200), Gate::Locked { .. }));
    }

    #[test]
    fn loopback_is_delayed_not_locked() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut l = AuthLimiter::default();
        let delays: Vec<u64> = (0..8).map(|i| l.record_failure(ip, i)).collect();
        assert_eq!(delays, vec![250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(l.gate(ip, 10), Gate::Allow);
    }
}
