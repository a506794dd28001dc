//! The owner side of a session: runs, the idempotency cache and transcript writes, all on the
//! session's owner shard so they are ordered without locks.
//!
//! A turn: the user message is appended (durable) → the caller gets its ack → `session.message`,
//! `sessions.changed`, `agent` lifecycle start → the runtime streams; deltas are paced ≥ 75 ms
//! (`agent` assistant + `chat` delta, same per-run `seq`) → on completion the reply is appended
//! (durable) → `agent` lifecycle end, `chat` final, `session.message` → the run-index note, the
//! cached terminal ack, and for `agent` the final response.

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
    agent::{self, ContextMessage, Failure, Output, Turn, Usage},
    bus::BusMsg,
    methods::Effect,
    proto::{errors::ErrorShape, frame::EventTemplate},
    shard::ctx::ShardCtx,
    state::now_ms,
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
    reply_to: Option<crate::channels::ReplyRoute>,
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
    pub dedupe: Dedupe,
}

fn dedupe_key(kind: SendKind, run_id: &str) -> String {
    match kind {
        SendKind::Agent => format!("agent:{run_id}"),
        _ => format!("chat:{run_id}"),
    }
}

/// Handles a session request on its owner shard.
pub fn handle(ctx: &mut ShardCtx, call: SessionCall) {
    let caller = call.caller;
    let key: Arc<str> = Arc::from(call.key.canonical.as_str());
    let agent_id = call.key.agent_id;
    match call.op {
        SessionOp::Send(req) => send(ctx, caller, key, agent_id, req),
        SessionOp::Abort { run_id, via } => {
            let ids: Vec<Arc<str>> = match run_id {
                Some(id) => ctx
                    .chat
                    .runs
                    .get(id.as_str())
                    .filter(|r| r.key == key)
                    .map(|r| r.id.clone())
                    .into_iter()
                    .collect(),
                None => ctx.chat.active.get(&key).cloned().into_iter().collect(),
            };
            let aborted: Vec<String> = ids
                .into_iter()
                .filter(|id| abort(ctx, id))
                .map(|id| id.to_string())
                .collect();
            let answer = match via {
                AbortVia::Chat => {
                    json!({"ok": true, "aborted": !aborted.is_empty(), "runIds": aborted})
                }
                AbortVia::Sessions => match aborted.first() {
                    Some(id) => json!({"ok": true, "abortedRunId": id, "status": "aborted"}),
                    None => json!({"ok": true, "abortedRunId": null, "status": "no-active-run"}),
                },
            };
            caller.ok(ctx, &answer);
        }
        SessionOp::Inject { message, label } => {
            let now = now_ms();
            let text = match &label {
                Some(l) => format!("[{l}]\n\n{message}"),
                None => message,
            };
            let mut m = payload::message("assistant", &text, now);
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
            ctx.spawn_store(op, move |ctx, r| match r {
                OpResult::Appended(a) => {
                    let id = a.message_id.clone().unwrap_or_default();
                    caller.ok(ctx, &json!({"ok": true, "messageId": id}));
                    let row = ctx.decorate_row(a.row.clone());
                    ctx.broadcast(payload::chat_injected(&key, &agent_id, &id, &m));
                    ctx.broadcast(payload::session_message(
                        &key,
                        &agent_id,
                        &m,
                        a.seq,
                        a.message_id.as_deref(),
                        &row,
                    ));
                    ctx.broadcast(payload::sessions_changed(&key, "update", Some(&row), now));
                }
                other => caller.err(ctx, &store_error(&other)),
            });
        }
        SessionOp::Patch(patch) => {
            let op = Op::PatchSession {
                key: key.to_string(),
                agent_id,
                patch,
            };
            ctx.spawn_store(op, move |ctx, r| match r {
                OpResult::Session(row) => {
                    let row = ctx.decorate_row(row);
                    let path = ctx.config.state_dir.join("ringgate.sqlite");
                    let resolved = json!({
                        "modelProvider": row["modelProvider"],
                        "model": row["model"],
                        "agentRuntime": row["agentRuntime"],
                        "runtimeSelectionLocked": false,
                    });
                    caller.ok(
                        ctx,
                        &json!({"ok": true, "path": path.display().to_string(), "key": &*key,
                                "entry": row, "resolved": resolved}),
                    );
                    ctx.broadcast(payload::sessions_changed(
                        &key,
                        "patch",
                        Some(&row),
                        now_ms(),
                    ));
                }
                other => caller.err(ctx, &store_error(&other)),
            });
        }
        SessionOp::Reset => {
            if let Some(id) = ctx.chat.active.get(&key).cloned() {
                abort(ctx, &id);
            }
            let op = Op::ResetSession {
                key: key.to_string(),
                agent_id,
            };
            ctx.spawn_store(op, move |ctx, r| match r {
                OpResult::Session(row) => {
                    let row = ctx.decorate_row(row);
                    caller.ok(ctx, &json!({"ok": true, "key": &*key, "entry": row}));
                    ctx.broadcast(payload::sessions_changed(
                        &key,
                        "reset",
                        Some(&row),
                        now_ms(),
                    ));
                }
                other => caller.err(ctx, &store_error(&other)),
            });
        }
        SessionOp::Delete { transcript } => {
            if *key == *format!("agent:{agent_id}:main") {
                caller.err(
                    ctx,
                    &ErrorShape::invalid(format!("Cannot delete the main session ({key}).")),
                );
                return;
            }
            if let Some(id) = ctx.chat.active.get(&key).cloned() {
                abort(ctx, &id);
            }
            let op = Op::DeleteSession {
                key: key.to_string(),
                transcript,
            };
            ctx.spawn_store(op, move |ctx, r| match r {
                OpResult::Deleted(deleted) => {
                    caller.ok(
                        ctx,
                        &json!({"ok": true, "key": &*key, "deleted": deleted, "archived": []}),
                    );
                    if deleted {
                        ctx.broadcast(payload::sessions_changed(&key, "delete", None, now_ms()));
                    }
                }
                other => caller.err(ctx, &store_error(&other)),
            });
        }
    }
}

fn store_error(r: &OpResult) -> ErrorShape {
    match r {
        OpResult::Invalid(m) => ErrorShape::invalid(m.clone()),
        OpResult::Failed(m) => {
            ErrorShape::new(crate::proto::errors::code::UNAVAILABLE, m.clone()).retry_after(1000)
        }
        other => ErrorShape::new(
            crate::proto::errors::code::UNAVAILABLE,
            format!("unexpected store result: {other:?}"),
        ),
    }
}

fn send(ctx: &mut ShardCtx, caller: Caller, key: Arc<str>, agent_id: String, req: SendReq) {
    let now = now_ms();
    let dkey = dedupe_key(req.kind, &req.run_id);
    if let Some(e) = ctx.chat.dedupe.get(&dkey, now) {
        if e.fingerprint != req.fingerprint {
            let err = conflict();
            caller.err(ctx, &err);
        } else {
            let answer = e
                .done
                .clone()
                .unwrap_or_else(|| Answer::Ok(json!({"runId": req.run_id, "status": "in_flight"})));
            caller.answer(ctx, &answer);
        }
        return;
    }
    if ctx.chat.runs.contains_key(req.run_id.as_str()) {
        caller.err(
            ctx,
            &ErrorShape::invalid(format!("run {} is already active", req.run_id)),
        );
        return;
    }
    let interrupted = match ctx.chat.active.get(&key).cloned() {
        Some(id) => abort(ctx, &id),
        None => false,
    };
    ctx.chat.dedupe.start(dkey.clone(), req.fingerprint, now);
    let id: Arc<str> = Arc::from(req.run_id.as_str());
    ctx.chat.runs.insert(
        id.clone(),
        Run {
            id: id.clone(),
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
        },
    );
    ctx.chat.active.insert(key.clone(), id.clone());
    let user = payload::user_message(&req.message, now, &req.run_id);
    let op = Op::Append(Box::new(Append {
        key: key.to_string(),
        agent_id,
        message: Some(user.clone()),
        run: RunMark::Start {
            run_id: req.run_id.clone(),
            kind: req.kind.as_str(),
            fingerprint: req.fingerprint,
        },
        want_context: true,
        // `sessions.send` does not create sessions.
        must_exist: req.kind == SendKind::Sessions,
    }));
    ctx.spawn_store(op, move |ctx, r| {
        committed_user(ctx, id, user, interrupted, r)
    });
}

/// The user turn is durable (or failed to be): answer the caller and start the runtime.
fn committed_user(ctx: &mut ShardCtx, id: Arc<str>, user: Value, interrupted: bool, r: OpResult) {
    let now = now_ms();
    let appended = match r {
        OpResult::Appended(a) => a,
        OpResult::DuplicateRun(rec) => {
            if let Some(run) = ctx.chat.runs.remove(&id) {
                if ctx.chat.active.get(&run.key) == Some(&id) {
                    ctx.chat.active.remove(&run.key);
                }
                duplicate(ctx, run, &rec);
            }
            return;
        }
        other => {
            if let Some(run) = ctx.chat.runs.remove(&id) {
                if ctx.chat.active.get(&run.key) == Some(&id) {
                    ctx.chat.active.remove(&run.key);
                }
                ctx.chat.dedupe.forget(&run.dedupe_key);
                let mut e = store_error(&other);
                if matches!(other, OpResult::Failed(_)) {
                    e.message = format!("message not saved: {}", e.message);
                }
                run.caller.err(ctx, &e);
            }
            return;
        }
    };
    let Some(run) = ctx.chat.runs.get_mut(&id) else {
        return;
    };
    run.running = true;
    run.seq += 1;
    let seq = run.seq;
    let (kind, caller, key, agent_id, key_given) = (
        run.kind,
        run.caller.clone(),
        run.key.clone(),
        run.agent_id.clone(),
        run.key_given,
    );
    let ack = match kind {
        SendKind::Agent => {
            let mut a = json!({"runId": &*id, "agentId": agent_id, "status": "accepted", "acceptedAt": now});
            if key_given {
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
    caller.ok(ctx, &ack);
    let row = ctx.decorate_row(appended.row.clone());
    ctx.broadcast(payload::session_message(
        &key,
        &agent_id,
        &user,
        appended.seq,
        appended.message_id.as_deref(),
        &row,
    ));
    ctx.broadcast(payload::sessions_changed(&key, "send", Some(&row), now));
    note_all(
        ctx,
        RunNote::Started {
            run_id: id.clone(),
            key: key.clone(),
            started_at: now,
        },
    );
    let r = RunRef {
        run_id: &id,
        key: &key,
        agent_id: &agent_id,
    };
    let start = payload::agent_lifecycle(&r, seq, now, json!({"phase": "start", "startedAt": now}));
    ctx.broadcast(start);
    if kind != SendKind::Agent {
        // Chat runs announce the model starting (the original's last preparation phase).
        let run = ctx.chat.runs.get_mut(&id).expect("run present");
        run.seq += 1;
        let r = run.r();
        let status = payload::chat_status(&r, run.seq, "starting_model");
        ctx.broadcast(status);
    }
    let run = ctx.chat.runs.get(&id).expect("run present");
    if run.cancel.load(Ordering::Acquire) {
        finish(ctx, &id, End::Aborted);
        return;
    }
    let turn = Turn {
        run_id: id.clone(),
        agent_id: agent_id.clone(),
        context: if appended.context.is_empty() {
            vec![ContextMessage {
                role: "user",
                text: crate::store::sessions::message_text(&user),
            }]
        } else {
            appended.context.clone()
        },
        cancel: run.cancel.clone(),
    };
    match ctx.config.agent(&agent_id).map(|a| a.runtime.clone()) {
        Some(rt) => {
            let bus = ctx.sender.bus().clone();
            agent::start(&rt, &ctx.workers, turn, ctx.me.clone(), &bus, ctx.id);
        }
        None => {
            let f = Failure {
                kind: None,
                message: format!("agent \"{agent_id}\" is not configured"),
                detail: None,
            };
            finish(ctx, &id, End::Failed(f));
        }
    }
}

/// Marks a run aborted; true when it was running (or about to).
pub fn abort(ctx: &mut ShardCtx, id: &Arc<str>) -> bool {
    let Some(run) = ctx.chat.runs.get_mut(id) else {
        return false;
    };
    if run.ending {
        return false;
    }
    run.cancel.store(true, Ordering::Release);
    if run.running {
        finish(ctx, id, End::Aborted);
    }
    true
}

/// Runtime output for a run owned here.
pub fn on_output(ctx: &mut ShardCtx, id: &Arc<str>, out: Output) -> Vec<Effect> {
    let Some(run) = ctx.chat.runs.get_mut(id) else {
        return Vec::new();
    };
    if run.ending || !run.running || run.cancel.load(Ordering::Acquire) {
        return Vec::new();
    }
    match out {
        Output::Delta(t) => {
            run.text.push_str(&t);
            pace(ctx, id);
        }
        Output::Done { usage, stop_reason } => finish(ctx, id, End::Ok { usage, stop_reason }),
        Output::Failed(f) => finish(ctx, id, End::Failed(f)),
    }
    Vec::new()
}

/// Emits pending text now if the pacing interval has passed, else arms a flush timer.
fn pace(ctx: &mut ShardCtx, id: &Arc<str>) {
    let now = now_ms();
    let Some(run) = ctx.chat.runs.get_mut(id) else {
        return;
    };
    if run.text.len() == run.emitted {
        return;
    }
    let due = run.last_emit + PACE_MS;
    if now >= due {
        emit_delta(ctx, id, now);
    } else if !run.flush_armed {
        run.flush_armed = true;
        let me = ctx.me.clone();
        let id = id.clone();
        monoio::spawn(async move {
            crate::shard::timer::sleep_ms(due - now).await;
            if let Some(ctx) = me.upgrade() {
                let mut ctx = ctx.borrow_mut();
                if let Some(run) = ctx.chat.runs.get_mut(&id) {
                    run.flush_armed = false;
                    if !run.ending {
                        emit_delta(&mut ctx, &id, now_ms());
                    }
                }
            }
        });
    }
}

fn emit_delta(ctx: &mut ShardCtx, id: &Arc<str>, now: u64) {
    let Some(run) = ctx.chat.runs.get_mut(id) else {
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
    ctx.broadcast(a);
    ctx.broadcast(c);
}

enum End {
    Ok { usage: Usage, stop_reason: String },
    Failed(Failure),
    Aborted,
}

/// Ends a run: writes its reply (durable), then emits the terminal events and answers.
fn finish(ctx: &mut ShardCtx, id: &Arc<str>, end: End) {
    let now = now_ms();
    if matches!(end, End::Ok { .. }) {
        emit_delta(ctx, id, now);
    }
    let agent_of_run = ctx
        .chat
        .runs
        .get(id)
        .map(|r| r.agent_id.clone())
        .unwrap_or_default();
    let model = ctx.model_of_agent(&agent_of_run);
    let (provider, model_id) = ctx
        .config
        .agent(&agent_of_run)
        .map(|a| a.runtime.model())
        .map(|(p, m)| (p.to_owned(), m.to_owned()))
        .unwrap_or_default();
    let Some(run) = ctx.chat.runs.get_mut(id) else {
        return;
    };
    run.ending = true;
    run.cancel.store(true, Ordering::Release);
    if ctx.chat.active.get(&run.key) == Some(id) {
        let key = run.key.clone();
        ctx.chat.active.remove(&key);
    }
    let run = ctx.chat.runs.get(id).expect("run present");
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
    let reply = (!run.text.is_empty() && !matches!(end, End::Failed(_)))
        .then(|| payload::assistant_record(&run.text, now, &provider, &model_id, &usage, stop));
    let op = Op::Append(Box::new(Append {
        key: run.key.to_string(),
        agent_id: run.agent_id.clone(),
        message: reply.clone(),
        run: RunMark::End {
            run_id: run.id.to_string(),
            status,
            usage,
            model,
            error,
            started_at_ms: run.started_at,
        },
        want_context: false,
        must_exist: false,
    }));
    let id = id.clone();
    ctx.spawn_store(op, move |ctx, r| ended(ctx, id, end, reply, r));
}

fn ended(ctx: &mut ShardCtx, id: Arc<str>, end: End, reply: Option<Value>, r: OpResult) {
    let now = now_ms();
    let Some(mut run) = ctx.chat.runs.remove(&id) else {
        return;
    };
    let (end, appended) = match r {
        OpResult::Appended(a) => (end, Some(a)),
        other => {
            // The reply could not be made durable: report it as the run's error.
            let e = store_error(&other);
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
    let mut events: Vec<EventTemplate> = Vec::new();
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
    events.push(payload::agent_lifecycle(&r, seq, now, lifecycle));
    events.push(match &end {
        End::Ok { stop_reason, .. } => {
            let stored = appended.as_ref().and_then(|a| {
                let (seq, id) = a.seq.zip(a.message_id.as_deref())?;
                Some((seq, id, a.session_id.as_str()))
            });
            payload::chat_final(&r, seq, &run.text, now, stop_reason, stored)
        }
        End::Aborted => payload::chat_aborted(&r, seq, &run.text, now),
        End::Failed(f) => payload::chat_error(&r, seq, f),
    });
    let row = appended.as_ref().map(|a| ctx.decorate_row(a.row.clone()));
    if let (Some(m), Some(a), Some(row)) = (&reply, &appended, &row) {
        if a.seq.is_some() {
            events.push(payload::session_message(
                &run.key,
                &run.agent_id,
                m,
                a.seq,
                a.message_id.as_deref(),
                row,
            ));
        }
    }
    events.push(payload::sessions_changed(
        &run.key,
        "update",
        row.as_ref(),
        now,
    ));
    for e in events {
        ctx.broadcast(e);
    }
    if let (End::Ok { .. }, Some(route)) = (&end, &run.reply_to) {
        if !run.text.is_empty() {
            crate::channels::hub::forward_reply(&ctx.channels, route, &run.key, &run.id, &run.text);
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
    note_all(ctx, RunNote::Ended(summary));
    // The cached answer for retries, and the agent's final response.
    let usage = match &end {
        End::Ok { usage, .. } => *usage,
        _ => Usage::default(),
    };
    let (provider, model) = ctx
        .config
        .agent(&run.agent_id)
        .map(|a| a.runtime.model())
        .map(|(p, m)| (p.to_owned(), m.to_owned()))
        .unwrap_or_default();
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
    ctx.chat.dedupe.finish(&run.dedupe_key, answer.clone(), now);
    if run.kind == SendKind::Agent {
        run.caller.answer(ctx, &answer);
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

/// The store found the run already recorded (its cache entry was evicted): nothing was
/// written, and the caller gets what a retry gets.
fn duplicate(ctx: &mut ShardCtx, run: Run, rec: &crate::store::sessions::RecentRun) {
    let asked = ctx
        .chat
        .dedupe
        .map
        .get(&run.dedupe_key)
        .map(|e| e.fingerprint);
    ctx.chat.dedupe.forget(&run.dedupe_key);
    if asked != Some(rec.fingerprint) {
        let err = conflict();
        run.caller.err(ctx, &err);
        return;
    }
    if rec.status == "running" {
        let answer = Answer::Ok(json!({"runId": &*run.id, "status": "in_flight"}));
        run.caller.answer(ctx, &answer);
        return;
    }
    let (key, answer) = recorded_answer(rec);
    ctx.chat
        .dedupe
        .restore(key, rec.fingerprint, answer.clone(), rec.ended_at_ms);
    run.caller.answer(ctx, &answer);
}

/// Sends a run-index note to every shard, this one included.
fn note_all(ctx: &mut ShardCtx, note: RunNote) {
    ctx.sender.to_others(BusMsg::RunNote(note.clone()));
    crate::shard::drive::run_note(ctx, note);
}

#[cfg(test)]
mod tests {
    use super::*;

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
