//! The cron service on its owner shard ([`crate::placement`]): the [`CronBook`], persistence through the
//! storage thread, the timer, and the execution of runs. Every `cron.*` request travels to the
//! owner (one writer, one order); answers travel back to the caller.
//!
//! A run executes its payload: `systemEvent` queues a system event (as `wake` does);
//! `agentTurn` runs an agent turn through the chat layer in the job's session (`main`, the
//! job's `sessionKey`, or `cron:<jobId>` for isolated jobs) and waits for the run to end, so a
//! provider failure shows up as the run's error. Other payloads are reported as failed with
//! the reason.

use std::{collections::HashMap, sync::Arc};

use serde_json::{json, Value};

use super::{
    book::CronBook,
    events,
    runs::{runs_page, RunLogEntry, RunsQuery},
    CronError, Job, RunOutcome, RunStart,
};
use crate::{
    bus::BusMsg,
    chat::{self, key, Caller, ChatRequest, SendKind, SendReq, SessionOp},
    proto::{
        errors::{code, ErrorShape},
        frame::EventTemplate,
    },
    shard::ctx::ShardCtx,
    state::now_ms,
    store::{oneshot::Oneshot, Op, OpResult},
};

/// How often the owner checks for due jobs.
const TICK_MS: u64 = 500;
/// How long a run may wait for its agent turn to end.
const AGENT_RUN_TIMEOUT_MS: u64 = 10 * 60_000;
/// How long a run waits for its agent turn to be accepted (durable user turn).
const AGENT_ACK_TIMEOUT_MS: u64 = 60_000;
/// Run-log entries read for one `cron.runs` page.
const RUNS_READ: u64 = 2_000;

/// A `cron.*` request for the owner shard.
#[derive(Debug, Clone)]
pub struct CronCall {
    pub caller: Caller,
    pub method: String,
    pub params: Value,
}

/// The owner's state (empty on other shards).
#[derive(Default)]
pub struct CronService {
    /// `None` until the jobs are loaded from the store.
    book: Option<CronBook>,
    /// Runs in progress: job id → (run id, started at).
    running: HashMap<String, (String, u64)>,
}

impl CronService {
    /// The job book, once loaded (owner shard only).
    pub fn book_mut(&mut self) -> Option<&mut CronBook> {
        self.book.as_mut()
    }
}

/// On the owner shard at start: load the jobs, then tick.
pub fn start(ctx: &mut ShardCtx) {
    if ctx.id != ctx.placement().cron() {
        return;
    }
    ctx.spawn_store(Op::CronLoad, |ctx, r| {
        let jobs: Vec<Job> = match r {
            OpResult::Json(Value::Array(rows)) => rows
                .into_iter()
                .filter_map(|v| match serde_json::from_value(v) {
                    Ok(j) => Some(j),
                    Err(e) => {
                        tracing::error!(error = %e, "cron job row does not parse; skipped");
                        None
                    }
                })
                .collect(),
            other => {
                tracing::error!(result = ?other, "cannot load cron jobs; cron stays unavailable");
                return;
            }
        };
        tracing::info!(jobs = jobs.len(), "cron jobs loaded");
        let default_agent = ctx.config.default_agent().to_owned();
        ctx.cron.book = Some(CronBook::from_jobs(default_agent, jobs));
    });
    let me = ctx.me.clone();
    monoio::spawn(async move {
        loop {
            crate::shard::timer::sleep_ms(TICK_MS).await;
            let Some(ctx) = me.upgrade() else { return };
            tick(&mut ctx.borrow_mut());
        }
    });
}

/// Starts the runs whose slot has come (when the scheduler is enabled).
fn tick(ctx: &mut ShardCtx) {
    if !ctx.config.cron_enabled || ctx.shutting_down {
        return;
    }
    let now = now_ms();
    let due = match &ctx.cron.book {
        Some(b) => b.due(now),
        None => return,
    };
    for id in due {
        begin(ctx, &id, "due", None);
    }
}

fn refuse(e: &CronError) -> ErrorShape {
    e.to_error_shape()
}

/// Routes a `cron.*` request to the owner.
pub fn route(ctx: &mut ShardCtx, call: CronCall) {
    let owner = ctx.placement().cron();
    ctx.route(owner, call, handle, BusMsg::Cron);
}

/// Serves a `cron.*` request on the owner.
pub fn handle(ctx: &mut ShardCtx, call: CronCall) {
    let now = now_ms();
    let Some(book) = ctx.cron.book.as_mut() else {
        call.caller.err(
            ctx,
            &ErrorShape::new(code::UNAVAILABLE, "cron jobs are still loading; retry"),
        );
        return;
    };
    let p = &call.params;
    let caller = call.caller;
    match call.method.as_str() {
        "cron.list" => {
            let v = book.list(p);
            caller.ok(ctx, &v);
        }
        "cron.status" => {
            let path = ctx.config.state_dir.join("ringgate.sqlite");
            let v = book.status(ctx.config.cron_enabled, &path.display().to_string());
            caller.ok(ctx, &v);
        }
        "cron.add" => match book.add(p, now) {
            Ok(job) => {
                let answer = CronBook::add_response(&job);
                persist(ctx, caller, job, answer, events::added, None);
            }
            Err(e) => caller.err(ctx, &refuse(&e)),
        },
        "cron.update" => {
            let id = p
                .get("id")
                .or_else(|| p.get("jobId"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let before = book.get(id).cloned();
            match book.update(p, now) {
                Ok(job) => {
                    let answer = job.read_view();
                    persist(ctx, caller, job, answer, events::updated, before);
                }
                Err(e) => caller.err(ctx, &refuse(&e)),
            }
        }
        "cron.remove" => match book.remove(p) {
            Ok(job) => {
                let op = Op::CronDelete { id: job.id.clone() };
                ctx.spawn_store(op, move |ctx, r| match r {
                    OpResult::Json(_) => {
                        announce(ctx, events::removed(&job));
                        caller.ok(ctx, &CronBook::remove_response());
                    }
                    other => {
                        // Not durable: keep the job.
                        if let Some(b) = ctx.cron.book.as_mut() {
                            b.restore(job);
                        }
                        caller.err(ctx, &store_error(&other));
                    }
                });
            }
            Err(e) => caller.err(ctx, &refuse(&e)),
        },
        "cron.run" => {
            let id = p
                .get("id")
                .or_else(|| p.get("jobId"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mode = p
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("force")
                .to_owned();
            begin(ctx, &id, &mode, Some(caller));
        }
        _ => runs(ctx, caller, RunsQuery::from_params(p)),
    }
}

fn store_error(r: &OpResult) -> ErrorShape {
    ErrorShape::new(
        code::UNAVAILABLE,
        match r {
            OpResult::Failed(m) | OpResult::Invalid(m) => m.clone(),
            other => format!("cron store answered {other:?}"),
        },
    )
}

/// Makes an added or updated job durable, then answers and announces it. If the write fails
/// the book goes back to `before` (the job's previous version; `None` for an add).
fn persist(
    ctx: &mut ShardCtx,
    caller: Caller,
    job: Job,
    answer: Value,
    event: fn(&Job) -> Value,
    before: Option<Job>,
) {
    let op = Op::CronSave {
        id: job.id.clone(),
        job: serde_json::to_string(&job).unwrap_or_default(),
    };
    ctx.spawn_store(op, move |ctx, r| match r {
        OpResult::Json(_) => {
            announce(ctx, event(&job));
            caller.ok(ctx, &answer);
        }
        other => {
            if let Some(b) = ctx.cron.book.as_mut() {
                match before {
                    Some(old) => b.restore(old),
                    None => b.forget(&job.id),
                }
            }
            caller.err(ctx, &store_error(&other));
        }
    });
}

/// Broadcasts a `cron` event on every shard.
fn announce(ctx: &mut ShardCtx, payload: Value) {
    ctx.broadcast(EventTemplate::new("cron", &payload, None));
}

/// `cron.runs`: the run log from the store, paged on the owner (job names from the book).
fn runs(ctx: &mut ShardCtx, caller: Caller, q: RunsQuery) {
    let op = Op::CronRuns {
        job_id: q.job_id.clone(),
        limit: RUNS_READ,
    };
    ctx.spawn_store(op, move |ctx, r| {
        let OpResult::Json(Value::Array(rows)) = r else {
            caller.err(ctx, &store_error(&r));
            return;
        };
        let entries: Vec<RunLogEntry> = rows
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        let book = ctx.cron.book.as_ref();
        let page = runs_page(&entries, &q, |id| {
            book.and_then(|b| b.get(id)).map(|j| j.name.as_str())
        });
        caller.ok(ctx, &page);
    });
}

/// Starts a run (`cron.run` with a caller, or the timer without one).
fn begin(ctx: &mut ShardCtx, id: &str, mode: &str, caller: Option<Caller>) {
    let now = now_ms();
    let Some(book) = ctx.cron.book.as_mut() else {
        return;
    };
    let start = match book.begin_run(id, now, mode) {
        Ok(s) => s,
        Err(e) => {
            if let Some(c) = caller {
                c.err(ctx, &refuse(&e));
            }
            return;
        }
    };
    match start {
        RunStart::NotRun { response, .. } => {
            if let Some(c) = caller {
                c.ok(ctx, &response);
            }
        }
        RunStart::Started {
            job,
            run_id,
            run_at_ms,
            mut response,
            event,
        } => {
            response["processInstanceId"] = json!(ctx.globals.instance_id);
            if let Some(c) = caller {
                c.ok(ctx, &response);
            }
            announce(ctx, event);
            ctx.cron
                .running
                .insert(job.id.clone(), (run_id.clone(), run_at_ms));
            tracing::info!(job = %job.id, run_id, mode, "cron run started");
            execute(ctx, *job, run_id, run_at_ms);
        }
    }
}

/// Runs a job's payload; calls [`finish`] with the outcome.
fn execute(ctx: &mut ShardCtx, job: Job, run_id: String, started: u64) {
    let kind = job
        .payload
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_str() {
        "systemEvent" => {
            let text = job
                .payload
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            ctx.record_system_event(text.clone());
            ctx.sender.to_others(BusMsg::SystemEvent(text));
            finish(ctx, &job.id, &run_id, started, RunOutcome::ok());
        }
        "agentTurn" => agent_turn(ctx, job, run_id, started),
        other => {
            let why = format!("payload kind \"{other}\" is not supported by ringgate");
            finish(ctx, &job.id, &run_id, started, RunOutcome::error(why));
        }
    }
}

/// The session an `agentTurn` runs in.
fn session_of(ctx: &ShardCtx, job: &Job) -> Result<key::SessionKey, String> {
    let agent = job
        .effective_agent_id(ctx.config.default_agent())
        .to_owned();
    if ctx.config.agent(&agent).is_none() {
        return Err(format!("Unknown agent id \"{agent}\""));
    }
    let raw = match job.session_target.as_str() {
        "main" => "main".to_owned(),
        "isolated" => format!("cron:{}", job.id),
        t => match (t.strip_prefix("session:"), &job.session_key) {
            (Some(k), _) => k.to_owned(),
            (None, Some(k)) => k.clone(),
            (None, None) => format!("cron:{}", job.id),
        },
    };
    key::resolve(&raw, Some(&agent), ctx.config.default_agent())
}

/// A pseudo connection whose answer completes a one-shot instead of going to a socket.
fn waiter(ctx: &mut ShardCtx) -> (Caller, Arc<Oneshot<Vec<u8>>>) {
    let conn = ctx.next_client_id();
    let w = Oneshot::new();
    ctx.reply_waiters.insert(conn, w.clone());
    let caller = Caller {
        shard: ctx.id,
        conn,
        req_id: "cron".into(),
    };
    (caller, w)
}

fn agent_turn(ctx: &mut ShardCtx, job: Job, run_id: String, started: u64) {
    let message = job
        .payload
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let k = match session_of(ctx, &job) {
        Ok(k) => k,
        Err(e) => return finish(ctx, &job.id, &run_id, started, RunOutcome::error(e)),
    };
    let session_key = k.canonical.clone();
    let req = SendReq {
        kind: SendKind::Chat,
        fingerprint: chat::fingerprint(&["cron", &k.canonical, &message]),
        message,
        run_id: run_id.clone(),
        key_given: true,
        reply_to: None,
    };
    let (caller, ack) = waiter(ctx);
    let caller_conn = caller.conn;
    chat::route(
        ctx,
        caller.conn,
        caller.req_id,
        ChatRequest::Session(k, SessionOp::Send(req)),
    );
    let me = ctx.me.clone();
    let job_id = job.id.clone();
    let ack_conn = caller_conn;
    monoio::spawn(async move {
        let ack = monoio::select! {
            a = ack.wait() => Some(a),
            _ = crate::shard::timer::sleep_ms(AGENT_ACK_TIMEOUT_MS) => None,
        };
        let Some(ctx) = me.upgrade() else { return };
        let Some(ack) = ack else {
            ctx.borrow_mut().reply_waiters.remove(&ack_conn);
            let outcome = RunOutcome::error("the agent turn was not accepted in time");
            return finish(&mut ctx.borrow_mut(), &job_id, &run_id, started, outcome);
        };
        let ack: Value = serde_json::from_slice(&ack).unwrap_or(Value::Null);
        if ack["ok"] != true {
            let why = ack["error"]["message"].as_str().unwrap_or("turn refused");
            let outcome = RunOutcome::error(format!("agent turn refused: {why}"));
            return finish(&mut ctx.borrow_mut(), &job_id, &run_id, started, outcome);
        }
        let done = {
            let mut c = ctx.borrow_mut();
            let (caller, done) = waiter(&mut c);
            chat::runs::wait(&mut c, caller, run_id.clone(), AGENT_RUN_TIMEOUT_MS);
            done
        };
        drop(ctx);
        let end: Value = serde_json::from_slice(&done.wait().await).unwrap_or(Value::Null);
        let Some(ctx) = me.upgrade() else { return };
        let p = &end["payload"];
        let mut outcome = match p["status"].as_str() {
            Some("ok") => RunOutcome::ok(),
            Some("timeout") if p.get("endedAt").is_none() => {
                RunOutcome::error("timed out waiting for the agent run")
            }
            Some("timeout") => RunOutcome::error("agent run aborted"),
            _ => RunOutcome::error(p["error"].as_str().unwrap_or("agent run failed")),
        };
        outcome.session_key = Some(session_key);
        finish(&mut ctx.borrow_mut(), &job_id, &run_id, started, outcome);
    });
}

/// Records a finished run (durably), then announces it.
fn finish(ctx: &mut ShardCtx, job_id: &str, run_id: &str, started: u64, outcome: RunOutcome) {
    let now = now_ms();
    ctx.cron.running.remove(job_id);
    let Some(book) = ctx.cron.book.as_mut() else {
        return;
    };
    let f = match book.finish_run(job_id, run_id, started, &outcome, now) {
        Ok(f) => f,
        Err(e) => {
            // The job was removed while it ran: nothing to record.
            tracing::info!(job = job_id, error = %e, "cron run finished for a removed job");
            return;
        }
    };
    match &outcome.error {
        Some(e) => {
            tracing::warn!(job = job_id, run_id, status = ?outcome.status, error = %e, "cron run finished")
        }
        None => tracing::info!(job = job_id, run_id, "cron run finished"),
    }
    let op = Op::CronFinish {
        id: job_id.to_owned(),
        job: f.job.as_ref().and_then(|j| serde_json::to_string(j).ok()),
        ts: f.entry.ts,
        entry: serde_json::to_string(&f.entry).unwrap_or_default(),
    };
    let event = f.event;
    ctx.spawn_store(op, move |ctx, r| {
        if !matches!(r, OpResult::Json(_)) {
            tracing::error!(result = ?r, "cron run record not saved");
        }
        announce(ctx, event);
    });
}
