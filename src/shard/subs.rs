//! Which of a shard's connections a session's events can reach, so a session-scoped event
//! (`chat`, `agent`, `session.message`, …) visits that session's subscribers and the few
//! connections that take every session's events, not every connection on the shard. With a
//! thousand chat clients each watching its own session, a turn's events otherwise cost a
//! thousand subscription checks each.
//!
//! The index only narrows the candidates; each candidate still passes the full recipient
//! rules in [`super::ctx::ShardCtx::fanout`], so a stale extra entry costs a lookup, never a
//! wrong delivery. What must never be missing: a subscriber of the session (kept exact at the
//! one place subscriptions change) and a broad connection (the list is rebuilt after any
//! change that can add one).

use std::{collections::HashMap, sync::Arc};

#[derive(Default)]
pub struct SessionSubs {
    /// Session key → connections subscribed to it (`sessions.messages.subscribe`, a node's
    /// `chat.subscribe`).
    by_session: HashMap<Arc<str>, Vec<u64>>,
    /// Open connections that may take a session's events without subscribing to it: those
    /// without the `session-scoped-events` cap, `sessions.subscribe` subscribers, and nodes.
    broad: Vec<u64>,
    /// `broad` is out of date (a connection opened or changed what it subscribes to).
    broad_stale: bool,
}

impl SessionSubs {
    pub fn subscribe(&mut self, key: &Arc<str>, conn: u64) {
        let list = self.by_session.entry(key.clone()).or_default();
        if !list.contains(&conn) {
            list.push(conn);
        }
    }

    pub fn unsubscribe(&mut self, key: &str, conn: u64) {
        if let Some(list) = self.by_session.get_mut(key) {
            list.retain(|&c| c != conn);
            if list.is_empty() {
                self.by_session.remove(key);
            }
        }
    }

    /// A connection opened, closed, or changed its broad subscriptions.
    pub fn invalidate_broad(&mut self) {
        self.broad_stale = true;
    }

    /// Whether [`SessionSubs::candidates`] needs [`SessionSubs::set_broad`] first.
    pub fn broad_stale(&self) -> bool {
        self.broad_stale
    }

    pub fn set_broad(&mut self, conns: Vec<u64>) {
        self.broad = conns;
        self.broad_stale = false;
    }

    /// Every connection that may want an event of session `key`, each once, into `out`.
    pub fn candidates(&self, key: &str, out: &mut Vec<u64>) {
        out.clear();
        out.extend_from_slice(&self.broad);
        if let Some(list) = self.by_session.get(key) {
            out.extend_from_slice(list);
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Subscriptions of sessions with no subscriber left are dropped, so the map holds no
    /// more keys than there are live subscriptions.
    #[cfg(test)]
    fn sessions(&self) -> usize {
        self.by_session.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_subscribers_and_broad_connections_once_each() {
        let mut s = SessionSubs::default();
        let (a, b): (Arc<str>, Arc<str>) = ("agent:main:a".into(), "agent:main:b".into());
        s.subscribe(&a, 1);
        s.subscribe(&a, 2);
        s.subscribe(&a, 2);
        s.subscribe(&b, 3);
        s.set_broad(vec![2, 9]);
        let mut out = Vec::new();
        s.candidates("agent:main:a", &mut out);
        assert_eq!(out, [1, 2, 9]);
        s.candidates("agent:main:b", &mut out);
        assert_eq!(out, [2, 3, 9]);
        s.candidates("agent:main:none", &mut out);
        assert_eq!(out, [2, 9]);
        s.unsubscribe("agent:main:a", 1);
        s.unsubscribe("agent:main:a", 2);
        s.unsubscribe("agent:main:b", 3);
        assert_eq!(s.sessions(), 0);
        assert!(!s.broad_stale());
        s.invalidate_broad();
        assert!(s.broad_stale());
    }
}
