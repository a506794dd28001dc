//! Several ringgate hosts behaving as one gateway, over NATS.
//!
//! Each host runs one extra thread, the *link* ([`link`]), with its own Tokio runtime and an
//! `async-nats` client — the way the storage thread owns SQLite, nothing on a shard ever
//! waits on NATS. Shards hand the link what other hosts must see ([`Out`]) through a bounded
//! lock-free queue ([`Handle::send`]); the link hands what arrives to the shards over the
//! ordinary bus. What travels (subjects in [`wire`]):
//!
//! * every broadcast event an owner on this host emits (except the host's own `health` and
//!   `tick`), fanned out on every other host to its own connections, each stamping its own
//!   gap-free `seq`;
//! * presence changes of this host's clients, applied on every host as the same commutative
//!   upserts that cross shards, under each host's own `stateVersion.presence`;
//! * heartbeats, from which [`members`] decides who is alive: a host silent for
//!   `deadAfterMs` is dead, and its clients' presence entries are marked disconnected;
//! * the node registry, and `node.invoke` traffic, response frames and exec-approval calls
//!   addressed to one host;
//! * paired devices and their tokens, in a JetStream key-value bucket (the durable record);
//! * sessions: each has one owner host, named in a key-value bucket (taken over by compare-
//!   and-set when its owner dies); calls go to the owner, whose every committed session write
//!   is stored in a JetStream stream before its caller hears of it, and which every host
//!   applies to its SQLite (a cache any host reads; see [`crate::store::replica`]).
//!
//! Without `ringgate.cluster` none of this exists and the gateway runs alone.

pub mod link;
pub mod members;
pub mod record;
pub mod wire;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use serde_json::{json, Value};

use crate::{bus::Inbox, config::ConfigError, proto::frame::EventTemplate, state::presence::Delta};

/// `ringgate.cluster`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated (`nats://host:4222`).
    pub nats: String,
    /// This host's name, unique in the cluster.
    pub name: String,
    /// Subject prefix (and stream/bucket name stem): several clusters can share one NATS.
    pub prefix: String,
    /// JetStream replicas of the durable records (1 for one NATS server, 3 in production).
    pub replicas: usize,
    /// How long the first connection to NATS may take before start-up fails.
    pub connect_timeout_ms: u64,
    /// A peer silent this long is declared dead.
    pub dead_after_ms: u64,
}

impl ClusterConfig {
    pub fn new(nats: String, name: String) -> Self {
        ClusterConfig {
            nats,
            name,
            prefix: "ringgate".into(),
            replicas: 1,
            connect_timeout_ms: 5_000,
            dead_after_ms: 5_000,
        }
    }

    /// Takes a user and password written in the NATS URLs (`nats://user:pass@host:4222`) out
    /// of them: returned for the connection, and gone from `nats`, which logs and `health`
    /// show. (The NATS client does not read them from the URL itself.)
    pub fn take_login(&mut self) -> Option<(String, String)> {
        let mut login = None;
        let urls: Vec<String> = self
            .nats
            .split(',')
            .map(|u| {
                let u = u.trim();
                let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
                match rest.rsplit_once('@') {
                    Some((userinfo, host)) if !userinfo.contains('/') => {
                        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                        login.get_or_insert((user.to_owned(), pass.to_owned()));
                        if scheme.is_empty() {
                            host.to_owned()
                        } else {
                            format!("{scheme}://{host}")
                        }
                    }
                    _ => u.to_owned(),
                }
            })
            .collect();
        self.nats = urls.join(",");
        login
    }

    /// Parses `ringgate.cluster` (`nats` is required; `name` defaults to the machine's host
    /// name).
    pub fn parse(v: &Value, path: &str) -> Result<ClusterConfig, ConfigError> {
        use crate::config::{as_str, as_u64, fields, invalid};
        let mut c = ClusterConfig::new(String::new(), String::new());
        for (k, v, key) in fields(
            v,
            path,
            &[
                "nats",
                "name",
                "subjectPrefix",
                "replicas",
                "connectTimeoutMs",
                "deadAfterMs",
            ],
        )? {
            match k {
                "nats" => c.nats = as_str(&key, v)?.trim().to_owned(),
                "name" => c.name = as_str(&key, v)?.trim().to_owned(),
                "subjectPrefix" => c.prefix = as_str(&key, v)?.trim().to_owned(),
                "replicas" => c.replicas = as_u64(&key, v, 1, 5)? as usize,
                "connectTimeoutMs" => c.connect_timeout_ms = as_u64(&key, v, 100, 120_000)?,
                _ => c.dead_after_ms = as_u64(&key, v, 1_000, 600_000)?,
            }
        }
        if c.nats.is_empty() {
            return Err(invalid(
                &format!("{path}.nats"),
                "is required: the NATS server URL, e.g. \"nats://127.0.0.1:4222\"",
            ));
        }
        c.validate(path)?;
        Ok(c)
    }

    /// Checks the name and prefix, filling a missing name with the machine's host name.
    pub fn validate(&mut self, path: &str) -> Result<(), ConfigError> {
        use crate::config::invalid;
        if self.name.is_empty() {
            self.name = crate::state::hostname();
        }
        if !token_ok(&self.name) {
            return Err(invalid(
                &format!("{path}.name"),
                "must be 1-64 letters, digits, '-' or '_' (it names this host in NATS subjects)",
            ));
        }
        if !self.prefix.split('.').all(token_ok) {
            return Err(invalid(
                &format!("{path}.subjectPrefix"),
                "must be dot-separated tokens of letters, digits, '-' or '_'",
            ));
        }
        Ok(())
    }
}

/// A NATS subject token (and a host name): no wildcards, dots or spaces.
fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a shard asks the link to tell the other hosts.
#[derive(Debug)]
pub enum Out {
    /// A broadcast event of this host.
    Event(Arc<EventTemplate>),
    /// A presence change of one of this host's clients.
    Presence(Delta),
    /// A node connected to or left this host.
    Node(crate::nodes::registry::NodeDelta),
    /// `node.invoke` traffic for a caller or node on another host.
    Invoke(crate::nodes::invoke::Remote),
    /// A paired-device change made on this host (already durable here), for the shared
    /// record.
    Device(crate::store::DeviceDelta),
    /// A response frame for a connection of another host.
    Reply {
        host: Arc<str>,
        shard: usize,
        conn: u64,
        frame: Vec<u8>,
    },
    /// An exec-approval call for the host that holds the approvals table.
    Approval {
        host: Arc<str>,
        call: crate::approvals::ApprovalCall,
    },
    /// A session call whose owner host shard `shard` does not know yet: the link finds (or
    /// becomes) the owner and hands the call back with the answer ([`crate::bus::BusMsg::Owner`]).
    Claim {
        shard: usize,
        call: Box<crate::chat::SessionCall>,
    },
    /// A `cron.*` call of a connection of this host, for the host that runs cron.
    Cron {
        host: Arc<str>,
        call: crate::cron::service::CronCall,
    },
    /// A run of a session this host owns started or ended (for the other hosts' run index).
    Note(crate::chat::runs::RunNote),
    /// A session call of a connection of this host, for the session's owner host.
    Session {
        host: Arc<str>,
        call: Box<crate::chat::SessionCall>,
    },
}

/// The storage thread's notices in a cluster: to this host's shards as always, and device
/// changes made here also to the cluster's shared record (changes that came from it are not
/// sent back).
pub struct ClusterPublish {
    pub bus: Arc<crate::bus::Bus>,
    pub cluster: Handle,
}

impl crate::store::Publish for ClusterPublish {
    fn to_every_shard(&self, n: crate::store::Notice) {
        if let crate::store::Notice::Device(d) = &n {
            self.cluster.send(Out::Device(d.clone()));
        }
        self.bus.to_every_shard(n);
    }

    fn replicates(&self) -> bool {
        true
    }

    fn replicate(&self, r: crate::store::replica::Replica) {
        self.cluster.replicas.replicate(r);
    }
}

/// Messages the link's queue holds before shards drop (and count) what they hand it. The link
/// drains it continuously; it fills only while NATS itself is not keeping up.
pub const OUTBOX_CAPACITY: usize = 65_536;

/// The shards' side of the link: its queue, and this host's name.
#[derive(Clone)]
pub struct Handle {
    outbox: Arc<Inbox<Out>>,
    pub host: Arc<str>,
    /// Messages dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
    /// Where the storage thread's session changes go (never dropped: their callers wait).
    pub replicas: Arc<dyn crate::store::replica::Replicate>,
}

impl Handle {
    /// Queues `m` for the link without waiting; a full queue drops it (counted, and logged
    /// by the link): a shard never waits on the network.
    pub fn send(&self, m: Out) {
        if self.outbox.push(m).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the link for the owner host of `call`'s session ([`Out::Claim`]); gives the call
    /// back when the queue is full (counted), so its caller can be answered.
    pub fn claim(
        &self,
        shard: usize,
        call: Box<crate::chat::SessionCall>,
    ) -> Result<(), Box<crate::chat::SessionCall>> {
        match self.outbox.push(Out::Claim { shard, call }) {
            Ok(()) => Ok(()),
            Err(m) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                match m {
                    Out::Claim { call, .. } => Err(call),
                    _ => unreachable!("the queue gives back what it was given"),
                }
            }
        }
    }

    /// Whether this event is for the other hosts too. A host's own `health` and `tick`
    /// describe that host; presence crosses as changes, never as a list. A session's events
    /// cross: each session has one owner host in the cluster, and its watchers may be on
    /// any host.
    pub fn crosses(ev: &EventTemplate) -> bool {
        !matches!(
            ev.name.as_str(),
            "health" | "tick" | "presence" | "shutdown"
        )
    }
}

/// The cluster as this host sees it (sent to every shard when it changes).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub host: String,
    pub nats: String,
    pub connected: bool,
    /// When the link last connected or lost NATS (ms since the epoch).
    pub since_ms: u64,
    pub members: Vec<members::MemberView>,
    /// Outgoing messages dropped so far (queue full or NATS refused them).
    pub dropped: u64,
    /// Incoming messages refused as malformed so far.
    pub malformed: u64,
    /// A full round of heartbeats has arrived since the link (re)connected: `members` can be
    /// trusted to name every live host (until then a peer may be alive but not yet heard).
    pub settled: bool,
}

impl View {
    /// `health.gateway.cluster`.
    pub fn to_json(&self, now_ms: u64) -> Value {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "alive": m.alive,
                    "url": m.url,
                    "connections": m.connections,
                    "lastSeenAgoMs": now_ms.saturating_sub(m.last_seen_ms),
                })
            })
            .collect();
        json!({
            "host": self.host,
            "nats": self.nats,
            "connected": self.connected,
            "sinceMs": self.since_ms,
            "members": members,
            "alive": 1 + self.members.iter().filter(|m| m.alive).count(),
            "dropped": self.dropped,
            "malformed": self.malformed,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn config_needs_a_url_and_checks_names() {
        let c = ClusterConfig::parse(
            &json!({"nats": "nats://127.0.0.1:4222", "name": "host-a", "replicas": 3}),
            "ringgate.cluster",
        )
        .unwrap();
        assert_eq!(
            (c.name.as_str(), c.replicas, c.prefix.as_str()),
            ("host-a", 3, "ringgate")
        );
        let e = ClusterConfig::parse(&json!({"name": "a"}), "ringgate.cluster").unwrap_err();
        assert!(e.to_string().contains("ringgate.cluster.nats"), "{e}");
        for bad in ["a.b", "a b", "*", ">", ""] {
            let r = ClusterConfig::parse(
                &json!({"nats": "nats://x", "name": bad}),
                "ringgate.cluster",
            );
            if bad.is_empty() {
                assert!(r.is_ok(), "an empty name takes the host name");
            } else {
                assert!(r.is_err(), "{bad:?} accepted");
            }
        }
        assert!(ClusterConfig::parse(
            &json!({"nats": "nats://x", "subjectPrefix": "a.*"}),
            "ringgate.cluster"
        )
        .is_err());
        assert!(ClusterConfig::parse(&json!({"nats": "nats://x", "replicas": 0}), "c").is_err());
        assert!(ClusterConfig::parse(&json!({"nats": "nats://x", "bogus": 1}), "c").is_err());
    }

    #[test]
    fn a_login_in_the_nats_urls_is_taken_out_of_them() {
        let mut c = ClusterConfig::new(
            "nats://ringgate:s3cret@10.0.0.5:4222, nats://ringgate:s3cret@10.0.0.6:4222".into(),
            "a".into(),
        );
        assert_eq!(c.take_login(), Some(("ringgate".into(), "s3cret".into())));
        assert_eq!(c.nats, "nats://10.0.0.5:4222,nats://10.0.0.6:4222");
        let mut plain = ClusterConfig::new("nats://127.0.0.1:4222".into(), "a".into());
        assert_eq!(plain.take_login(), None);
        assert_eq!(plain.nats, "nats://127.0.0.1:4222");
    }

    #[test]
    fn health_and_ticks_stay_home_and_session_events_cross() {
        let ev = |name: &str| EventTemplate::new(name, &json!({}), None);
        assert!(!Handle::crosses(&ev("health")));
        assert!(!Handle::crosses(&ev("tick")));
        assert!(!Handle::crosses(&ev("presence")));
        assert!(Handle::crosses(&ev("node.presence")));
        assert!(Handle::crosses(&ev("exec.approval.requested")));
        let chat = ev("chat").with_meta(crate::proto::frame::EventMeta {
            session: Some("agent:main:main".into()),
            ..Default::default()
        });
        assert!(Handle::crosses(&chat));
    }
}
