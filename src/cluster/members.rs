//! Who is in the cluster, decided from heartbeats alone (sans-IO: the link thread feeds it
//! beats and the clock, and carries out what it returns).
//!
//! Every host publishes a [`Beat`] each second. A peer is alive while its beats keep coming;
//! one silent for `dead_after_ms` is dead, and everything it announced on this host's behalf
//! (its presence entries) is marked disconnected here. A peer that appears — for the first
//! time, again after being declared dead, restarted (a new `started_ms`), or just reconnected
//! to NATS (`hello`) — may have missed changes, so this host answers it with a full snapshot
//! of its own presence.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// One heartbeat of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    /// The host's name (`ringgate.cluster.name`).
    pub host: String,
    /// When the host's process started (ms since the epoch): a new value is a restart.
    pub started_ms: u64,
    /// The first beat after (re)connecting to NATS: the host may have missed changes.
    #[serde(default)]
    pub hello: bool,
    /// The host is shutting down: its clients are gone now, not after `deadAfterMs`.
    #[serde(default)]
    pub leaving: bool,
    /// Authenticated connections on the host.
    #[serde(default)]
    pub connections: u64,
    /// Approval clients connected to the host (an approval request needs one somewhere).
    #[serde(default)]
    pub approvers: u64,
    /// Where clients reach the host (`ws://addr:port`).
    #[serde(default)]
    pub url: String,
}

/// What the link must do after a beat or a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `host` joined or came back: send it this host's presence snapshot.
    Joined(String),
    /// `host` is gone: mark these presence keys (which it announced) disconnected.
    Died { host: String, presence: Vec<String> },
}

/// A peer as this host sees it.
#[derive(Debug, Clone)]
struct Peer {
    beat: Beat,
    last_seen_ms: u64,
    alive: bool,
    /// Presence keys the peer announced (live or disconnected), cleared when it dies.
    presence: BTreeSet<String>,
}

/// One member in [`View`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub name: String,
    pub alive: bool,
    pub url: String,
    pub connections: u64,
    pub approvers: u64,
    pub last_seen_ms: u64,
    pub started_ms: u64,
}

/// The membership table.
#[derive(Debug)]
pub struct Members {
    me: String,
    dead_after_ms: u64,
    peers: HashMap<String, Peer>,
}

/// At most this many peers are tracked: a flood of beats with made-up host names (from a
/// misconfigured or hostile publisher on the same NATS) cannot grow the table without bound.
pub const MAX_PEERS: usize = 1024;
/// At most this many presence keys are remembered per peer (presence itself keeps 200).
pub const MAX_KEYS_PER_PEER: usize = 4096;

impl Members {
    pub fn new(me: impl Into<String>, dead_after_ms: u64) -> Self {
        Members {
            me: me.into(),
            dead_after_ms,
            peers: HashMap::new(),
        }
    }

    /// A beat arrived. Beats of this host's own name are ignored (the link subscribes without
    /// echo; a second process with the same name is reported by the caller).
    pub fn on_beat(&mut self, beat: Beat, now_ms: u64) -> Vec<Change> {
        let mut out = Vec::new();
        if beat.host == self.me {
            return out;
        }
        let full = self.peers.len() >= MAX_PEERS;
        match self.peers.get_mut(&beat.host) {
            Some(p) if beat.leaving => {
                if p.alive {
                    p.alive = false;
                    out.push(Change::Died {
                        host: beat.host.clone(),
                        presence: std::mem::take(&mut p.presence).into_iter().collect(),
                    });
                }
                p.last_seen_ms = now_ms;
            }
            None if beat.leaving => {}
            Some(p) => {
                let restarted = p.beat.started_ms != beat.started_ms;
                if restarted && p.alive {
                    out.push(Change::Died {
                        host: beat.host.clone(),
                        presence: std::mem::take(&mut p.presence).into_iter().collect(),
                    });
                }
                if restarted || !p.alive || beat.hello {
                    out.push(Change::Joined(beat.host.clone()));
                }
                p.alive = true;
                p.last_seen_ms = now_ms;
                p.beat = beat;
            }
            None if full => {}
            None => {
                out.push(Change::Joined(beat.host.clone()));
                self.peers.insert(
                    beat.host.clone(),
                    Peer {
                        beat,
                        last_seen_ms: now_ms,
                        alive: true,
                        presence: BTreeSet::new(),
                    },
                );
            }
        }
        out
    }

    /// A peer announced a presence key: remember it, so its death can mark it disconnected.
    /// A key from a host not (yet) known is remembered once its first beat arrives — until
    /// then there is nothing to declare dead.
    pub fn on_presence(&mut self, host: &str, key: &str) {
        if let Some(p) = self.peers.get_mut(host) {
            if p.presence.len() < MAX_KEYS_PER_PEER || p.presence.contains(key) {
                p.presence.insert(key.to_owned());
            }
        }
    }

    /// Declares peers silent for too long dead.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Change> {
        let mut out = Vec::new();
        for (name, p) in &mut self.peers {
            if p.alive && now_ms.saturating_sub(p.last_seen_ms) > self.dead_after_ms {
                p.alive = false;
                out.push(Change::Died {
                    host: name.clone(),
                    presence: std::mem::take(&mut p.presence).into_iter().collect(),
                });
            }
        }
        // Dead peers are forgotten after a day, so renamed hosts do not pile up.
        self.peers
            .retain(|_, p| p.alive || now_ms.saturating_sub(p.last_seen_ms) < 86_400_000);
        out
    }

    /// Is `host` a live peer?
    pub fn alive(&self, host: &str) -> bool {
        self.peers.get(host).is_some_and(|p| p.alive)
    }

    /// Live peers' names, sorted.
    pub fn alive_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.alive)
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Every known peer, sorted by name.
    pub fn view(&self) -> Vec<MemberView> {
        let mut v: Vec<MemberView> = self
            .peers
            .iter()
            .map(|(name, p)| MemberView {
                name: name.clone(),
                alive: p.alive,
                url: p.beat.url.clone(),
                connections: p.beat.connections,
                approvers: p.beat.approvers,
                last_seen_ms: p.last_seen_ms,
                started_ms: p.beat.started_ms,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(host: &str, started_ms: u64) -> Beat {
        Beat {
            host: host.into(),
            started_ms,
            hello: false,
            leaving: false,
            connections: 0,
            approvers: 0,
            url: String::new(),
        }
    }

    #[test]
    fn a_new_peer_joins_once_and_its_own_name_is_ignored() {
        let mut m = Members::new("a", 5000);
        assert_eq!(m.on_beat(beat("a", 1), 0), vec![]);
        assert_eq!(m.on_beat(beat("b", 1), 0), vec![Change::Joined("b".into())]);
        assert_eq!(m.on_beat(beat("b", 1), 1000), vec![]);
        assert!(m.alive("b"));
        assert_eq!(m.alive_names(), vec!["b".to_owned()]);
    }

    #[test]
    fn silence_kills_and_hands_back_the_presence_keys() {
        let mut m = Members::new("a", 5000);
        m.on_beat(beat("b", 1), 0);
        m.on_presence("b", "conn-1");
        m.on_presence("b", "conn-2");
        m.on_presence("unknown", "conn-3");
        assert_eq!(m.tick(5000), vec![], "not yet: exactly at the limit");
        assert_eq!(
            m.tick(5001),
            vec![Change::Died {
                host: "b".into(),
                presence: vec!["conn-1".into(), "conn-2".into()],
            }]
        );
        assert!(!m.alive("b"));
        assert_eq!(m.tick(9000), vec![], "dies once");
        // It comes back: joined again, with no keys left from before.
        assert_eq!(
            m.on_beat(beat("b", 1), 9500),
            vec![Change::Joined("b".into())]
        );
        assert_eq!(
            m.tick(20_000),
            vec![Change::Died {
                host: "b".into(),
                presence: vec![],
            }]
        );
    }

    #[test]
    fn a_restart_is_a_death_then_a_join_and_hello_asks_for_a_snapshot() {
        let mut m = Members::new("a", 5000);
        m.on_beat(beat("b", 1), 0);
        m.on_presence("b", "k");
        assert_eq!(
            m.on_beat(beat("b", 2), 100),
            vec![
                Change::Died {
                    host: "b".into(),
                    presence: vec!["k".into()],
                },
                Change::Joined("b".into()),
            ]
        );
        let mut hello = beat("b", 2);
        hello.hello = true;
        assert_eq!(m.on_beat(hello, 200), vec![Change::Joined("b".into())]);
    }

    #[test]
    fn a_leaving_peer_dies_at_once() {
        let mut m = Members::new("a", 5000);
        m.on_beat(beat("b", 1), 0);
        m.on_presence("b", "k");
        let mut bye = beat("b", 1);
        bye.leaving = true;
        assert_eq!(
            m.on_beat(bye.clone(), 10),
            vec![Change::Died {
                host: "b".into(),
                presence: vec!["k".into()],
            }]
        );
        assert_eq!(m.on_beat(bye, 20), vec![], "once");
        assert_eq!(m.tick(60_000), vec![]);
        bye = beat("c", 1);
        bye.leaving = true;
        assert_eq!(
            m.on_beat(bye, 30),
            vec![],
            "an unknown host leaving is nothing"
        );
    }

    #[test]
    fn made_up_hosts_and_keys_are_bounded() {
        let mut m = Members::new("a", 5000);
        for i in 0..MAX_PEERS + 10 {
            m.on_beat(beat(&format!("h{i}"), 1), 0);
        }
        assert_eq!(m.view().len(), MAX_PEERS);
        for i in 0..MAX_KEYS_PER_PEER + 10 {
            m.on_presence("h0", &format!("k{i}"));
        }
        let h0 = m.tick(10_000).into_iter().find_map(|c| match c {
            Change::Died { host, presence } if host == "h0" => Some(presence),
            _ => None,
        });
        assert_eq!(h0.map(|p| p.len()), Some(MAX_KEYS_PER_PEER));
    }
}
