//! The replicated run index: every shard learns when a run starts (and in which session) and
//! how it ended, so `agent.wait` and `sessions.abort {runId}` work on any shard without asking
//! around. Ended runs are kept for the idempotency TTL (5 min, at most 1,000).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use serde_json::{json, Value};

use crate::effects::{Caller, Effects};

/// How long ended runs stay answerable.
pub const KEEP_MS: u64 = 5 * 60_000;
/// Ended runs kept at most.
pub const KEEP_MAX: usize = 1000;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run_id: Arc<str>,
    /// `ok`, `error`, `aborted` or `interrupted` (cut off by a stop of the gateway).
    pub status: &'static str,
    pub started_at: u64,
    pub ended_at: u64,
    pub error: Option<String>,
    pub stop_reason: String,
}

/// A run-index change, sent by the owner to every shard.
#[derive(Debug, Clone)]
pub enum RunNote {
    Started {
        run_id: Arc<str>,
        key: Arc<str>,
        started_at: u64,
    },
    Ended(Arc<RunSummary>),
}

struct Waiter {
    id: u64,
    caller: Caller,
}

#[derive(Default)]
pub struct RunIndex {
    active: HashMap<Arc<str>, (Arc<str>, u64)>,
    ended: HashMap<Arc<str>, Arc<RunSummary>>,
    ended_order: VecDeque<Arc<str>>,
    waiters: HashMap<Arc<str>, Vec<Waiter>>,
    next_waiter: u64,
}

impl RunIndex {
    /// The session of an active run.
    pub fn session_of(&self, run_id: &str) -> Option<Arc<str>> {
        self.active.get(run_id).map(|(k, _)| k.clone())
    }

    /// The active run of a session (id, start time), if any.
    pub fn active_in(&self, key: &str) -> Option<(Arc<str>, u64)> {
        self.active
            .iter()
            .find(|(_, (k, _))| &**k == key)
            .map(|(id, (_, at))| (id.clone(), *at))
    }

    fn trim(&mut self, now: u64) {
        while let Some(front) = self.ended_order.front() {
            let old = self
                .ended
                .get(front)
                .is_none_or(|s| now.saturating_sub(s.ended_at) > KEEP_MS);
            if !old && self.ended_order.len() <= KEEP_MAX {
                break;
            }
            let id = self.ended_order.pop_front().expect("front exists");
            self.ended.remove(&id);
        }
    }
}

/// Remembers a run that ended before this start (read from the store), so `agent.wait`
/// answers it — an interrupted run as an error saying so — instead of waiting in vain.
pub fn restore(idx: &mut RunIndex, r: &crate::store::sessions::RecentRun) {
    let status = status_named(&r.status);
    let id: Arc<str> = Arc::from(r.run_id.as_str());
    idx.ended.insert(
        id.clone(),
        Arc::new(RunSummary {
            run_id: id.clone(),
            status,
            started_at: r.started_at_ms,
            ended_at: r.ended_at_ms,
            error: r.error.clone(),
            stop_reason: match status {
                "ok" => "stop",
                "aborted" => super::payload::ABORT_STOP_REASON,
                _ => "error",
            }
            .to_owned(),
        }),
    );
    idx.ended_order.push_back(id);
}

/// A stored (or received) run status as one of [`RunSummary::status`]'s values.
pub fn status_named(s: &str) -> &'static str {
    match s {
        "ok" => "ok",
        "aborted" => "aborted",
        "interrupted" => "interrupted",
        _ => "error",
    }
}

/// The `agent.wait` answer for an ended run.
pub fn wait_result(s: &RunSummary) -> Value {
    let mut v = json!({
        "runId": &*s.run_id,
        "status": match s.status { "ok" => "ok", "aborted" => "timeout", _ => "error" },
        "startedAt": s.started_at,
        "endedAt": s.ended_at,
        "stopReason": s.stop_reason,
        "livenessState": "working",
    });
    if let Some(e) = &s.error {
        v["error"] = json!(e);
    }
    v
}

/// What comes back to the run index: an `agent.wait` timer, carrying the waiter it was set
/// for (a waiter answered meanwhile is gone, so its timer does nothing).
#[derive(Debug)]
pub enum Resume {
    WaitTimeout { run_id: Arc<str>, waiter: u64 },
}

impl RunIndex {
    /// Applies a note on this shard and answers the waiters of an ended run.
    pub fn note(&mut self, note: RunNote, now_ms: u64, fx: &mut Effects<Resume>) {
        match note {
            RunNote::Started {
                run_id,
                key,
                started_at,
            } => {
                self.active.insert(run_id, (key, started_at));
            }
            RunNote::Ended(s) => {
                self.active.remove(&s.run_id);
                self.ended.insert(s.run_id.clone(), s.clone());
                self.ended_order.push_back(s.run_id.clone());
                self.trim(now_ms);
                let waiters = self.waiters.remove(&s.run_id).unwrap_or_default();
                let result = wait_result(&s);
                for w in waiters {
                    fx.ok(&w.caller, result.clone());
                }
            }
        }
    }

    /// `agent.wait {runId, timeoutMs}`: answers at once for an ended run, else when it ends or
    /// the timeout passes (`{runId, status:"timeout"}`).
    pub fn wait(
        &mut self,
        caller: Caller,
        run_id: &str,
        timeout_ms: u64,
        fx: &mut Effects<Resume>,
    ) {
        if let Some(s) = self.ended.get(run_id) {
            fx.ok(&caller, wait_result(s));
            return;
        }
        self.next_waiter += 1;
        let id = self.next_waiter;
        let key: Arc<str> = Arc::from(run_id);
        self.waiters
            .entry(key.clone())
            .or_default()
            .push(Waiter { id, caller });
        fx.push(crate::effects::Effect::Timer(
            timeout_ms,
            Resume::WaitTimeout {
                run_id: key,
                waiter: id,
            },
        ));
    }

    pub fn resume(&mut self, r: Resume, fx: &mut Effects<Resume>) {
        let Resume::WaitTimeout { run_id, waiter } = r;
        let Some(list) = self.waiters.get_mut(&run_id) else {
            return;
        };
        let Some(i) = list.iter().position(|w| w.id == waiter) else {
            return;
        };
        let w = list.swap_remove(i);
        if list.is_empty() {
            self.waiters.remove(&run_id);
        }
        fx.ok(&w.caller, json!({"runId": &*run_id, "status": "timeout"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Effect;

    fn caller(n: u64) -> Caller {
        Caller::conn(0, n, format!("r{n}"))
    }

    fn ended(id: &str, at: u64) -> RunNote {
        RunNote::Ended(Arc::new(RunSummary {
            run_id: Arc::from(id),
            status: "ok",
            started_at: at - 5,
            ended_at: at,
            error: None,
            stop_reason: "stop".into(),
        }))
    }

    #[test]
    fn a_waiter_is_answered_when_the_run_ends_and_its_timer_then_does_nothing() {
        let mut idx = RunIndex::default();
        let mut fx = Effects::default();
        idx.wait(caller(1), "run-1", 30_000, &mut fx);
        let [Effect::Timer(30_000, timer)] = &mut fx.0[..] else {
            panic!("{fx:?}")
        };
        let Resume::WaitTimeout { run_id, waiter } = timer;
        let timer = Resume::WaitTimeout {
            run_id: run_id.clone(),
            waiter: *waiter,
        };
        let mut fx = Effects::default();
        idx.note(ended("run-1", 100), 100, &mut fx);
        let [Effect::Reply(to, Ok(v))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(to, &caller(1));
        assert_eq!(v["status"], "ok");
        assert_eq!(v["endedAt"], 100);
        let mut fx = Effects::default();
        idx.resume(timer, &mut fx);
        assert!(fx.is_empty(), "a stale timer answers nobody: {fx:?}");
        // A later wait on the ended run is answered at once.
        idx.wait(caller(2), "run-1", 30_000, &mut fx);
        assert!(matches!(&fx.0[..], [Effect::Reply(_, Ok(v))] if v["status"] == "ok"));
    }

    #[test]
    fn a_timeout_answers_only_its_own_waiter() {
        let mut idx = RunIndex::default();
        let mut fx = Effects::default();
        idx.wait(caller(1), "run-1", 10, &mut fx);
        idx.wait(caller(2), "run-1", 20, &mut fx);
        let timers: Vec<Resume> =
            fx.0.into_iter()
                .map(|e| match e {
                    Effect::Timer(_, r) => r,
                    other => panic!("{other:?}"),
                })
                .collect();
        let first = timers.into_iter().next().unwrap();
        let mut fx = Effects::default();
        idx.resume(first, &mut fx);
        let [Effect::Reply(to, Ok(v))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(to, &caller(1));
        assert_eq!(v, &json!({"runId": "run-1", "status": "timeout"}));
        // The other waiter still gets the end.
        let mut fx = Effects::default();
        idx.note(ended("run-1", 50), 50, &mut fx);
        assert!(matches!(&fx.0[..], [Effect::Reply(to, Ok(_))] if to == &caller(2)));
    }

    #[test]
    fn ended_runs_are_kept_for_the_ttl_and_bounded() {
        let mut idx = RunIndex::default();
        let mut fx = Effects::default();
        for i in 0..KEEP_MAX + 10 {
            idx.note(ended(&format!("r{i}"), 1_000), 1_000, &mut fx);
        }
        assert!(idx.ended.len() <= KEEP_MAX);
        assert!(idx
            .ended
            .contains_key(format!("r{}", KEEP_MAX + 9).as_str()));
        idx.note(
            ended("late", 1_000 + KEEP_MS + 1),
            1_000 + KEEP_MS + 1,
            &mut fx,
        );
        assert_eq!(idx.ended.len(), 1, "older than the TTL are gone");
    }
}
