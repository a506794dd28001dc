//! The owner's side of a worker run (`runtime: "openclaw-worker"`): the calls the run's worker
//! makes on the worker channel, each routed here because the session's owner alone orders
//! its transcript. A commit is a compare-and-swap on the session's last entry, durable before
//! its answer and answered again unchanged when the worker replays its sequence number after
//! a reconnect; live events become the run's `chat` / `agent` events; inference requests go to
//! the agent's provider and stream back to the worker's connection.
//!
//! A call for a run that is not this session's active worker run under the same owner epoch
//! (it ended, was aborted, or the credential names another launch) is refused with the
//! worker's fencing reason, so a stale worker stops cleanly.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde_json::{json, Value};

use super::{Action, ChatOwner, End, Env, Fx, Resume};
use crate::{
    agent::{config::RuntimeConfig, Failure, Usage},
    chat::{payload, WorkerCall},
    effects::{Caller, Effect},
    proto::frame::EventTemplate,
    store::{
        sessions::{Commit, Committed},
        Op, OpResult,
    },
    worker::{
        channel::WorkerError,
        inference::{InferenceOut, API},
    },
};

/// How long a worker credential is valid (the owner also refuses it once the run ends).
pub const CREDENTIAL_TTL_MS: u64 = 6 * 3600 * 1000;

/// Model calls one worker run may make (the agent loop's own cap is lower).
pub const MAX_MODEL_CALLS: usize = 256;
/// Messages in one commit (the worker's own bound).
pub const MAX_COMMIT_MESSAGES: usize = 64;
/// Commits one run may make (each keeps its answer for replay).
pub const MAX_COMMITS: usize = 4096;

/// A model call made for the worker.
struct ModelCall {
    turn_id: String,
    /// Last `seq` sent on this call.
    seq: u64,
    cancel: Arc<AtomicBool>,
    /// The terminal's payload once sent (re-sent when the worker replays the call).
    terminal: Option<Value>,
}

/// A worker run's channel state, kept in the run.
pub(super) struct WorkerRun {
    pub epoch: u64,
    pub session_id: String,
    /// The worker called at least once (it was admitted and is running).
    pub attached: bool,
    /// The worker's connection (the latest one after a reconnect): where inference events go.
    conn: Option<(usize, u64)>,
    /// Answers of applied commits, by sequence number (replayed unchanged).
    ledger: BTreeMap<u64, Value>,
    /// The commit being written (the worker sends one at a time).
    committing: Option<u64>,
    live_acked: u64,
    calls: Vec<ModelCall>,
    /// Raised when the run is aborted or fails (the worker process is stopped at once).
    pub stop: Arc<AtomicBool>,
    pub usage: Usage,
    /// The last committed assistant entry: `(seq, id)` for the `chat` final.
    pub final_entry: Option<(u64, String)>,
    /// Its stop reason (`stop`, `length`, `toolUse`, …).
    pub stop_reason: Option<String>,
    /// The assistant item the live text belongs to.
    item: Option<String>,
}

impl WorkerRun {
    pub fn new(epoch: u64, session_id: String) -> WorkerRun {
        WorkerRun {
            epoch,
            session_id,
            attached: false,
            conn: None,
            ledger: BTreeMap::new(),
            committing: None,
            live_acked: 0,
            calls: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            usage: Usage::default(),
            final_entry: None,
            stop_reason: None,
            item: None,
        }
    }

    /// Stops every model call of the run (the run ended).
    pub fn cancel_calls(&self) {
        for c in &self.calls {
            c.cancel.store(true, Ordering::Release);
        }
    }
}

fn fenced(method: &str) -> WorkerError {
    let reason = if method == "worker.heartbeat" {
        "owner-epoch-mismatch"
    } else {
        "epoch-mismatch"
    };
    WorkerError::invalid(reason, "this worker's run is no longer active")
}

fn worker_err(fx: &mut Fx, caller: &Caller, e: WorkerError) {
    fx.push(Effect::Reply(caller.clone(), Err(e.into())));
}

/// An unsequenced event frame for the worker's connection.
fn frame(name: &str, payload: &Value) -> Vec<u8> {
    EventTemplate::new(name, payload, None).to_vec(None)
}

impl ChatOwner {
    /// A call from a worker on the worker channel.
    pub(super) fn worker_call(&mut self, env: &Env, caller: Caller, call: WorkerCall, fx: &mut Fx) {
        let id: Arc<str> = Arc::from(call.run_id.as_str());
        let live = self.runs.get(&id).is_some_and(|r| {
            !r.ending && r.running && r.worker.as_ref().is_some_and(|w| w.epoch == call.epoch)
        });
        if !live {
            return worker_err(fx, &caller, fenced(&call.method));
        }
        if call.params["runEpoch"]
            .as_u64()
            .is_some_and(|e| e != call.epoch)
        {
            return worker_err(fx, &caller, fenced(&call.method));
        }
        if let Some(w) = self.runs.get_mut(&id).and_then(|r| r.worker.as_mut()) {
            w.attached = true;
            if let Caller::Conn { shard, conn, .. } = &caller {
                w.conn = Some((*shard, *conn));
            }
        }
        match call.method.as_str() {
            "worker.heartbeat" => fx.ok(
                &caller,
                json!({"receivedAtMs": env.now_ms, "status": "ok", "ownerEpoch": call.epoch}),
            ),
            "worker.transcript.commit" => self.worker_commit(&id, caller, &call.params, fx),
            "worker.live-event" => self.worker_live(env, &id, caller, &call.params, fx),
            "worker.inference.start" => self.worker_infer(env, &id, caller, call.params, fx),
            "worker.inference.cancel" => {
                let turn = call.params["turnId"].as_str().unwrap_or_default();
                if let Some(w) = self.runs.get(&id).and_then(|r| r.worker.as_ref()) {
                    for c in w.calls.iter().filter(|c| c.turn_id == turn) {
                        c.cancel.store(true, Ordering::Release);
                    }
                }
                fx.ok(&caller, json!({"status": "cancelled"}));
            }
            other => worker_err(
                fx,
                &caller,
                WorkerError::invalid("method-not-allowed", format!("{other} is not offered")),
            ),
        }
    }

    fn worker_commit(&mut self, id: &Arc<str>, caller: Caller, p: &Value, fx: &mut Fx) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        let key = run.key.to_string();
        let Some(w) = run.worker.as_mut() else {
            return;
        };
        let invalid = |m: &str| WorkerError::invalid("invalid-batch", m);
        let Some(seq) = p["seq"].as_u64().filter(|s| *s >= 1) else {
            return worker_err(fx, &caller, invalid("seq must be a positive integer"));
        };
        if let Some(answer) = w.ledger.get(&seq) {
            // A replay after a reconnect: the commit is already durable.
            return fx.ok(&caller, answer.clone());
        }
        let expected = w.ledger.keys().next_back().map_or(1, |s| s + 1);
        if w.ledger.len() >= MAX_COMMITS {
            return worker_err(
                fx,
                &caller,
                invalid(&format!("more than {MAX_COMMITS} commits in one turn")),
            );
        }
        if seq != expected || w.committing.is_some() {
            return worker_err(
                fx,
                &caller,
                invalid(&format!("expected commit seq {expected}, one at a time")),
            );
        }
        let base_leaf = match &p["baseLeafId"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return worker_err(fx, &caller, invalid("baseLeafId must be a string or null")),
        };
        let messages: Vec<Value> = match p["messages"].as_array() {
            Some(m) if !m.is_empty() && m.len() <= MAX_COMMIT_MESSAGES => m.clone(),
            _ => {
                return worker_err(
                    fx,
                    &caller,
                    invalid("messages must hold 1 to 64 transcript messages"),
                )
            }
        };
        let roles_ok = messages.iter().all(|m| {
            m.is_object()
                && matches!(
                    m["role"].as_str(),
                    Some("user" | "assistant" | "toolResult")
                )
        });
        if !roles_ok {
            return worker_err(
                fx,
                &caller,
                invalid("messages are user, assistant or toolResult objects"),
            );
        }
        w.committing = Some(seq);
        let op = Op::Commit(Box::new(Commit {
            key,
            run_id: id.to_string(),
            base_leaf,
            messages: messages.clone(),
        }));
        let r = Resume::WorkerCommitted(Box::new(WorkerCommitted {
            id: id.clone(),
            serial: run.serial,
            seq,
            caller,
            messages,
        }));
        fx.push(Effect::Store(op, r));
    }

    /// A commit is durable (or was refused): answer the worker, announce the new entries.
    pub(super) fn worker_committed(
        &mut self,
        env: &Env,
        c: WorkerCommitted,
        res: Option<OpResult>,
        fx: &mut Fx,
    ) {
        let Some(run) = self.runs.get_mut(&c.id).filter(|r| r.serial == c.serial) else {
            return worker_err(fx, &c.caller, fenced("worker.transcript.commit"));
        };
        let Some(w) = run.worker.as_mut() else {
            return;
        };
        w.committing = None;
        let done = match res {
            Some(OpResult::Committed(x)) => *x,
            Some(OpResult::Failed(m)) => {
                let mut e = WorkerError::invalid("session-not-attached", format!("not saved: {m}"));
                e.code = "UNAVAILABLE";
                return worker_err(fx, &c.caller, e);
            }
            other => {
                let e = WorkerError::invalid("session-not-attached", format!("{other:?}"));
                return worker_err(fx, &c.caller, e);
            }
        };
        let (entries, row) = match done {
            Committed::Done { entries, row, .. } => (entries, row),
            Committed::StaleBase { .. } => {
                let e = WorkerError::invalid(
                    "stale-base-leaf",
                    "the session's transcript changed under the worker",
                );
                return worker_err(fx, &c.caller, e);
            }
        };
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        let answer = json!({"entryIds": ids, "newLeafId": ids.last()});
        w.ledger.insert(c.seq, answer.clone());
        fx.ok(&c.caller, answer);
        let row = env.row(row);
        for (m, (mid, seq)) in c.messages.iter().zip(&entries) {
            if m["role"] == "assistant" {
                let u = &m["usage"];
                w.usage.input += u["input"].as_u64().unwrap_or(0);
                w.usage.output += u["output"].as_u64().unwrap_or(0);
                w.final_entry = Some((*seq, mid.clone()));
                w.stop_reason = m["stopReason"].as_str().map(str::to_owned);
            }
            fx.push(Effect::Broadcast(payload::session_message(
                &run.key,
                &run.agent_id,
                m,
                Some(*seq),
                Some(mid),
                &row,
            )));
        }
        fx.push(Effect::Broadcast(payload::sessions_changed(
            &run.key,
            "update",
            Some(&row),
            env.now_ms,
        )));
        // The final answer's text is what the `chat` final carries.
        if let Some(m) = c.messages.iter().rev().find(|m| m["role"] == "assistant") {
            let text = crate::worker::inference::text_of(&m["content"]);
            if !text.is_empty() {
                self.set_text(env, &c.id, &text, fx);
            }
        }
    }

    fn worker_live(&mut self, env: &Env, id: &Arc<str>, caller: Caller, p: &Value, fx: &mut Fx) {
        let Some(w) = self.runs.get_mut(id).and_then(|r| r.worker.as_mut()) else {
            return;
        };
        let Some(seq) = p["seq"].as_u64() else {
            return worker_err(
                fx,
                &caller,
                WorkerError::invalid("invalid-event", "seq must be an integer"),
            );
        };
        if p["runId"].as_str() != Some(&**id) {
            return worker_err(fx, &caller, fenced("worker.live-event"));
        }
        if seq <= w.live_acked {
            // Already applied (a replayed tail).
            return fx.ok(&caller, json!({"ackedSeq": w.live_acked}));
        }
        if seq != w.live_acked + 1 {
            let mut e = WorkerError::invalid(
                "resync-required",
                format!("expected live event {}", w.live_acked + 1),
            );
            e.extra = Some(Box::new(
                json!({"ackedSeq": w.live_acked, "expectedSeq": w.live_acked + 1}),
            ));
            return worker_err(fx, &caller, e);
        }
        w.live_acked = seq;
        fx.ok(&caller, json!({"ackedSeq": seq}));
        let ev = &p["event"];
        let data = &ev["payload"];
        match ev["kind"].as_str() {
            Some("assistant") => {
                let item = data["itemId"].as_str().map(str::to_owned);
                let text = data["text"].as_str().unwrap_or_default().to_owned();
                if item != w.item {
                    w.item = item;
                }
                self.set_text(env, id, &text, fx);
            }
            Some("tool") => {
                if let Some(run) = self.runs.get_mut(id) {
                    run.seq += 1;
                    let t = payload::agent_tool(&run.r(), run.seq, env.now_ms, data.clone());
                    fx.push(Effect::Broadcast(t));
                }
            }
            Some("lifecycle") => match data["phase"].as_str() {
                Some("finishing" | "end") => {
                    let end = if data["aborted"] == true {
                        End::Aborted
                    } else if let Some(e) = data["error"].as_str() {
                        End::Failed(Failure {
                            kind: None,
                            message: e.to_owned(),
                            detail: None,
                        })
                    } else {
                        let usage = w.usage;
                        let stop = data["stopReason"]
                            .as_str()
                            .or(w.stop_reason.as_deref())
                            .unwrap_or("stop")
                            .to_owned();
                        End::Ok {
                            usage,
                            stop_reason: stop,
                        }
                    };
                    self.finish(env, id, end, fx);
                }
                Some("error") => {
                    let message = data["error"]
                        .as_str()
                        .unwrap_or("the worker's turn failed")
                        .to_owned();
                    let f = Failure {
                        kind: None,
                        message,
                        detail: None,
                    };
                    self.finish(env, id, End::Failed(f), fx);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn worker_infer(&mut self, env: &Env, id: &Arc<str>, caller: Caller, p: Value, fx: &mut Fx) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        let provider = match env.config.agent(&run.agent_id).map(|a| &a.runtime) {
            Some(RuntimeConfig::Worker(w)) => w.provider.clone(),
            _ => {
                let e = WorkerError::invalid("model-not-approved", "the agent has no worker model");
                return worker_err(fx, &caller, e);
            }
        };
        let Some(w) = run.worker.as_mut() else {
            return;
        };
        let Some(turn_id) = p["turnId"]
            .as_str()
            .filter(|t| !t.is_empty() && t.len() <= 256)
        else {
            let e = WorkerError::invalid("invalid-context", "turnId must be 1-256 characters");
            return worker_err(fx, &caller, e);
        };
        if p["modelRef"]["model"].as_str() != Some(provider.model.as_str()) {
            let e = WorkerError::invalid(
                "model-not-approved",
                format!("this agent's model is {}", provider.model),
            );
            return worker_err(fx, &caller, e);
        }
        if !p["context"]["messages"].is_array() {
            let e = WorkerError::invalid("invalid-context", "context.messages must be an array");
            return worker_err(fx, &caller, e);
        }
        if let Some(c) = w.calls.iter().find(|c| c.turn_id == turn_id) {
            // The worker reconnected and asks again: it re-reads from seq 0; the terminal is
            // authoritative, so a finished call sends it again.
            fx.ok(&caller, json!({"status": "replayed"}));
            if let (Some(t), Some((shard, conn))) = (&c.terminal, w.conn) {
                fx.push(Effect::Frame(
                    shard,
                    conn,
                    frame("worker.inference.terminal", t),
                ));
            }
            return;
        }
        if w.calls.len() >= MAX_MODEL_CALLS {
            let e = WorkerError::invalid(
                "provider-error",
                format!("more than {MAX_MODEL_CALLS} model calls in one turn"),
            );
            return worker_err(fx, &caller, e);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        w.calls.push(ModelCall {
            turn_id: turn_id.to_owned(),
            seq: 0,
            cancel: cancel.clone(),
            terminal: None,
        });
        fx.ok(&caller, json!({"status": "accepted"}));
        let start = json!({"type": "start", "timestamp": env.now_ms,
            "resolvedModel": {"api": API, "provider": "openai", "model": provider.model}});
        let turn_id = turn_id.to_owned();
        let run_cancel = run.cancel.clone();
        self.worker_inference(env, id, &turn_id, InferenceOut::Events(vec![start]), fx);
        let mut p = p;
        fx.push(Effect::Do(Action::Infer(Box::new(InferRequest {
            run_id: id.clone(),
            turn_id,
            provider,
            context: p["context"].take(),
            options: p["options"].take(),
            cancel,
            run_cancel,
        }))));
    }

    /// Output of a model call made for a worker: forwarded to the worker's connection (the
    /// step needs no clock or config; it takes the environment as every owner step does).
    pub fn worker_inference(
        &mut self,
        _env: &Env,
        id: &Arc<str>,
        turn_id: &str,
        out: InferenceOut,
        fx: &mut Fx,
    ) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.ending {
            return;
        }
        let Some(w) = run.worker.as_mut() else {
            return;
        };
        let (epoch, session_id, conn) = (w.epoch, w.session_id.clone(), w.conn);
        let Some(call) = w.calls.iter_mut().find(|c| c.turn_id == turn_id) else {
            return;
        };
        if call.terminal.is_some() {
            return;
        }
        let head = |seq: u64| {
            json!({"runEpoch": epoch, "sessionId": session_id, "runId": &**id,
                   "turnId": turn_id, "seq": seq})
        };
        let mut frames = Vec::new();
        match out {
            InferenceOut::Events(events) => {
                for e in events {
                    call.seq += 1;
                    let mut p = head(call.seq);
                    p["event"] = e;
                    frames.push(frame("worker.inference.event", &p));
                }
            }
            InferenceOut::Done(message) => {
                call.seq += 1;
                let mut p = head(call.seq);
                p["outcome"] = json!({"type": "done", "message": message});
                frames.push(frame("worker.inference.terminal", &p));
                call.terminal = Some(p);
            }
            InferenceOut::Failed { reason, message } => {
                call.seq += 1;
                let message: String = message.chars().take(256).collect();
                let mut p = head(call.seq);
                p["outcome"] = json!({"type": "error", "reason": reason, "message": message});
                frames.push(frame("worker.inference.terminal", &p));
                call.terminal = Some(p);
            }
        }
        if let Some((shard, conn)) = conn {
            for f in frames {
                fx.push(Effect::Frame(shard, conn, f));
            }
        }
    }

    /// The start deadline passed: a worker that never called has failed to start.
    pub(super) fn worker_start_deadline(
        &mut self,
        env: &Env,
        id: Arc<str>,
        serial: u64,
        fx: &mut Fx,
    ) {
        let Some(run) = self
            .runs
            .get(&id)
            .filter(|r| r.serial == serial && !r.ending)
        else {
            return;
        };
        if run.worker.as_ref().is_some_and(|w| !w.attached) {
            let agent = run.agent_id.clone();
            let ms = match env.config.agent(&agent).map(|a| &a.runtime) {
                Some(RuntimeConfig::Worker(w)) => w.start_timeout_ms,
                _ => 0,
            };
            let f = Failure {
                kind: Some("timeout"),
                message: format!(
                    "the agent worker did not connect within {ms} ms of the turn's start \
                     (all of the agent's maxConcurrent workers busy, or a slow start)"
                ),
                detail: None,
            };
            self.finish(env, &id, End::Failed(f), fx);
        }
    }

    /// Replaces the run's live text (a worker's assistant item), emitting it paced.
    fn set_text(&mut self, env: &Env, id: &Arc<str>, text: &str, fx: &mut Fx) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.text == text {
            return;
        }
        if !text.starts_with(&run.text[..run.emitted]) {
            // Another item: clients get its whole text as the next delta.
            run.emitted = 0;
        }
        run.text = text.to_owned();
        self.pace(env, id, fx);
    }
}

/// A commit on its way to the store.
#[derive(Debug)]
pub struct WorkerCommitted {
    pub id: Arc<str>,
    pub serial: u64,
    pub seq: u64,
    pub caller: Caller,
    pub messages: Vec<Value>,
}

/// A worker to launch for a turn.
#[derive(Debug)]
pub struct WorkerLaunch {
    pub config: crate::agent::config::WorkerConfig,
    pub agent_id: String,
    pub grant: crate::worker::credential::Grant,
    /// The user's message (already in the transcript).
    pub prompt: String,
    /// Earlier messages of the session as stored, oldest first.
    pub history: Vec<Value>,
    /// The user's message's entry: the base of the worker's first commit.
    pub base_leaf: Option<String>,
    pub run_id: Arc<str>,
    /// Raised when the run ends: the pool stops the process.
    pub cancel: Arc<AtomicBool>,
    /// Raised when the run is aborted or fails: the pool stops the process at once.
    pub stop: Arc<AtomicBool>,
}

/// A model call to make for a worker (on the provider pool, off the shards).
#[derive(Debug)]
pub struct InferRequest {
    pub run_id: Arc<str>,
    pub turn_id: String,
    pub provider: crate::agent::config::OpenAiConfig,
    /// `{systemPrompt, messages, tools}` as the worker sent it.
    pub context: Value,
    /// Its inference options.
    pub options: Value,
    pub cancel: Arc<AtomicBool>,
    /// The run's own cancel flag (raised when the run ends).
    pub run_cancel: Arc<AtomicBool>,
}

impl InferRequest {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire) || self.run_cancel.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        agent::config::{AgentConfig, OpenAiConfig, WorkerConfig},
        chat::{key::SessionKey, SendKind, SendReq, SessionCall, SessionOp},
        config::Config,
        store::sessions::Appended,
    };

    const T0: u64 = 1_772_000_000_000;
    const KEY: &str = "agent:main:main";

    fn config() -> Config {
        let agents = vec![AgentConfig {
            id: "main".into(),
            runtime: RuntimeConfig::Worker(Box::new(WorkerConfig {
                provider: OpenAiConfig {
                    base_url: "http://127.0.0.1:9/v1".into(),
                    api_key: None,
                    model: "m".into(),
                    timeout_ms: 1000,
                    system_prompt: None,
                },
                workspace: "/tmp".into(),
                tools: vec!["read".into()],
                command: None,
                max_concurrent: 1,
                max_memory_mb: 512,
                start_timeout_ms: 5000,
                prewarm: 0,
            })),
        }];
        Config {
            agents,
            ..Config::default()
        }
    }

    fn env(c: &Config, now_ms: u64) -> Env<'_> {
        Env { now_ms, config: c }
    }

    fn worker(n: u64) -> Caller {
        Caller::conn(1, 50, format!("w{n}"))
    }

    /// A started worker run: its launch and its epoch.
    fn started(o: &mut ChatOwner, c: &Config) -> (Arc<str>, WorkerLaunch) {
        let mut fx = Fx::default();
        let call = SessionCall {
            caller: Caller::conn(0, 1, "r1"),
            key: SessionKey {
                canonical: KEY.into(),
                agent_id: "main".into(),
            },
            op: SessionOp::Send(SendReq {
                queue: false,
                kind: SendKind::Chat,
                message: "hi".into(),
                run_id: "run-1".into(),
                fingerprint: 1,
                key_given: true,
                reply_to: None,
            }),
        };
        o.handle(&env(c, T0), call, &mut fx);
        let r =
            fx.0.into_iter()
                .find_map(|e| match e {
                    Effect::Store(_, r) => Some(r),
                    _ => None,
                })
                .unwrap();
        let mut fx = Fx::default();
        let res = OpResult::Appended(Box::new(Appended {
            session_id: "s1".into(),
            created: true,
            seq: Some(1),
            message_id: Some("m1".into()),
            context: Vec::new(),
            row: json!({"key": KEY}),
        }));
        o.resume(&env(c, T0 + 1), r, Some(res), &mut fx);
        let mut launch = None;
        let mut timer = false;
        for e in fx.0 {
            match e {
                Effect::Do(Action::LaunchWorker(l)) => launch = Some(*l),
                Effect::Timer(5000, Resume::WorkerStartDeadline { .. }) => timer = true,
                _ => {}
            }
        }
        assert!(timer, "a start deadline is armed");
        let l = launch.expect("a worker launch");
        assert_eq!(l.base_leaf.as_deref(), Some("m1"));
        assert_eq!(l.grant.session_id, "s1");
        (Arc::from("run-1"), l)
    }

    fn call(l: &WorkerLaunch, method: &str, params: Value) -> SessionCall {
        SessionCall {
            caller: worker(0),
            key: SessionKey {
                canonical: KEY.into(),
                agent_id: "main".into(),
            },
            op: SessionOp::Worker(Box::new(WorkerCall {
                run_id: l.grant.run_id.clone(),
                epoch: l.grant.owner_epoch,
                method: method.into(),
                params,
            })),
        }
    }

    fn reply(fx: &Fx) -> Result<Value, crate::proto::errors::ErrorShape> {
        fx.0.iter()
            .find_map(|e| match e {
                Effect::Reply(_, r) => Some(r.clone()),
                _ => None,
            })
            .expect("a reply")
    }

    fn reason(fx: &Fx) -> String {
        let e = reply(fx).unwrap_err();
        e.details.unwrap()["reason"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_commit_is_written_once_and_replayed_unchanged() {
        let c = config();
        let mut o = ChatOwner::default();
        let (_, l) = started(&mut o, &c);
        let msg = json!({"role": "assistant", "content": [{"type": "text", "text": "ok"}],
                         "usage": {"input": 2, "output": 3}, "stopReason": "stop"});
        let p = json!({"seq": 1, "baseLeafId": "m1", "messages": [msg]});
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 2),
            call(&l, "worker.transcript.commit", p.clone()),
            &mut fx,
        );
        let Some(Effect::Store(Op::Commit(k), r)) = fx.0.pop() else {
            panic!("a commit op: {fx:?}")
        };
        assert_eq!(k.base_leaf.as_deref(), Some("m1"));
        // A second commit while the first is in flight is refused (one at a time).
        let mut fx2 = Fx::default();
        o.handle(
            &env(&c, T0 + 2),
            call(&l, "worker.transcript.commit", p.clone()),
            &mut fx2,
        );
        assert_eq!(reason(&fx2), "invalid-batch");
        let done = Committed::Done {
            session_id: "s1".into(),
            entries: vec![("e2".into(), 2)],
            row: json!({"key": KEY}),
        };
        let mut fx = Fx::default();
        o.resume(
            &env(&c, T0 + 3),
            r,
            Some(OpResult::Committed(Box::new(done))),
            &mut fx,
        );
        assert_eq!(
            reply(&fx).unwrap(),
            json!({"entryIds": ["e2"], "newLeafId": "e2"})
        );
        // The replay (after a reconnect) is answered from the ledger, with no write.
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 4),
            call(&l, "worker.transcript.commit", p),
            &mut fx,
        );
        assert_eq!(fx.0.len(), 1);
        assert_eq!(reply(&fx).unwrap()["newLeafId"], "e2");
        let run = o.runs.get("run-1").unwrap();
        let w = run.worker.as_ref().unwrap();
        assert_eq!(
            w.usage,
            Usage {
                input: 2,
                output: 3
            }
        );
        assert_eq!(w.final_entry, Some((2, "e2".to_owned())));
    }

    #[test]
    fn live_events_resync_on_a_gap_and_the_finishing_event_ends_the_run() {
        let c = config();
        let mut o = ChatOwner::default();
        let (id, l) = started(&mut o, &c);
        let live = |seq: u64, event: Value| {
            json!({"runEpoch": l.grant.owner_epoch, "seq": seq, "lastAckedSeq": seq - 1,
                   "runId": &*id, "event": event})
        };
        let mut fx = Fx::default();
        let ev = json!({"kind": "lifecycle", "payload": {"phase": "start"}});
        o.handle(
            &env(&c, T0 + 2),
            call(&l, "worker.live-event", live(3, ev.clone())),
            &mut fx,
        );
        let e = reply(&fx).unwrap_err();
        assert_eq!(
            *e.details.unwrap(),
            json!({"reason": "resync-required", "ackedSeq": 0, "expectedSeq": 1})
        );
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 2),
            call(&l, "worker.live-event", live(1, ev.clone())),
            &mut fx,
        );
        assert_eq!(reply(&fx).unwrap(), json!({"ackedSeq": 1}));
        let tool = json!({"kind": "tool", "payload": {"phase": "start", "name": "read", "toolCallId": "c1"}});
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 3),
            call(&l, "worker.live-event", live(2, tool)),
            &mut fx,
        );
        let Some(Effect::Broadcast(t)) = fx.0.last() else {
            panic!("{fx:?}")
        };
        assert!(
            t.meta.tool_events,
            "tool events go to tool-events clients only"
        );
        // A duplicate of an acked event is acked again, with no effect.
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 3),
            call(&l, "worker.live-event", live(1, ev)),
            &mut fx,
        );
        assert_eq!(fx.0.len(), 1);
        let fin =
            json!({"kind": "lifecycle", "payload": {"phase": "finishing", "stopReason": "stop"}});
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 4),
            call(&l, "worker.live-event", live(3, fin)),
            &mut fx,
        );
        assert!(
            fx.0.iter()
                .any(|e| matches!(e, Effect::Store(Op::Append(a), _)
                if a.message.is_none())),
            "the end is recorded without writing a reply (the worker committed it): {fx:?}"
        );
        // The ended run's worker is fenced.
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 5),
            call(&l, "worker.heartbeat", json!({})),
            &mut fx,
        );
        assert_eq!(reason(&fx), "owner-epoch-mismatch");
        // A worker that never connected fails its run at the deadline — not this one.
        let mut fx = Fx::default();
        o.resume(
            &env(&c, T0 + 6000),
            Resume::WorkerStartDeadline { id, serial: 1 },
            None,
            &mut fx,
        );
        assert!(fx.is_empty());
    }

    #[test]
    fn a_worker_that_never_connects_fails_its_turn_and_is_stopped() {
        let c = config();
        let mut o = ChatOwner::default();
        let (id, l) = started(&mut o, &c);
        let mut fx = Fx::default();
        o.resume(
            &env(&c, T0 + 5001),
            Resume::WorkerStartDeadline { id, serial: 1 },
            None,
            &mut fx,
        );
        assert!(
            fx.0.iter().any(|e| matches!(e, Effect::Store(..))),
            "{fx:?}"
        );
        assert!(l.cancel.load(Ordering::Acquire));
        assert!(
            l.stop.load(Ordering::Acquire),
            "the process is stopped at once"
        );
    }

    #[test]
    fn inference_needs_the_agents_model_and_streams_to_the_workers_connection() {
        let c = config();
        let mut o = ChatOwner::default();
        let (id, l) = started(&mut o, &c);
        let start = |model: &str| {
            json!({"runEpoch": l.grant.owner_epoch, "turnId": "t:1",
                   "modelRef": {"provider": "openai", "model": model},
                   "context": {"messages": []}, "options": {}})
        };
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 2),
            call(&l, "worker.inference.start", start("x")),
            &mut fx,
        );
        assert_eq!(reason(&fx), "model-not-approved");
        let mut fx = Fx::default();
        o.handle(
            &env(&c, T0 + 2),
            call(&l, "worker.inference.start", start("m")),
            &mut fx,
        );
        assert_eq!(reply(&fx).unwrap(), json!({"status": "accepted"}));
        assert!(
            fx.0.iter().any(|e| matches!(e, Effect::Frame(1, 50, _))),
            "{fx:?}"
        );
        assert!(fx
            .0
            .iter()
            .any(|e| matches!(e, Effect::Do(Action::Infer(_)))));
        let mut fx = Fx::default();
        let msg = json!({"role": "assistant", "content": [], "stopReason": "stop"});
        o.worker_inference(
            &env(&c, T0 + 3),
            &id,
            "t:1",
            InferenceOut::Done(msg),
            &mut fx,
        );
        let [Effect::Frame(1, 50, f)] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        let f: Value = serde_json::from_slice(f).unwrap();
        assert_eq!(f["event"], "worker.inference.terminal");
        assert_eq!(f["payload"]["seq"], 2);
        assert_eq!(f["payload"]["outcome"]["type"], "done");
        // Output after the terminal is ignored.
        let mut fx = Fx::default();
        let late = InferenceOut::Events(vec![json!({"type": "text_delta"})]);
        o.worker_inference(&env(&c, T0 + 4), &id, "t:1", late, &mut fx);
        assert!(fx.is_empty());
    }
}
