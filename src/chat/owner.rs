//! The owner side of a session: runs, the idempotency cache and transcript writes, all on the
//! session's owner shard so they are ordered without locks.
//!
//! A turn: the user message is appended (durable) → the caller gets its ack → `session.message`,
//! `sessions.changed`, `agent` lifecycle start → the runtime streams; deltas are paced ≥ 75 ms
//! (`agent` assistant + `chat` delta, same per-run `seq`) → on completion the reply is appended
//! (durable) → `agent` lifecycle end, `chat` final, `session.message` → the run-index note, the
//! cached terminal ack, and for `agent` the final response.
//!
//! Sans-IO: [`ChatOwner`] steps take the request, the time and the config and push effects —
//! store writes that come back as typed resumes, the pacing timer (carrying the run's serial,
//! so a timer of an ended run cannot touch a later run with the same id), broadcasts, answers,
//! and the owner's own actions (start a runtime, tell every shard's run index, forward a reply
//! to a channel) — for the shard's driver.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde_json::{json, Value};

use super::{
    payload::{self, RunRef, ABORT_STOP_REASON},
    runs::{RunNote, RunSummary},
    AbortVia, Answer, Caller, SendKind, SendReq, SessionCall, SessionOp, PACE_MS,
};
use crate::{
    agent::{config::RuntimeConfig, ContextMessage, Failure, Output, Turn, Usage},
    channels::ReplyRoute,
    config::Config,
    effects::{Effect, Effects},
    proto::errors::ErrorShape,
    store::{
        sessions::{Append, RunMark},
        Op, OpResult,
    },
};

/// Idempotency entries live this long (`DEDUPE_TTL_MS`)…
pub const DEDUPE_TTL_MS: u64 = 5 * 60_000;
/// …and at most this many finished ones are kept (`DEDUPE_MAX`).
pub const DEDUPE_MAX: usize = 1000;

struct Entry {
    fingerprint: u64,
    ts: u64,
    /// The cached terminal answer; `None` while the run is in flight.
    done: Option<Answer>,
}

/// The idempotency cache (`chat:<runId>`, `agent:<runId>`). In-flight entries stay until their
/// run ends; finished ones expire after [`DEDUPE_TTL_MS`], oldest first past [`DEDUPE_MAX`].
#[derive(Default)]
pub struct Dedupe {
    map: HashMap<String, Entry>,
    /// Finished entries in the order they finished (with their finish time).
    done_order: VecDeque<(String, u64)>,
}

impl Dedupe {
    fn sweep(&mut self, now: u64) {
        while let Some((k, ts)) = self.done_order.front() {
            let expired = now.saturating_sub(*ts) > DEDUPE_TTL_MS;
            if !expired && self.done_order.len() <= DEDUPE_MAX {
                break;
            }
            let (k, ts) = (k.clone(), *ts);
            self.done_order.pop_front();
            if self
                .map
                .get(&k)
                .is_some_and(|e| e.done.is_some() && e.ts == ts)
            {
                self.map.remove(&k);
            }
        }
    }

    fn get(&mut self, key: &str, now: u64) -> Option<&Entry> {
        self.sweep(now);
        self.map.get(key)
    }

    fn start(&mut self, key: String, fingerprint: u64, now: u64) {
        self.map.insert(
            key,
            Entry {
                fingerprint,
                ts: now,
                done: None,
            },
        );
    }

    fn finish(&mut self, key: &str, answer: Answer, now: u64) {
        if let Some(e) = self.map.get_mut(key) {
            e.done = Some(answer);
            e.ts = now;
            self.done_order.push_back((key.to_owned(), now));
        }
        self.sweep(now);
    }

    /// A finished entry from before a restart (call in finish order).
    fn restore(&mut self, key: String, fingerprint: u64, answer: Answer, finished_at: u64) {
        self.map.insert(
            key.clone(),
            Entry {
                fingerprint,
                ts: finished_at,
                done: Some(answer),
            },
        );
        self.done_order.push_back((key, finished_at));
    }

    fn forget(&mut self, key: &str) {
        self.map.remove(key);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

struct Run {
    id: Arc<str>,
    /// Unique per run on this owner (run ids can come back after their dedupe entry expires).
    serial: u64,
    key: Arc<str>,
    agent_id: String,
    kind: SendKind,
    caller: Caller,
    dedupe_key: String,
    key_given: bool,
    started_at: u64,
    text: String,
    emitted: usize,
    last_emit: u64,
    flush_armed: bool,
    seq: u64,
    cancel: Arc<AtomicBool>,
    /// The user turn is durable and the runtime started.
    running: bool,
    /// Terminal write in progress: no more output is accepted.
    ending: bool,
    /// Also deliver the final reply through this channel.
    reply_to: Option<ReplyRoute>,
    /// A worker run's channel state (`runtime: "openclaw-worker"`).
    worker: Option<Box<WorkerRun>>,
}

impl Run {
    fn r(&self) -> RunRef<'_> {
        RunRef {
            run_id: &self.id,
            key: &self.key,
            agent_id: &self.agent_id,
        }
    }
}

/// This shard's owned sessions' runs.
#[derive(Default)]
pub struct ChatOwner {
    runs: HashMap<Arc<str>, Run>,
    /// Session key → its active run.
    active: HashMap<Arc<str>, Arc<str>>,
    /// Session key → turns that asked to wait for the active run ([`SendReq::queue`]), in
    /// arrival order; each starts when the one before it has ended.
    waiting: HashMap<Arc<str>, VecDeque<Waiting>>,
    pub dedupe: Dedupe,
    next_serial: u64,
}

/// Most turns one session holds waiting behind its active run.
pub const MAX_WAITING: usize = 64;

/// A turn waiting for its session's active run to end.
#[derive(Debug)]
struct Waiting {
    caller: Caller,
    agent_id: String,
    req: SendReq,
}

/// What a step needs of the gateway.
pub struct Env<'a> {
    pub now_ms: u64,
    pub config: &'a Config,
}

impl ChatOwner {
    /// Runs in progress on this shard's sessions (at most one per session).
    pub fn active_runs(&self) -> usize {
        self.active.len()
    }
}

impl Env<'_> {
    fn row(&self, row: Value) -> Value {
        super::row::decorate(self.config, row, self.now_ms)
    }

    /// `provider/model` of an agent's runtime, for run records.
    fn model_label(&self, agent_id: &str) -> String {
        let (p, m) = self.model(agent_id);
        if p.is_empty() && m.is_empty() {
            return String::new();
        }
        format!("{p}/{m}")
    }

    fn model(&self, agent_id: &str) -> (String, String) {
        self.config
            .agent(agent_id)
            .map(|a| a.runtime.model())
            .map(|(p, m)| (p.to_owned(), m.to_owned()))
            .unwrap_or_default()
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum End {
    Ok { usage: Usage, stop_reason: String },
    Failed(Failure),
    Aborted,
}

/// What comes back to the owner.
#[derive(Debug)]
pub enum Resume {
    /// `chat.inject`'s message was appended.
    Injected {
        caller: Caller,
        key: Arc<str>,
        agent_id: String,
        message: Value,
        /// When the message was made (its `sessions.changed` carries the same time).
        at_ms: u64,
    },
    /// A `sessions.patch` was written.
    Patched { caller: Caller, key: Arc<str> },
    /// A `sessions.reset` was written.
    Reset { caller: Caller, key: Arc<str> },
    /// A `sessions.delete` was written.
    Deleted { caller: Caller, key: Arc<str> },
    /// A run's user turn was appended (or refused).
    UserCommitted {
        id: Arc<str>,
        user: Value,
        interrupted: bool,
    },
    /// A run's pacing interval passed: emit what it has.
    Flush { id: Arc<str>, serial: u64 },
    /// A run's reply (and end record) was appended.
    Ended {
        id: Arc<str>,
        end: End,
        reply: Option<Value>,
    },
    /// A worker's transcript commit was written (or refused).
    WorkerCommitted(Box<WorkerCommitted>),
    /// A worker run's start deadline passed.
    WorkerStartDeadline { id: Arc<str>, serial: u64 },
}

/// What only the chat driver does.
#[derive(Debug)]
pub enum Action {
    /// Start the agent's runtime on a turn; its outputs come back to [`ChatOwner::output`].
    StartTurn(RuntimeConfig, Turn),
    /// Launch an `openclaw worker` for a turn; its exit comes back to [`ChatOwner::output`],
    /// its calls to [`ChatOwner::handle`] as [`SessionOp::Worker`].
    LaunchWorker(Box<WorkerLaunch>),
    /// Make a model call for a worker; its output comes back to
    /// [`ChatOwner::worker_inference`].
    Infer(Box<InferRequest>),
    /// Tell every shard's run index (this one included).
    Note(RunNote),
    /// Deliver a run's final reply through the channel it came from.
    ForwardReply {
        route: ReplyRoute,
        key: Arc<str>,
        run_id: Arc<str>,
        text: String,
    },
}

type Fx = Effects<Resume, Action>;

mod worker;

use worker::WorkerRun;
pub use worker::{InferRequest, WorkerCommitted, WorkerLaunch};

fn dedupe_key(kind: SendKind, run_id: &str) -> String {
    match kind {
        SendKind::Agent => format!("agent:{run_id}"),
        _ => format!("chat:{run_id}"),
    }
}

impl ChatOwner {
    /// Handles a session request on its owner shard.
    pub fn handle(&mut self, env: &Env, call: SessionCall, fx: &mut Fx) {
        let caller = call.caller;
        let key: Arc<str> = Arc::from(call.key.canonical.as_str());
        let agent_id = call.key.agent_id;
        match call.op {
            SessionOp::Send(req) => self.send(env, caller, key, agent_id, req, fx),
            SessionOp::Worker(call) => self.worker_call(env, caller, *call, fx),
            SessionOp::Abort { run_id, via } => {
                let ids: Vec<Arc<str>> = match &run_id {
                    Some(id) => self
                        .runs
                        .get(id.as_str())
                        .filter(|r| r.key == key)
                        .map(|r| r.id.clone())
                        .into_iter()
                        .collect(),
                    None => self.active.get(&key).cloned().into_iter().collect(),
                };
                let mut aborted: Vec<String> = ids
                    .into_iter()
                    .filter(|id| self.abort(env, id, fx))
                    .map(|id| id.to_string())
                    .collect();
                if let Some(id) = run_id.filter(|_| aborted.is_empty()) {
                    if self.cancel_waiting(&key, &id, fx) {
                        aborted.push(id);
                    }
                }
                let answer = match via {
                    AbortVia::Chat => {
                        json!({"ok": true, "aborted": !aborted.is_empty(), "runIds": aborted})
                    }
                    AbortVia::Sessions => match aborted.first() {
                        Some(id) => json!({"ok": true, "abortedRunId": id, "status": "aborted"}),
                        None => {
                            json!({"ok": true, "abortedRunId": null, "status": "no-active-run"})
                        }
                    },
                };
                fx.ok(&caller, answer);
            }
            SessionOp::Inject { message, label } => {
                let text = match &label {
                    Some(l) => format!("[{l}]\n\n{message}"),
                    None => message,
                };
                let mut m = payload::message("assistant", &text, env.now_ms);
                m["stopReason"] = json!("stop");
                m["provider"] = json!("openclaw");
                m["model"] = json!("gateway-injected");
                let op = Op::Append(Box::new(Append {
                    key: key.to_string(),
                    agent_id: agent_id.clone(),
                    message: Some(m.clone()),
                    run: RunMark::None,
                    want_context: false,
                    must_exist: false,
                }));
                let r = Resume::Injected {
                    caller,
                    key,
                    agent_id,
                    message: m,
                    at_ms: env.now_ms,
                };
                fx.push(Effect::Store(op, r));
            }
            SessionOp::Patch(patch) => {
                let op = Op::PatchSession {
                    key: key.to_string(),
                    agent_id,
                    patch,
                };
                fx.push(Effect::Store(op, Resume::Patched { caller, key }));
            }
            SessionOp::Reset => {
                if let Some(id) = self.active.get(&key).cloned() {
                    self.abort(env, &id, fx);
                }
                let op = Op::ResetSession {
                    key: key.to_string(),
                    agent_id,
                };
                fx.push(Effect::Store(op, Resume::Reset { caller, key }));
            }
            SessionOp::Delete { transcript } => {
                if *key == *format!("agent:{agent_id}:main") {
                    let e = ErrorShape::invalid(format!("Cannot delete the main session ({key})."));
                    fx.err(&caller, e);
                    return;
                }
                if let Some(id) = self.active.get(&key).cloned() {
                    self.abort(env, &id, fx);
                }
                let op = Op::DeleteSession {
                    key: key.to_string(),
                    transcript,
                };
                fx.push(Effect::Store(op, Resume::Deleted { caller, key }));
            }
        }
    }

    /// A store result or a timer, for the step that asked for it.
    pub fn resume(&mut self, env: &Env, r: Resume, res: Option<OpResult>, fx: &mut Fx) {
        let now = env.now_ms;
        match r {
            Resume::Injected {
                caller,
                key,
                agent_id,
                message: m,
                at_ms,
            } => match res {
                Some(OpResult::Appended(a)) => {
                    let id = a.message_id.clone().unwrap_or_default();
                    fx.ok(&caller, json!({"ok": true, "messageId": id}));
                    let row = env.row(a.row.clone());
                    let seq = a.seq;
                    let mid = a.message_id.as_deref();
                    fx.push(Effect::Broadcast(payload::chat_injected(
                        &key, &agent_id, &id, &m,
                    )));
                    fx.push(Effect::Broadcast(payload::session_message(
                        &key, &agent_id, &m, seq, mid, &row,
                    )));
                    fx.push(Effect::Broadcast(payload::sessions_changed(
                        &key,
                        "update",
                        Some(&row),
                        at_ms,
                    )));
                }
                other => fx.err(&caller, store_error(other.as_ref())),
            },
            Resume::Patched { caller, key } => match res {
                Some(OpResult::Session(row)) => {
                    let row = env.row(row);
                    let path = env.config.store_path();
                    let resolved = json!({
                        "modelProvider": row["modelProvider"],
                        "model": row["model"],
                        "agentRuntime": row["agentRuntime"],
                        "runtimeSelectionLocked": false,
                    });
                    let changed = payload::sessions_changed(&key, "patch", Some(&row), now);
                    fx.ok(
                        &caller,
                        json!({"ok": true, "path": path.display().to_string(), "key": &*key,
                                "entry": row, "resolved": resolved}),
                    );
                    fx.push(Effect::Broadcast(changed));
                }
                other => fx.err(&caller, store_error(other.as_ref())),
            },
            Resume::Reset { caller, key } => match res {
                Some(OpResult::Session(row)) => {
                    let row = env.row(row);
                    let changed = payload::sessions_changed(&key, "reset", Some(&row), now);
                    fx.ok(&caller, json!({"ok": true, "key": &*key, "entry": row}));
                    fx.push(Effect::Broadcast(changed));
                }
                other => fx.err(&caller, store_error(other.as_ref())),
            },
            Resume::Deleted { caller, key } => match res {
                Some(OpResult::Deleted(deleted)) => {
                    fx.ok(
                        &caller,
                        json!({"ok": true, "key": &*key, "deleted": deleted, "archived": []}),
                    );
                    if deleted {
                        let changed = payload::sessions_changed(&key, "delete", None, now);
                        fx.push(Effect::Broadcast(changed));
                    }
                }
                other => fx.err(&caller, store_error(other.as_ref())),
            },
            Resume::UserCommitted {
                id,
                user,
                interrupted,
            } => self.committed_user(env, id, user, interrupted, res, fx),
            Resume::Flush { id, serial } => {
                let Some(run) = self.runs.get_mut(&id).filter(|r| r.serial == serial) else {
                    return;
                };
                run.flush_armed = false;
                if !run.ending {
                    self.emit_delta(&id, now, fx);
                }
            }
            Resume::Ended { id, end, reply } => self.ended(env, id, end, reply, res, fx),
            Resume::WorkerCommitted(c) => self.worker_committed(env, *c, res, fx),
            Resume::WorkerStartDeadline { id, serial } => {
                self.worker_start_deadline(env, id, serial, fx)
            }
        }
    }

    fn send(
        &mut self,
        env: &Env,
        caller: Caller,
        key: Arc<str>,
        agent_id: String,
        req: SendReq,
        fx: &mut Fx,
    ) {
        let now = env.now_ms;
        let dkey = dedupe_key(req.kind, &req.run_id);
        if let Some(e) = self.dedupe.get(&dkey, now) {
            if e.fingerprint != req.fingerprint {
                fx.err(&caller, conflict());
            } else {
                let answer = e.done.clone().unwrap_or_else(|| {
                    Answer::Ok(json!({"runId": req.run_id, "status": "in_flight"}))
                });
                fx.push(Effect::Answer(caller, answer));
            }
            return;
        }
        if self.runs.contains_key(req.run_id.as_str()) {
            let e = ErrorShape::invalid(format!("run {} is already active", req.run_id));
            fx.err(&caller, e);
            return;
        }
        if req.queue && self.active.contains_key(&key) {
            let q = self.waiting.entry(key.clone()).or_default();
            if q.len() >= MAX_WAITING {
                let e = ErrorShape::new(
                    crate::proto::errors::code::UNAVAILABLE,
                    format!("session {key} already has {MAX_WAITING} turns waiting"),
                );
                fx.err(&caller, e);
                return;
            }
            // A retry while it waits is the same turn.
            self.dedupe.start(dkey, req.fingerprint, now);
            q.push_back(Waiting {
                caller,
                agent_id,
                req,
            });
            return;
        }
        self.dedupe.start(dkey, req.fingerprint, now);
        self.begin(env, caller, key, agent_id, req, fx);
    }

    /// Starts the next waiting turn of `key` once nothing runs there.
    fn next_waiting(&mut self, env: &Env, key: &Arc<str>, fx: &mut Fx) {
        if self.active.contains_key(key) {
            return;
        }
        let Some(q) = self.waiting.get_mut(key) else {
            return;
        };
        let next = q.pop_front();
        if q.is_empty() {
            self.waiting.remove(key);
        }
        if let Some(w) = next {
            self.begin(env, w.caller, key.clone(), w.agent_id, w.req, fx);
        }
    }

    /// Takes a waiting turn out of its queue (aborted before it started).
    fn cancel_waiting(&mut self, key: &Arc<str>, run_id: &str, fx: &mut Fx) -> bool {
        let Some(q) = self.waiting.get_mut(key) else {
            return false;
        };
        let Some(i) = q.iter().position(|w| w.req.run_id == run_id) else {
            return false;
        };
        let w = q.remove(i).expect("found above");
        if q.is_empty() {
            self.waiting.remove(key);
        }
        self.dedupe.forget(&dedupe_key(w.req.kind, &w.req.run_id));
        let e = ErrorShape::new(
            crate::proto::errors::code::UNAVAILABLE,
            format!("run {run_id} was aborted before it started"),
        );
        fx.err(&w.caller, e);
        true
    }

    /// Starts a turn: interrupts the session's active run, registers the run and writes the
    /// user message (the runtime starts once it is durable).
    fn begin(
        &mut self,
        env: &Env,
        caller: Caller,
        key: Arc<str>,
        agent_id: String,
        req: SendReq,
        fx: &mut Fx,
    ) {
        let now = env.now_ms;
        let dkey = dedupe_key(req.kind, &req.run_id);
        let interrupted = match self.active.get(&key).cloned() {
            Some(id) => self.abort(env, &id, fx),
            None => false,
        };
        let id: Arc<str> = Arc::from(req.run_id.as_str());
        self.next_serial += 1;
        self.runs.insert(
            id.clone(),
            Run {
                id: id.clone(),
                serial: self.next_serial,
                key: key.clone(),
                agent_id: agent_id.clone(),
                kind: req.kind,
                caller,
                dedupe_key: dkey,
                key_given: req.key_given,
                started_at: now,
                text: String::new(),
                emitted: 0,
                last_emit: 0,
                flush_armed: false,
                seq: 0,
                cancel: Arc::new(AtomicBool::new(false)),
                running: false,
                ending: false,
                reply_to: req.reply_to,
                worker: None,
            },
        );
        self.active.insert(key.clone(), id.clone());
        let user = payload::user_message(&req.message, now, &req.run_id);
        let want_context = env
            .config
            .agent(&agent_id)
            .is_none_or(|a| a.runtime.reads_context());
        let op = Op::Append(Box::new(Append {
            key: key.to_string(),
            agent_id,
            message: Some(user.clone()),
            run: RunMark::Start {
                run_id: req.run_id.clone(),
                kind: req.kind.as_str(),
                fingerprint: req.fingerprint,
            },
            want_context,
            // `sessions.send` does not create sessions.
            must_exist: req.kind == SendKind::Sessions,
        }));
        let r = Resume::UserCommitted {
            id,
            user,
            interrupted,
        };
        fx.push(Effect::Store(op, r));
    }

    /// Drops a run that never started (its user turn was not written).
    fn drop_run(&mut self, id: &Arc<str>) -> Option<Run> {
        let run = self.runs.remove(id)?;
        if self.active.get(&run.key) == Some(id) {
            self.active.remove(&run.key);
        }
        Some(run)
    }

    /// The user turn is durable (or failed to be): answer the caller and start the runtime.
    fn committed_user(
        &mut self,
        env: &Env,
        id: Arc<str>,
        user: Value,
        interrupted: bool,
        res: Option<OpResult>,
        fx: &mut Fx,
    ) {
        let now = env.now_ms;
        let appended = match res {
            Some(OpResult::Appended(a)) => a,
            Some(OpResult::DuplicateRun(rec)) => {
                if let Some(run) = self.drop_run(&id) {
                    let key = run.key.clone();
                    self.duplicate(run, &rec, fx);
                    self.next_waiting(env, &key, fx);
                }
                return;
            }
            other => {
                if let Some(run) = self.drop_run(&id) {
                    self.dedupe.forget(&run.dedupe_key);
                    let mut e = store_error(other.as_ref());
                    if matches!(other, Some(OpResult::Failed(_))) {
                        e.message = format!("message not saved: {}", e.message);
                    }
                    fx.err(&run.caller, e);
                    self.next_waiting(env, &run.key, fx);
                }
                return;
            }
        };
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        run.running = true;
        run.seq += 1;
        let seq = run.seq;
        let (key, agent_id) = (run.key.clone(), run.agent_id.clone());
        let ack = match run.kind {
            SendKind::Agent => {
                let mut a = json!({"runId": &*id, "agentId": agent_id, "status": "accepted", "acceptedAt": now});
                if run.key_given {
                    a["sessionKey"] = json!(&*key);
                }
                a
            }
            _ => {
                // From the owner taking the request to this ack (the durable append between).
                let received_to_ack = now.saturating_sub(run.started_at);
                let mut a = json!({"runId": &*id, "status": "started", "messageSeq": appended.seq,
                                   "serverTiming": {"receivedToAckMs": received_to_ack}});
                if interrupted {
                    a["interruptedActiveRun"] = json!(true);
                }
                a
            }
        };
        fx.ok(&run.caller, ack);
        let row = env.row(appended.row.clone());
        fx.push(Effect::Broadcast(payload::session_message(
            &key,
            &agent_id,
            &user,
            appended.seq,
            appended.message_id.as_deref(),
            &row,
        )));
        fx.push(Effect::Broadcast(payload::sessions_changed(
            &key,
            "send",
            Some(&row),
            now,
        )));
        fx.push(Effect::Do(Action::Note(RunNote::Started {
            run_id: id.clone(),
            key: key.clone(),
            started_at: now,
        })));
        let start = json!({"phase": "start", "startedAt": now});
        fx.push(Effect::Broadcast(payload::agent_lifecycle(
            &run.r(),
            seq,
            now,
            start,
        )));
        if run.kind != SendKind::Agent {
            // Chat runs announce the model starting (the original's last preparation phase).
            run.seq += 1;
            let status = payload::chat_status(&run.r(), run.seq, "starting_model");
            fx.push(Effect::Broadcast(status));
        }
        if run.cancel.load(Ordering::Acquire) {
            self.finish(env, &id, End::Aborted, fx);
            return;
        }
        let turn = Turn {
            run_id: id.clone(),
            agent_id: agent_id.clone(),
            context: if appended.context.is_empty() {
                vec![ContextMessage {
                    role: "user",
                    text: crate::store::sessions::message_text(&user),
                    body: user.clone(),
                }]
            } else {
                appended.context.clone()
            },
            cancel: run.cancel.clone(),
        };
        match env.config.agent(&agent_id) {
            Some(a) => match &a.runtime {
                RuntimeConfig::Worker(cfg) => {
                    let epoch = run.serial;
                    let session_id = appended.session_id.clone();
                    let w = WorkerRun::new(epoch, session_id.clone());
                    let stop = w.stop.clone();
                    run.worker = Some(Box::new(w));
                    let deadline = Resume::WorkerStartDeadline {
                        id: id.clone(),
                        serial: run.serial,
                    };
                    fx.push(Effect::Timer(cfg.start_timeout_ms, deadline));
                    let mut history: Vec<Value> =
                        appended.context.iter().map(|m| m.body.clone()).collect();
                    // The last is the user's message: the worker gets it as its prompt.
                    history.pop();
                    fx.push(Effect::Do(Action::LaunchWorker(Box::new(WorkerLaunch {
                        config: (**cfg).clone(),
                        agent_id: agent_id.clone(),
                        grant: crate::worker::credential::Grant {
                            session_key: key.to_string(),
                            session_id,
                            run_id: id.to_string(),
                            environment_id: format!("ringgate-run-{epoch}"),
                            owner_epoch: epoch,
                            expires_at_ms: now + worker::CREDENTIAL_TTL_MS,
                        },
                        prompt: crate::store::sessions::message_text(&user),
                        history,
                        base_leaf: appended.message_id.clone(),
                        run_id: id.clone(),
                        cancel: run.cancel.clone(),
                        stop,
                    }))));
                }
                rt => fx.push(Effect::Do(Action::StartTurn(rt.clone(), turn))),
            },
            None => {
                let f = Failure {
                    kind: None,
                    message: format!("agent \"{agent_id}\" is not configured"),
                    detail: None,
                };
                self.finish(env, &id, End::Failed(f), fx);
            }
        }
    }

    /// Marks a run aborted; true when it was running (or about to).
    fn abort(&mut self, env: &Env, id: &Arc<str>, fx: &mut Fx) -> bool {
        let Some(run) = self.runs.get_mut(id) else {
            return false;
        };
        if run.ending {
            return false;
        }
        run.cancel.store(true, Ordering::Release);
        if run.running {
            self.finish(env, id, End::Aborted, fx);
        }
        true
    }

    /// Runtime output for a run owned here.
    pub fn output(&mut self, env: &Env, id: &Arc<str>, out: Output, fx: &mut Fx) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.ending || !run.running || run.cancel.load(Ordering::Acquire) {
            return;
        }
        match out {
            Output::Delta(t) => {
                run.text.push_str(&t);
                self.pace(env, id, fx);
            }
            Output::Done { usage, stop_reason } => {
                // A worker that exits cleanly without its finishing event: what it committed.
                let (usage, stop_reason) = match &run.worker {
                    Some(w) => (w.usage, w.stop_reason.clone().unwrap_or(stop_reason)),
                    None => (usage, stop_reason),
                };
                self.finish(env, id, End::Ok { usage, stop_reason }, fx)
            }
            Output::Failed(f) => self.finish(env, id, End::Failed(f), fx),
        }
    }

    /// Emits pending text now if the pacing interval has passed, else arms a flush timer.
    fn pace(&mut self, env: &Env, id: &Arc<str>, fx: &mut Fx) {
        let now = env.now_ms;
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.text.len() == run.emitted {
            return;
        }
        let due = run.last_emit + PACE_MS;
        if now >= due {
            self.emit_delta(id, now, fx);
        } else if !run.flush_armed {
            run.flush_armed = true;
            let r = Resume::Flush {
                id: id.clone(),
                serial: run.serial,
            };
            fx.push(Effect::Timer(due - now, r));
        }
    }

    fn emit_delta(&mut self, id: &Arc<str>, now: u64, fx: &mut Fx) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.text.len() == run.emitted {
            return;
        }
        run.seq += 1;
        let delta = run.text[run.emitted..].to_owned();
        run.emitted = run.text.len();
        run.last_emit = now;
        let r = run.r();
        let a = payload::agent_assistant(&r, run.seq, now, &delta, &run.text);
        let c = payload::chat_delta(&r, run.seq, &delta, &run.text, now);
        fx.push(Effect::Broadcast(a));
        fx.push(Effect::Broadcast(c));
    }

    /// Ends a run: writes its reply (durable), then emits the terminal events and answers.
    fn finish(&mut self, env: &Env, id: &Arc<str>, end: End, fx: &mut Fx) {
        let now = env.now_ms;
        if matches!(end, End::Ok { .. }) {
            self.emit_delta(id, now, fx);
        }
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        run.ending = true;
        run.cancel.store(true, Ordering::Release);
        if self.active.get(&run.key) == Some(id) {
            self.active.remove(&run.key);
        }
        let (provider, model_id) = env.model(&run.agent_id);
        let (status, usage, error) = match &end {
            End::Ok { usage, .. } => ("ok", *usage, None),
            End::Failed(f) => ("error", Usage::default(), Some(f.message.clone())),
            End::Aborted => ("aborted", Usage::default(), None),
        };
        let stop = match &end {
            End::Ok { stop_reason, .. } => stop_reason.as_str(),
            End::Aborted => ABORT_STOP_REASON,
            End::Failed(_) => "error",
        };
        // A worker commits its own messages; other runtimes' replies are written here.
        if let Some(w) = &run.worker {
            w.cancel_calls();
            if !matches!(end, End::Ok { .. }) {
                w.stop.store(true, Ordering::Release);
            }
        }
        let reply = (run.worker.is_none()
            && !run.text.is_empty()
            && !matches!(end, End::Failed(_)))
        .then(|| payload::assistant_record(&run.text, now, &provider, &model_id, &usage, stop));
        let op = Op::Append(Box::new(Append {
            key: run.key.to_string(),
            agent_id: run.agent_id.clone(),
            message: reply.clone(),
            run: RunMark::End {
                run_id: run.id.to_string(),
                status,
                usage,
                model: env.model_label(&run.agent_id),
                error,
                started_at_ms: run.started_at,
            },
            want_context: false,
            must_exist: false,
        }));
        let r = Resume::Ended {
            id: id.clone(),
            end,
            reply,
        };
        fx.push(Effect::Store(op, r));
    }

    /// The reply is durable (or failed to be): the terminal events, the run-index note, the
    /// cached answer and the `agent` final response.
    fn ended(
        &mut self,
        env: &Env,
        id: Arc<str>,
        end: End,
        reply: Option<Value>,
        res: Option<OpResult>,
        fx: &mut Fx,
    ) {
        let now = env.now_ms;
        let Some(mut run) = self.runs.remove(&id) else {
            return;
        };
        let (end, appended) = match res {
            Some(OpResult::Appended(a)) => (end, Some(a)),
            other => {
                // The reply could not be made durable: report it as the run's error.
                let e = store_error(other.as_ref());
                let f = Failure {
                    kind: None,
                    message: format!("reply not saved: {}", e.message),
                    detail: None,
                };
                (End::Failed(f), None)
            }
        };
        run.seq += 1;
        let seq = run.seq;
        let r = run.r();
        let (lifecycle, status, stop_reason, error) = match &end {
            End::Ok { stop_reason, .. } => (
                json!({"phase": "end", "startedAt": run.started_at, "endedAt": now, "aborted": false,
                       "stopReason": stop_reason, "livenessState": "working"}),
                "ok",
                stop_reason.clone(),
                None,
            ),
            End::Aborted => (
                json!({"phase": "end", "startedAt": run.started_at, "endedAt": now, "status": "cancelled",
                       "aborted": true, "stopReason": ABORT_STOP_REASON}),
                "aborted",
                ABORT_STOP_REASON.to_owned(),
                None,
            ),
            End::Failed(f) => (
                json!({"phase": "error", "startedAt": run.started_at, "endedAt": now, "error": f.message,
                       "aborted": false}),
                "error",
                "error".to_owned(),
                Some(f.message.clone()),
            ),
        };
        fx.push(Effect::Broadcast(payload::agent_lifecycle(
            &r, seq, now, lifecycle,
        )));
        fx.push(Effect::Broadcast(match &end {
            End::Ok { stop_reason, .. } => {
                let worker_entry = run.worker.as_ref().and_then(|w| w.final_entry.as_ref());
                let stored = appended.as_ref().and_then(|a| {
                    let (seq, id) = match worker_entry {
                        Some((seq, id)) => (*seq, id.as_str()),
                        None => a.seq.zip(a.message_id.as_deref())?,
                    };
                    Some((seq, id, a.session_id.as_str()))
                });
                payload::chat_final(&r, seq, &run.text, now, stop_reason, stored)
            }
            End::Aborted => payload::chat_aborted(&r, seq, &run.text, now),
            End::Failed(f) => payload::chat_error(&r, seq, f),
        }));
        let row = appended.as_ref().map(|a| env.row(a.row.clone()));
        if let (Some(m), Some(a), Some(row)) = (&reply, &appended, &row) {
            if a.seq.is_some() {
                fx.push(Effect::Broadcast(payload::session_message(
                    &run.key,
                    &run.agent_id,
                    m,
                    a.seq,
                    a.message_id.as_deref(),
                    row,
                )));
            }
        }
        fx.push(Effect::Broadcast(payload::sessions_changed(
            &run.key,
            "update",
            row.as_ref(),
            now,
        )));
        let reply_channel = run.reply_to.as_ref().map(|r| r.channel);
        if let (End::Ok { .. }, Some(route)) = (&end, run.reply_to.take()) {
            if !run.text.is_empty() {
                fx.push(Effect::Do(Action::ForwardReply {
                    route,
                    key: run.key.clone(),
                    run_id: run.id.clone(),
                    text: run.text.clone(),
                }));
            }
        }
        let summary = Arc::new(RunSummary {
            run_id: id.clone(),
            status,
            started_at: run.started_at,
            ended_at: now,
            error: error.clone(),
            stop_reason,
        });
        fx.push(Effect::Do(Action::Note(RunNote::Ended(summary))));
        // The cached answer for retries, and the agent's final response.
        let usage = match &end {
            End::Ok { usage, .. } => *usage,
            _ => Usage::default(),
        };
        record_run(&run, env, reply_channel, status, usage);
        let (provider, model) = env.model(&run.agent_id);
        let session_id = appended
            .as_ref()
            .map(|a| a.session_id.clone())
            .unwrap_or_default();
        let stop_reason = match &end {
            End::Ok { stop_reason, .. } => stop_reason.as_str(),
            _ => "",
        };
        let answer = terminal_answer(
            run.kind,
            &id,
            &Terminal {
                status,
                text: &run.text,
                started_at: run.started_at,
                ended_at: now,
                stop_reason,
                error: error.as_deref(),
                session_id: &session_id,
                provider: &provider,
                model: &model,
                usage,
            },
        );
        self.dedupe.finish(&run.dedupe_key, answer.clone(), now);
        if run.kind == SendKind::Agent {
            fx.push(Effect::Answer(run.caller, answer));
        }
        self.next_waiting(env, &run.key, fx);
    }

    /// The store found the run already recorded (its cache entry was evicted): nothing was
    /// written, and the caller gets what a retry gets.
    fn duplicate(&mut self, run: Run, rec: &crate::store::sessions::RecentRun, fx: &mut Fx) {
        let asked = self.dedupe.map.get(&run.dedupe_key).map(|e| e.fingerprint);
        self.dedupe.forget(&run.dedupe_key);
        if asked != Some(rec.fingerprint) {
            fx.err(&run.caller, conflict());
            return;
        }
        if rec.status == "running" {
            let answer = Answer::Ok(json!({"runId": &*run.id, "status": "in_flight"}));
            fx.push(Effect::Answer(run.caller, answer));
            return;
        }
        let (key, answer) = recorded_answer(rec);
        self.dedupe
            .restore(key, rec.fingerprint, answer.clone(), rec.ended_at_ms);
        fx.push(Effect::Answer(run.caller, answer));
    }
}

/// `openclaw_run_*` and `openclaw_model_tokens_total` for a finished run. The channel is the
/// one a reply goes back through (`webhook`), else the gateway's own chat (`webchat`); the
/// trigger is `cron` for scheduled runs, `webhook` for inbound channel messages, else `user`.
fn record_run(
    run: &Run,
    env: &Env,
    reply_channel: Option<&'static str>,
    status: &'static str,
    usage: Usage,
) {
    use crate::metrics::shard::{label, CostKey, RunKey, TokenKey};
    let (provider, model) = env.model(&run.agent_id);
    let price = env
        .config
        .pricing
        .iter()
        .find(|(m, _)| *m == format!("{provider}/{model}"))
        .map(|(_, p)| *p);
    let now = env.now_ms;
    let trigger = match &run.caller {
        Caller::Internal {
            waiter: crate::effects::Waiter::Cron(_),
            ..
        } => "cron",
        Caller::Internal { .. } => "webhook",
        Caller::Conn { .. } | Caller::Remote(_) => "user",
    };
    let channel = reply_channel.unwrap_or(if trigger == "webhook" {
        "webhook"
    } else {
        "webchat"
    });
    let (provider, model) = (label(&provider), label(&model));
    let secs = now.saturating_sub(run.started_at) as f64 / 1e3;
    crate::metrics::record(|m| {
        m.run_ended(
            RunKey {
                channel: channel.to_owned(),
                model: model.to_owned(),
                outcome: status,
                provider: provider.to_owned(),
                trigger,
            },
            secs,
        );
        for (token_type, n) in [("input", usage.input), ("output", usage.output)] {
            m.tokens(
                TokenKey {
                    agent: label(&run.agent_id).to_owned(),
                    channel: channel.to_owned(),
                    model: model.to_owned(),
                    provider: provider.to_owned(),
                    token_type,
                },
                n,
            );
        }
        if let Some(p) = price {
            let usd = (usage.input as f64 * p.input + usage.output as f64 * p.output) / 1e6;
            m.cost(
                CostKey {
                    agent: label(&run.agent_id).to_owned(),
                    channel: channel.to_owned(),
                    model: model.to_owned(),
                    provider: provider.to_owned(),
                },
                usd,
            );
        }
    });
}

fn store_error(r: Option<&OpResult>) -> ErrorShape {
    match r {
        Some(OpResult::Invalid(m)) => ErrorShape::invalid(m.clone()),
        Some(OpResult::Failed(m)) => {
            ErrorShape::new(crate::proto::errors::code::UNAVAILABLE, m.clone()).retry_after(1000)
        }
        Some(other) => ErrorShape::new(
            crate::proto::errors::code::UNAVAILABLE,
            format!("unexpected store result: {other:?}"),
        ),
        None => ErrorShape::new(
            crate::proto::errors::code::UNAVAILABLE,
            "the store did not answer",
        ),
    }
}

/// How a run ended, for its cached answer.
struct Terminal<'a> {
    /// `ok`, `error`, `aborted` or `interrupted`.
    status: &'a str,
    text: &'a str,
    started_at: u64,
    ended_at: u64,
    stop_reason: &'a str,
    error: Option<&'a str>,
    session_id: &'a str,
    provider: &'a str,
    model: &'a str,
    usage: Usage,
}

/// The terminal answer of a run (cached for retries of its key; `agent`'s final response).
fn terminal_answer(kind: SendKind, id: &str, t: &Terminal) -> Answer {
    match (t.status, kind) {
        ("ok", SendKind::Agent) => Answer::Ok(json!({
            "runId": id, "status": "ok", "summary": "completed",
            "result": {
                "payloads": if t.text.is_empty() { json!([]) } else { json!([{"text": t.text, "mediaUrl": null}]) },
                "meta": {
                    "durationMs": t.ended_at.saturating_sub(t.started_at),
                    "agentMeta": {"sessionId": t.session_id, "provider": t.provider, "model": t.model,
                                  "usage": payload::usage_json(&t.usage)},
                    "aborted": false,
                    "stopReason": t.stop_reason,
                },
            },
        })),
        ("ok", _) => Answer::Ok(json!({"runId": id, "status": "ok"})),
        ("aborted", _) => Answer::Ok(json!({
            "runId": id, "status": "timeout", "summary": "aborted",
            "stopReason": ABORT_STOP_REASON, "endedAt": t.ended_at,
        })),
        _ => {
            let msg = t.error.unwrap_or_default().to_owned();
            Answer::Failed(
                json!({"runId": id, "status": "error", "summary": msg}),
                ErrorShape::new(crate::proto::errors::code::UNAVAILABLE, msg),
            )
        }
    }
}

/// Remembers a run that ended before this start (read from the store): a retry of its key
/// gets its answer, as it would have before the restart. Called for the sessions this shard
/// owns.
pub fn restore(owner: &mut ChatOwner, r: &crate::store::sessions::RecentRun) {
    let (key, answer) = recorded_answer(r);
    owner
        .dedupe
        .restore(key, r.fingerprint, answer, r.ended_at_ms);
}

/// The dedupe key and the answer a retry of a recorded run gets.
fn recorded_answer(r: &crate::store::sessions::RecentRun) -> (String, Answer) {
    let kind = SendKind::parse(&r.kind);
    let (provider, model) = r
        .model
        .as_deref()
        .and_then(|m| m.split_once('/'))
        .unwrap_or_default();
    let answer = terminal_answer(
        kind,
        &r.run_id,
        &Terminal {
            status: &r.status,
            text: r.reply.as_deref().unwrap_or_default(),
            started_at: r.started_at_ms,
            ended_at: r.ended_at_ms,
            stop_reason: "stop",
            error: r.error.as_deref(),
            session_id: &r.session_id,
            provider,
            model,
            usage: Usage {
                input: r.input_tokens,
                output: r.output_tokens,
            },
        },
    );
    (dedupe_key(kind, &r.run_id), answer)
}

/// A retried key with other content (the original's `chat-request-conflict`).
fn conflict() -> ErrorShape {
    ErrorShape::invalid(
        "This message ID was already used for different input. Check the conversation history and use a new message ID to send again.",
    )
    .with_details(json!({"reason": "chat-request-conflict"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{chat::key::SessionKey, store::sessions::Appended};

    const T0: u64 = 1_772_000_000_000;
    const KEY: &str = "agent:main:main";

    fn config() -> Config {
        Config::default()
    }

    fn env(c: &Config, now_ms: u64) -> Env<'_> {
        Env { now_ms, config: c }
    }

    fn caller(n: u64) -> Caller {
        Caller::conn(0, n, format!("r{n}"))
    }

    fn send_call(n: u64, run_id: &str, message: &str) -> SessionCall {
        SessionCall {
            caller: caller(n),
            key: SessionKey {
                canonical: KEY.into(),
                agent_id: "main".into(),
            },
            op: SessionOp::Send(SendReq {
                queue: false,
                kind: SendKind::Chat,
                message: message.into(),
                run_id: run_id.into(),
                fingerprint: crate::chat::fingerprint(&[message]),
                key_given: true,
                reply_to: None,
            }),
        }
    }

    fn appended(seq: u64) -> Option<OpResult> {
        Some(OpResult::Appended(Box::new(Appended {
            session_id: "s1".into(),
            created: seq == 1,
            seq: Some(seq),
            message_id: Some(format!("m{seq}")),
            context: Vec::new(),
            row: json!({"key": KEY, "agentId": "main"}),
        })))
    }

    /// Short names of effects ([`Effect::short`]) and of the chat actions: `start`,
    /// `note:started|ended`.
    fn names(fx: &Fx) -> Vec<String> {
        fx.0.iter()
            .map(|e| match e {
                Effect::Do(Action::StartTurn(..)) => "start".into(),
                Effect::Do(Action::Note(RunNote::Started { .. })) => "note:started".into(),
                Effect::Do(Action::Note(RunNote::Ended(_))) => "note:ended".into(),
                other => other.short(),
            })
            .collect()
    }

    /// Takes the resume of the (only) store op in `fx`.
    fn store_resume(fx: Fx) -> Resume {
        let mut it = fx.0.into_iter().filter_map(|e| match e {
            Effect::Store(_, r) => Some(r),
            _ => None,
        });
        let r = it.next().expect("a store op");
        assert!(it.next().is_none(), "one store op");
        r
    }

    /// A run whose user turn is durable and whose runtime started.
    fn running(o: &mut ChatOwner, c: &Config, run_id: &str) -> Arc<str> {
        let mut fx = Fx::default();
        o.handle(&env(c, T0), send_call(1, run_id, "hi"), &mut fx);
        let r = store_resume(fx);
        let mut fx = Fx::default();
        o.resume(&env(c, T0 + 2), r, appended(1), &mut fx);
        assert_eq!(
            names(&fx),
            [
                "reply:1:ok",
                "event:session.message",
                "event:sessions.changed",
                "note:started",
                "event:agent",
                "event:chat",
                "start"
            ]
        );
        let Some(Effect::Reply(_, Ok(ack))) = fx.0.first() else {
            panic!()
        };
        assert_eq!(ack["status"], "started");
        assert_eq!(ack["serverTiming"]["receivedToAckMs"], 2);
        Arc::from(run_id)
    }

    #[test]
    fn deltas_are_paced_and_a_flush_timer_of_an_ended_run_does_nothing() {
        let c = config();
        let mut o = ChatOwner::default();
        let id = running(&mut o, &c, "run-1");
        let mut fx = Fx::default();
        // The first delta goes out at once…
        o.output(&env(&c, T0 + 10), &id, Output::Delta("a".into()), &mut fx);
        assert_eq!(names(&fx), ["event:agent", "event:chat"]);
        // …the next within the interval arms one timer for the rest of the interval.
        let mut fx = Fx::default();
        o.output(&env(&c, T0 + 20), &id, Output::Delta("b".into()), &mut fx);
        o.output(&env(&c, T0 + 30), &id, Output::Delta("c".into()), &mut fx);
        assert_eq!(names(&fx), [format!("timer:{}", PACE_MS - 10)]);
        let Some(Effect::Timer(_, flush)) = fx.0.pop() else {
            panic!()
        };
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 10 + PACE_MS), flush, None, &mut fx);
        assert_eq!(names(&fx), ["event:agent", "event:chat"]);
        let Effect::Broadcast(ev) = &fx.0[1] else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&ev.to_vec(None)).unwrap();
        assert_eq!(v["payload"]["deltaText"], "bc", "{v}");
        // Done: the reply is written, then the end events, the note and the cache.
        let mut fx = Fx::default();
        let done = Output::Done {
            usage: Usage::default(),
            stop_reason: "stop".into(),
        };
        o.output(&env(&c, T0 + 200), &id, Output::Delta("d".into()), &mut fx);
        o.output(&env(&c, T0 + 200), &id, done, &mut fx);
        let ended = store_resume(fx);
        // A flush armed before the end, firing after it, touches nothing.
        let stale = Resume::Flush {
            id: id.clone(),
            serial: 1,
        };
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 201), ended, appended(2), &mut fx);
        assert_eq!(
            names(&fx),
            [
                "event:agent",
                "event:chat",
                "event:session.message",
                "event:sessions.changed",
                "note:ended"
            ]
        );
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 300), stale, None, &mut fx);
        assert!(fx.is_empty(), "{fx:?}");
        // A retry of the key gets the cached answer; other content under it is a conflict.
        let mut fx = Fx::default();
        o.handle(&env(&c, T0 + 400), send_call(2, "run-1", "hi"), &mut fx);
        assert_eq!(names(&fx), ["answer:2:ok"]);
        let mut fx = Fx::default();
        o.handle(&env(&c, T0 + 400), send_call(3, "run-1", "other"), &mut fx);
        let [Effect::Reply(_, Err(e))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(
            e.details.as_ref().unwrap()["reason"],
            "chat-request-conflict"
        );
    }

    #[test]
    fn an_abort_before_the_user_turn_is_durable_ends_the_run_without_starting_it() {
        let c = config();
        let mut o = ChatOwner::default();
        let mut fx = Fx::default();
        o.handle(&env(&c, T0), send_call(1, "run-1", "hi"), &mut fx);
        let committed = store_resume(fx);
        let abort = SessionCall {
            caller: caller(2),
            key: SessionKey {
                canonical: KEY.into(),
                agent_id: "main".into(),
            },
            op: SessionOp::Abort {
                run_id: None,
                via: AbortVia::Chat,
            },
        };
        let mut fx = Fx::default();
        o.handle(&env(&c, T0 + 1), abort, &mut fx);
        let [Effect::Reply(_, Ok(v))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(v["runIds"], json!(["run-1"]));
        // The user turn lands: the caller still gets its ack, the runtime never starts, and the
        // run ends as aborted.
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 2), committed, appended(1), &mut fx);
        let n = names(&fx);
        assert!(n.starts_with(&["reply:1:ok".to_owned()]), "{n:?}");
        assert!(!n.contains(&"start".to_owned()), "{n:?}");
        assert_eq!(n.last().map(String::as_str), Some("store"), "{n:?}");
        let ended = store_resume(fx);
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 3), ended, appended(2), &mut fx);
        let summary = fx.0.iter().find_map(|e| match e {
            Effect::Do(Action::Note(RunNote::Ended(s))) => Some(s.clone()),
            _ => None,
        });
        assert_eq!(summary.unwrap().status, "aborted");
    }

    #[test]
    fn a_user_turn_that_is_not_saved_fails_the_caller_and_frees_the_key() {
        let c = config();
        let mut o = ChatOwner::default();
        let mut fx = Fx::default();
        o.handle(&env(&c, T0), send_call(1, "run-1", "hi"), &mut fx);
        let committed = store_resume(fx);
        let mut fx = Fx::default();
        let failed = Some(OpResult::Failed("disk I/O error".into()));
        o.resume(&env(&c, T0 + 1), committed, failed, &mut fx);
        let [Effect::Reply(_, Err(e))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(e.message, "message not saved: disk I/O error");
        assert_eq!(e.retry_after_ms, Some(1000));
        // The same key may be sent again, and runs.
        let id = running(&mut o, &c, "run-1");
        assert_eq!(&*id, "run-1");
    }

    fn queued_call(n: u64, run_id: &str) -> SessionCall {
        let mut call = send_call(n, run_id, "hook");
        if let SessionOp::Send(r) = &mut call.op {
            r.queue = true;
        }
        call
    }

    #[test]
    fn a_queued_send_waits_for_the_active_run_then_starts() {
        let c = config();
        let mut o = ChatOwner::default();
        let id = running(&mut o, &c, "run-1");
        // Behind the active run: nothing is written, nothing answered yet.
        let mut fx = Fx::default();
        o.handle(&env(&c, T0 + 5), queued_call(2, "run-2"), &mut fx);
        o.handle(&env(&c, T0 + 5), queued_call(3, "run-3"), &mut fx);
        assert!(fx.0.is_empty(), "{:?}", names(&fx));
        // A retry while it waits is the same turn.
        o.handle(&env(&c, T0 + 6), queued_call(4, "run-2"), &mut fx);
        let Some(Effect::Answer(_, Answer::Ok(v))) = fx.0.first() else {
            panic!("{:?}", names(&fx))
        };
        assert_eq!(v["status"], "in_flight");
        // Aborting a waiting turn takes it out of the queue; its caller hears why.
        let mut fx = Fx::default();
        let abort = SessionCall {
            caller: caller(5),
            key: SessionKey {
                canonical: KEY.into(),
                agent_id: "main".into(),
            },
            op: SessionOp::Abort {
                run_id: Some("run-3".into()),
                via: AbortVia::Chat,
            },
        };
        o.handle(&env(&c, T0 + 7), abort, &mut fx);
        let n = names(&fx);
        assert_eq!(n.len(), 2, "{n:?}");
        // When run-1 has ended, run-2 begins (its user turn is written).
        let mut fx = Fx::default();
        let done = Output::Done {
            usage: Usage::default(),
            stop_reason: "stop".into(),
        };
        o.output(&env(&c, T0 + 8), &id, done, &mut fx);
        let ended = store_resume(fx);
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 9), ended, appended(2), &mut fx);
        let next = fx.0.iter().any(|e| {
            matches!(e, Effect::Store(Op::Append(a), Resume::UserCommitted { .. })
                if matches!(&a.run, RunMark::Start { run_id, .. } if run_id == "run-2"))
        });
        assert!(next, "{:?}", names(&fx));
        assert!(o.waiting.is_empty());
    }

    #[test]
    fn a_new_send_interrupts_the_active_run() {
        let c = config();
        let mut o = ChatOwner::default();
        running(&mut o, &c, "run-1");
        let mut fx = Fx::default();
        o.handle(&env(&c, T0 + 5), send_call(2, "run-2", "next"), &mut fx);
        // The first run's end is written, then the new user turn.
        let stores =
            fx.0.iter()
                .filter(|e| matches!(e, Effect::Store(..)))
                .count();
        assert_eq!(stores, 2, "{:?}", names(&fx));
        let committed =
            fx.0.into_iter()
                .filter_map(|e| match e {
                    Effect::Store(_, r @ Resume::UserCommitted { .. }) => Some(r),
                    _ => None,
                })
                .next()
                .unwrap();
        let mut fx = Fx::default();
        o.resume(&env(&c, T0 + 6), committed, appended(3), &mut fx);
        let Some(Effect::Reply(_, Ok(ack))) = fx.0.first() else {
            panic!()
        };
        assert_eq!(ack["interruptedActiveRun"], true);
    }

    /// Runs the owner's store effects against the in-memory store (resuming the owner with
    /// each result) until none are left; returns the other effects, in order.
    fn settle(
        o: &mut ChatOwner,
        c: &Config,
        store: &mut crate::store::memory::MemoryStore,
        fx: Fx,
        now: u64,
    ) -> Vec<Effect<Resume, Action>> {
        let mut out = Vec::new();
        for e in fx.0 {
            match e {
                Effect::Store(op, r) => {
                    let res = store.run(&op, now);
                    let mut next = Fx::default();
                    o.resume(&env(c, now), r, Some(res), &mut next);
                    out.extend(settle(o, c, store, next, now));
                }
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn a_whole_turn_through_the_store_leaves_both_messages_and_answers_retries() {
        let c = config();
        let mut store = crate::store::memory::MemoryStore::new();
        let mut o = ChatOwner::default();
        let mut fx = Fx::default();
        o.handle(&env(&c, T0), send_call(1, "run-1", "hi"), &mut fx);
        let fx = settle(&mut o, &c, &mut store, fx, T0 + 1);
        let turn = fx
            .into_iter()
            .find_map(|e| match e {
                Effect::Do(Action::StartTurn(RuntimeConfig::Echo { chunk_chars, .. }, t)) => {
                    Some((chunk_chars, t))
                }
                _ => None,
            })
            .expect("the default agent's runtime starts");
        let (chunk_chars, turn) = turn;
        assert_eq!(
            turn.message(),
            "hi",
            "the context ends with the user's message"
        );
        let outputs = crate::agent::echo::Echo {
            delay_ms: 0,
            chunk_chars,
        }
        .outputs(&turn);
        let mut all = Vec::new();
        for out in outputs {
            let mut fx = Fx::default();
            o.output(&env(&c, T0 + 100), &turn.run_id, out, &mut fx);
            all.extend(settle(&mut o, &c, &mut store, fx, T0 + 100));
        }
        let ended = all.iter().find_map(|e| match e {
            Effect::Do(Action::Note(RunNote::Ended(s))) => Some(s.clone()),
            _ => None,
        });
        assert_eq!(ended.expect("the run ends").status, "ok");
        let q = crate::store::sessions::HistoryQuery {
            key: KEY.into(),
            limit: 10,
            offset: 0,
            max_bytes: 1 << 20,
        };
        let Some(OpResult::History(page)) = Some(store.run(&Op::History(Box::new(q)), T0 + 200))
        else {
            panic!()
        };
        let texts: Vec<String> = page
            .messages
            .iter()
            .map(crate::store::sessions::message_text)
            .collect();
        assert_eq!(texts, ["hi", "echo: hi"]);
        // A retry gets the kept answer and writes nothing more.
        let mut fx = Fx::default();
        o.handle(&env(&c, T0 + 300), send_call(2, "run-1", "hi"), &mut fx);
        assert_eq!(names(&fx), ["answer:2:ok"]);
        // So does a retry on a fresh owner whose cache lacks the key: the store knows the run.
        let mut fresh = ChatOwner::default();
        let mut fx = Fx::default();
        fresh.handle(&env(&c, T0 + 400), send_call(3, "run-1", "hi"), &mut fx);
        let rest = settle(&mut fresh, &c, &mut store, fx, T0 + 400);
        let [Effect::Answer(to, Answer::Ok(v))] = &rest[..] else {
            panic!("{rest:?}")
        };
        assert_eq!(to, &caller(3));
        assert_eq!(v, &json!({"runId": "run-1", "status": "ok"}));
    }

    #[test]
    fn dedupe_keeps_in_flight_entries_and_bounds_finished_ones() {
        let mut d = Dedupe::default();
        d.start("chat:live".into(), 1, 0);
        for i in 0..DEDUPE_MAX + 50 {
            let k = format!("chat:{i}");
            d.start(k.clone(), 7, 10);
            d.finish(&k, Answer::Ok(json!({"runId": i})), 10);
        }
        // Finished entries are capped; the in-flight one is never evicted.
        assert!(d.len() <= DEDUPE_MAX + 1, "{}", d.len());
        assert!(d.get("chat:live", 10).is_some());
        assert!(d.get(&format!("chat:{}", DEDUPE_MAX + 49), 10).is_some());
        // After the TTL a finished entry is gone; the in-flight one stays.
        let later = 10 + DEDUPE_TTL_MS + 1;
        assert!(d.get(&format!("chat:{}", DEDUPE_MAX + 49), later).is_none());
        assert!(d.get("chat:live", later).is_some());
    }
}
