//! Presence (protocol §2.6, §6.5): the gateway's own entry plus one entry per tracked client
//! (modes other than cli/backend/probe), keyed by connection (nodes: by device id). A
//! disconnected client's entry stays with `reason: "disconnect"` for 5 minutes, as in the
//! original.
//!
//! Every shard holds a replica. Changes are keyed upserts and removals, which commute, so
//! replicas converge whatever order the bus delivers them in; the `stateVersion.presence`
//! counter is a process-wide atomic bumped once per change.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Entries older than this (by last update) are pruned, the gateway's own entry excepted.
pub const TTL_MS: u64 = 300_000;
/// At most this many entries are kept (oldest dropped first).
pub const MAX_ENTRIES: usize = 200;

/// One presence entry: a JSON object with at least `ts`.
pub type Entry = Map<String, Value>;

/// A change, as applied locally and sent to the other shards.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Merge these fields into the entry at `key` (roles/scopes are unioned), set `ts`.
    Upsert {
        key: String,
        fields: Entry,
        now_ms: u64,
    },
}

/// A replica of the presence table.
#[derive(Debug, Default, Clone)]
pub struct Presence {
    self_key: String,
    entries: HashMap<String, Entry>,
    /// Local change counter (any applied delta), for caches of the list.
    version: u64,
}

impl Presence {
    /// A table holding the gateway's own entry.
    pub fn new(self_entry: Entry) -> Self {
        let self_key = "__self__".to_owned();
        let mut entries = HashMap::new();
        entries.insert(self_key.clone(), self_entry);
        Presence {
            self_key,
            entries,
            version: 0,
        }
    }

    /// Applies a delta (idempotent for the same delta).
    /// Changes applied to this replica so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn apply(&mut self, d: &Delta) {
        self.version += 1;
        let Delta::Upsert {
            key,
            fields,
            now_ms,
        } = d;
        let e = self.entries.entry(key.clone()).or_default();
        for (k, v) in fields {
            if k == "roles" || k == "scopes" {
                let mut merged: Vec<Value> = e
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in v.as_array().into_iter().flatten() {
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                e.insert(k.clone(), Value::Array(merged));
            } else if v.is_null() {
                e.remove(k);
            } else {
                e.insert(k.clone(), v.clone());
            }
        }
        if !e.contains_key("text") {
            let host = e
                .get("host")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            let mode = e
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            e.insert(
                "text".into(),
                Value::String(format!("Node: {host} · mode {mode}")),
            );
        }
        e.insert("ts".into(), Value::from(*now_ms));
        self.prune(*now_ms);
    }

    fn prune(&mut self, now_ms: u64) {
        let self_key = &self.self_key;
        self.entries.retain(|k, e| {
            k == self_key
                || e.get("ts")
                    .and_then(Value::as_u64)
                    .is_some_and(|ts| now_ms.saturating_sub(ts) <= TTL_MS)
        });
        while self.entries.len() > MAX_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| *k != self_key)
                .min_by_key(|(_, e)| e.get("ts").and_then(Value::as_u64).unwrap_or(0))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }

    /// The list clients see: the gateway's own entry refreshed to `now`, newest first.
    pub fn list(&mut self, now_ms: u64) -> Vec<Value> {
        if let Some(me) = self.entries.get_mut(&self.self_key) {
            me.insert("ts".into(), Value::from(now_ms));
        }
        self.prune(now_ms);
        let mut v: Vec<&Entry> = self.entries.values().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.get("ts").and_then(Value::as_u64).unwrap_or(0)));
        v.into_iter().map(|e| Value::Object(e.clone())).collect()
    }

    /// Every entry but the gateway's own, with its key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .filter(|(k, _)| **k != self.self_key)
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Is a tracked client of this device currently connected (by its presence entry)?
    pub fn device_online(&self, device_id: &str) -> bool {
        self.entries.values().any(|e| {
            e.get("deviceId").and_then(Value::as_str) == Some(device_id)
                && e.get("reason").and_then(Value::as_str) != Some("disconnect")
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Entry {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn upsert_merge_and_disconnect() {
        let mut p = Presence::new(obj(json!({"mode": "gateway", "reason": "self", "ts": 0})));
        let d = Delta::Upsert {
            key: "c1".into(),
            fields: obj(
                json!({"host": "tui", "mode": "ui", "roles": ["operator"], "reason": "connect"}),
            ),
            now_ms: 10,
        };
        p.apply(&d);
        p.apply(&d);
        let list = p.list(20);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["mode"], "gateway");
        assert_eq!(list[1]["text"], "Node: tui · mode ui");
        assert_eq!(list[1]["roles"], json!(["operator"]));
        p.apply(&Delta::Upsert {
            key: "c1".into(),
            fields: obj(json!({"reason": "disconnect"})),
            now_ms: 30,
        });
        let list = p.list(31);
        assert_eq!(list[1]["reason"], "disconnect");
        assert_eq!(list[1]["host"], "tui");
    }

    #[test]
    fn deltas_commute_across_replicas() {
        let base = Presence::new(obj(json!({"mode": "gateway", "ts": 0})));
        let a = Delta::Upsert {
            key: "a".into(),
            fields: obj(json!({"mode": "ui"})),
            now_ms: 5,
        };
        let b = Delta::Upsert {
            key: "b".into(),
            fields: obj(json!({"mode": "node"})),
            now_ms: 6,
        };
        let (mut r1, mut r2) = (base.clone(), base);
        r1.apply(&a);
        r1.apply(&b);
        r2.apply(&b);
        r2.apply(&a);
        assert_eq!(r1.list(7), r2.list(7));
    }

    #[test]
    fn ttl_prunes_but_keeps_self() {
        let mut p = Presence::new(obj(json!({"mode": "gateway", "ts": 0})));
        p.apply(&Delta::Upsert {
            key: "old".into(),
            fields: obj(json!({"mode": "ui"})),
            now_ms: 1,
        });
        assert_eq!(p.list(TTL_MS + 2).len(), 1);
    }
}
