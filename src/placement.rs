//! Which shard owns what. State shared by every connection has exactly one owner shard, and
//! every request that changes it is served there (the others forward it over the bus):
//!
//! * a chat session — by its canonical key;
//! * a channel `send` — by its idempotency key, so a retry meets the first attempt;
//! * exec approvals — one table, on shard 0;
//! * the cron service — one book and one scheduler, on shard 0.
//!
//! Keyed placement is FNV-1a of the key modulo the shard count: stable across restarts with
//! the same `--shards` (a session's owner remembers its recent idempotency keys from the
//! store at start-up), and cheap enough to compute per request.

/// The shard holding the single approvals table.
const APPROVALS: usize = 0;
/// The shard running the cron scheduler.
const CRON: usize = 0;

/// Owner lookups for a gateway of `shards` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    shards: usize,
}

impl Placement {
    pub fn new(shards: usize) -> Self {
        Placement {
            shards: shards.max(1),
        }
    }

    /// The owner of a chat session (by its canonical key).
    pub fn session(&self, canonical: &str) -> usize {
        self.keyed(canonical)
    }

    /// The owner of channel sends with this idempotency key.
    pub fn send_key(&self, key: &str) -> usize {
        self.keyed(key)
    }

    /// The owner of exec approvals.
    pub fn approvals(&self) -> usize {
        APPROVALS
    }

    /// The owner of the cron service.
    pub fn cron(&self) -> usize {
        CRON
    }

    fn keyed(&self, key: &str) -> usize {
        (crate::fingerprint::fnv1a(key.as_bytes()) % self.shards as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_owners_are_in_range_and_stable() {
        for n in 1..8 {
            let p = Placement::new(n);
            let o = p.session("agent:main:main");
            assert!(o < n);
            assert_eq!(o, p.session("agent:main:main"));
        }
        assert_eq!(Placement::new(0).session("x"), 0, "no shards means one");
    }

    /// A store written by one build is read by the next: the hash must not change, or a
    /// restarted gateway would look for a session's recent runs on the wrong shard.
    #[test]
    fn the_hash_is_pinned() {
        let p = Placement::new(1 << 20);
        assert_eq!(
            p.session(""),
            (0xcbf2_9ce4_8422_2325u64 % (1 << 20)) as usize
        );
        assert_eq!(
            p.session("a"),
            (0xaf63_dc4c_8601_ec8cu64 % (1 << 20)) as usize
        );
        let four = Placement::new(4);
        assert_eq!(
            four.session("agent:main:main"),
            four.send_key("agent:main:main")
        );
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let p = Placement::new(4);
        let mut per = [0usize; 4];
        for i in 0..4000 {
            per[p.session(&format!("agent:main:s{i}"))] += 1;
        }
        assert!(per.iter().all(|&n| n > 800), "{per:?}");
    }

    #[test]
    fn singletons_live_on_shard_zero() {
        let p = Placement::new(8);
        assert_eq!((p.approvals(), p.cron()), (0, 0));
    }
}
