//! The replicated run index: every shard learns when a run starts (and in which session) and
//! how it ended, so `agent.wait` and `sessions.abort {runId}` work on any shard without asking
//! around. Ended runs are kept for the idempotency TTL (5 min, at most 1,000).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use serde_json::{json, Value};

use super::Caller;
use crate::{shard::ctx::ShardCtx, state::now_ms};

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
    let status = match r.status.as_str() {
        "ok" => "ok",
        "aborted" => "aborted",
        "interrupted" => "interrupted",
        _ => "error",
    };
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

/// Applies a note on this shard and answers local waiters of an ended run.
pub fn apply(ctx: &mut ShardCtx, note: RunNote) {
    match note {
        RunNote::Started {
            run_id,
            key,
            started_at,
        } => {
            ctx.run_index.active.insert(run_id, (key, started_at));
        }
        RunNote::Ended(s) => {
            let idx = &mut ctx.run_index;
            idx.active.remove(&s.run_id);
            idx.ended.insert(s.run_id.clone(), s.clone());
            idx.ended_order.push_back(s.run_id.clone());
            idx.trim(now_ms());
            let waiters = idx.waiters.remove(&s.run_id).unwrap_or_default();
            let result = wait_result(&s);
            for w in waiters {
                w.caller.ok(ctx, &result);
            }
        }
    }
}

/// `agent.wait {runId, timeoutMs}`: answers at once for an ended run, else when it ends or the
/// timeout passes (`{runId, status:"timeout"}`).
pub fn wait(ctx: &mut ShardCtx, caller: Caller, run_id: String, timeout_ms: u64) {
    if let Some(s) = ctx.run_index.ended.get(run_id.as_str()).cloned() {
        caller.ok(ctx, &wait_result(&s));
        return;
    }
    let idx = &mut ctx.run_index;
    idx.next_waiter += 1;
    let id = idx.next_waiter;
    let key: Arc<str> = Arc::from(run_id.as_str());
    idx.waiters
        .entry(key.clone())
        .or_default()
        .push(Waiter { id, caller });
    let me = ctx.me.clone();
    monoio::spawn(async move {
        crate::shard::timer::sleep_ms(timeout_ms).await;
        let Some(ctx) = me.upgrade() else { return };
        let mut ctx = ctx.borrow_mut();
        let Some(list) = ctx.run_index.waiters.get_mut(&key) else {
            return;
        };
        let Some(i) = list.iter().position(|w| w.id == id) else {
            return;
        };
        let w = list.swap_remove(i);
        if list.is_empty() {
            ctx.run_index.waiters.remove(&key);
        }
        w.caller
            .ok(&mut ctx, &json!({"runId": &*key, "status": "timeout"}));
    });
}
