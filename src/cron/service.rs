//! The cron service on its owner shard ([`crate::placement`]): the [`CronBook`], persistence through the
//! storage thread, the timer, and the execution of runs. Every `cron.*` request travels to the
//! owner (one writer, one order); answers travel back to the caller.
//!
//! A run executes its payload: `systemEvent` queues a system event (as `wake` does);
//! `agentTurn` runs an agent turn through the chat layer in the job's session (`main`, the
//! job's `sessionKey`, or `cron:<jobId>` for isolated jobs) and waits for the run to end, so a
//! provider failure shows up as the run's error. Other payloads are reported as failed with
//! the reason.
//!
//! Sans-IO: [`CronService`] steps push effects (store ops and the tick as typed resumes, the
//! agent turn as a request to the chat layer whose answers come back to it in-process) for the
//! shard's driver; they never see a socket, a timer or the bus.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{
    book::CronBook,
    events,
    runs::{runs_page, RunLogEntry, RunsQuery},
    CronError, Job, RunOutcome, RunStart,
};
use crate::{
    chat::{self, key, ChatRequest, SendKind, SendReq, SessionOp},
    config::Config,
    effects::{Caller, Effect, Effects, Waiter},
    proto::errors::{code, ErrorShape},
    proto::frame::EventTemplate,
    store::{Op, OpResult},
};

/// How often the owner checks for due jobs.
pub const TICK_MS: u64 = 500;
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

/// An agent turn a run is waiting for.
struct TurnWait {
    job_id: String,
    run_id: String,
    started: u64,
    session_key: String,
    /// The chat layer has accepted the turn (its user message is durable).
    accepted: bool,
}

/// The owner's state (empty on other shards).
#[derive(Default)]
pub struct CronService {
    /// `None` until the jobs are loaded from the store.
    book: Option<CronBook>,
    /// Runs in progress: job id → (run id, started at).
    running: HashMap<String, (String, u64)>,
    /// Agent turns of runs in progress, by waiter token.
    turns: HashMap<u64, TurnWait>,
    next_token: u64,
    /// Serving: loading or loaded the jobs (in a cluster, only the host chosen to run cron).
    leading: bool,
    /// The tick timer is armed (it re-arms itself; never twice).
    ticking: bool,
    /// Another host runs cron now ([`CronService::stop`]).
    stopped: bool,
    /// Calls that arrived while the jobs were loading, served once they are.
    waiting: Vec<CronCall>,
}

/// Calls held while the jobs load at most; past it a call is asked to retry.
const MAX_WAITING: usize = 256;

/// What a step needs of the gateway.
pub struct Env<'a> {
    pub shard: usize,
    pub now_ms: u64,
    pub config: &'a Config,
    pub shutting_down: bool,
    pub instance_id: &'a str,
}

/// What comes back to the cron owner.
#[derive(Debug)]
pub enum Resume {
    /// The jobs as stored.
    Loaded,
    /// Time to look for due jobs.
    Tick,
    /// An added or updated job was written; on failure the book goes back to `before`.
    Saved {
        caller: Caller,
        job: Box<Job>,
        answer: Value,
        event: fn(&Job) -> Value,
        before: Option<Box<Job>>,
    },
    /// A removed job was deleted from the store.
    Removed { caller: Caller, job: Box<Job> },
    /// The run log, read for a `cron.runs` page.
    RunsRead { caller: Caller, q: RunsQuery },
    /// A finished run's record was written; announce it.
    Recorded { event: Value },
    /// The agent turn of waiter `token` was not accepted in time.
    AckTimeout { token: u64 },
    /// The chat layer's answer to waiter `token`: the turn's ack, then how its run ended.
    Answered {
        token: u64,
        answer: Result<Value, ErrorShape>,
    },
}

/// What only the cron driver does.
#[derive(Debug)]
pub enum Action {
    /// Queue a system event on every shard (a `systemEvent` payload, as `wake`).
    Wake(String),
    /// A request to the chat layer, answered to the caller (an in-process waiter).
    Chat(Caller, ChatRequest),
}

type Fx = Effects<Resume, Action>;

fn store_error(r: Option<&OpResult>) -> ErrorShape {
    ErrorShape::new(
        code::UNAVAILABLE,
        match r {
            Some(OpResult::Failed(m) | OpResult::Invalid(m)) => m.clone(),
            Some(other) => format!("cron store answered {other:?}"),
            None => "the store did not answer".to_owned(),
        },
    )
}

/// A `cron` event for every shard.
fn announce(fx: &mut Fx, payload: Value) {
    fx.push(Effect::Broadcast(EventTemplate::new(
        "cron", &payload, None,
    )));
}

fn id_param(p: &Value) -> String {
    p.get("id")
        .or_else(|| p.get("jobId"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl CronService {
    /// The job book, once loaded (owner shard only).
    pub fn book_mut(&mut self) -> Option<&mut CronBook> {
        self.book.as_mut()
    }

    /// On the owner shard at start (in a cluster, when this host becomes the one that runs
    /// cron): load the jobs, then tick.
    pub fn start(&mut self, fx: &mut Fx) {
        if self.leading {
            return;
        }
        self.leading = true;
        self.stopped = false;
        fx.push(Effect::Store(Op::CronLoad, Resume::Loaded));
        if !self.ticking {
            self.ticking = true;
            fx.push(Effect::Timer(TICK_MS, Resume::Tick));
        }
    }

    /// Another host runs cron now: forget the jobs (they stay in the shared record), so no
    /// job is due here until this host leads again and loads them afresh.
    pub fn stop(&mut self, fx: &mut Fx) {
        self.leading = false;
        self.stopped = true;
        self.book = None;
        for call in std::mem::take(&mut self.waiting) {
            let e = ErrorShape::new(
                code::UNAVAILABLE,
                "another cluster host runs cron now; retry",
            );
            fx.err(&call.caller, e);
        }
    }

    pub fn leading(&self) -> bool {
        self.leading
    }

    /// Serves a `cron.*` request.
    pub fn handle(&mut self, env: &Env, call: CronCall, fx: &mut Fx) {
        let now = env.now_ms;
        let Some(book) = self.book.as_mut() else {
            if self.leading && self.waiting.len() < MAX_WAITING {
                self.waiting.push(call);
                return;
            }
            fx.err(
                &call.caller,
                ErrorShape::new(code::UNAVAILABLE, "cron jobs are still loading; retry"),
            );
            return;
        };
        let p = &call.params;
        let caller = call.caller;
        match call.method.as_str() {
            "cron.list" => fx.ok(&caller, book.list(p)),
            "cron.status" => {
                let path = env.config.store_path();
                let v = book.status(env.config.cron_enabled, &path.display().to_string());
                fx.ok(&caller, v);
            }
            "cron.add" => match book.add(p, now) {
                Ok(job) => {
                    let answer = CronBook::add_response(&job);
                    save(fx, caller, job, answer, events::added, None);
                }
                Err(e) => fx.err(&caller, e.to_error_shape()),
            },
            "cron.update" => {
                let before = book.get(&id_param(p)).cloned();
                match book.update(p, now) {
                    Ok(job) => {
                        let answer = job.read_view();
                        save(fx, caller, job, answer, events::updated, before);
                    }
                    Err(e) => fx.err(&caller, e.to_error_shape()),
                }
            }
            "cron.remove" => match book.remove(p) {
                Ok(job) => {
                    let op = Op::CronDelete { id: job.id.clone() };
                    let job = Box::new(job);
                    fx.push(Effect::Store(op, Resume::Removed { caller, job }));
                }
                Err(e) => fx.err(&caller, e.to_error_shape()),
            },
            "cron.run" => {
                let mode = p.get("mode").and_then(Value::as_str).unwrap_or("force");
                let mode = mode.to_owned();
                self.begin(env, &id_param(p), &mode, Some(caller), fx);
            }
            _ => {
                let q = RunsQuery::from_params(p);
                let op = Op::CronRuns {
                    job_id: q.job_id.clone(),
                    limit: RUNS_READ,
                };
                fx.push(Effect::Store(op, Resume::RunsRead { caller, q }));
            }
        }
    }

    pub fn resume(&mut self, env: &Env, r: Resume, res: Option<OpResult>, fx: &mut Fx) {
        match r {
            Resume::Loaded => {
                self.loaded(env, res);
                // Calls that came during the load are served now (or, if it failed, told so).
                for call in std::mem::take(&mut self.waiting) {
                    if self.book.is_none() {
                        let e = ErrorShape::new(
                            code::UNAVAILABLE,
                            "cron jobs could not be loaded; retry",
                        );
                        fx.err(&call.caller, e);
                    } else {
                        self.handle(env, call, fx);
                    }
                }
            }
            Resume::Tick => {
                fx.push(Effect::Timer(TICK_MS, Resume::Tick));
                if !env.config.cron_enabled || env.shutting_down {
                    return;
                }
                let due = match &self.book {
                    Some(b) => b.due(env.now_ms),
                    None => return,
                };
                for id in due {
                    self.begin(env, &id, "due", None, fx);
                }
            }
            Resume::Saved {
                caller,
                job,
                answer,
                event,
                before,
            } => match res {
                Some(OpResult::Json(_)) => {
                    announce(fx, event(&job));
                    fx.ok(&caller, answer);
                }
                other => {
                    if let Some(b) = self.book.as_mut() {
                        match before {
                            Some(old) => b.restore(*old),
                            None => b.forget(&job.id),
                        }
                    }
                    fx.err(&caller, store_error(other.as_ref()));
                }
            },
            Resume::Removed { caller, job } => match res {
                Some(OpResult::Json(_)) => {
                    announce(fx, events::removed(&job));
                    fx.ok(&caller, CronBook::remove_response());
                }
                other => {
                    // Not durable: keep the job.
                    if let Some(b) = self.book.as_mut() {
                        b.restore(*job);
                    }
                    fx.err(&caller, store_error(other.as_ref()));
                }
            },
            Resume::RunsRead { caller, q } => {
                let Some(OpResult::Json(Value::Array(rows))) = res else {
                    fx.err(&caller, store_error(res.as_ref()));
                    return;
                };
                let entries: Vec<RunLogEntry> = rows
                    .into_iter()
                    .filter_map(|v| serde_json::from_value(v).ok())
                    .collect();
                let book = self.book.as_ref();
                let page = runs_page(&entries, &q, |id| {
                    book.and_then(|b| b.get(id)).map(|j| j.name.as_str())
                });
                fx.ok(&caller, page);
            }
            Resume::Recorded { event } => {
                if !matches!(res, Some(OpResult::Json(_))) {
                    tracing::error!(result = ?res, "cron run record not saved");
                }
                announce(fx, event);
            }
            Resume::AckTimeout { token } => {
                if self.turns.get(&token).is_some_and(|t| !t.accepted) {
                    let t = self.turns.remove(&token).expect("present");
                    let outcome = RunOutcome::error("the agent turn was not accepted in time");
                    self.finish(env, &t.job_id, &t.run_id, t.started, outcome, fx);
                }
            }
            Resume::Answered { token, answer } => self.answered(env, token, answer, fx),
        }
    }

    fn loaded(&mut self, env: &Env, res: Option<OpResult>) {
        if self.stopped {
            // Loaded for a lead this host has given up since.
            return;
        }
        let jobs: Vec<Job> = match res {
            Some(OpResult::Json(Value::Array(rows))) => rows
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
        let default_agent = env.config.default_agent().to_owned();
        self.book = Some(CronBook::from_jobs(default_agent, jobs));
    }

    /// Starts a run (`cron.run` with a caller, or the tick without one).
    fn begin(&mut self, env: &Env, id: &str, mode: &str, caller: Option<Caller>, fx: &mut Fx) {
        let Some(book) = self.book.as_mut() else {
            return;
        };
        let start = match book.begin_run(id, env.now_ms, mode) {
            Ok(s) => s,
            Err(e) => {
                if let Some(c) = caller {
                    fx.err(&c, refuse(&e));
                }
                return;
            }
        };
        match start {
            RunStart::NotRun { response, .. } => {
                if let Some(c) = caller {
                    fx.ok(&c, response);
                }
            }
            RunStart::Started {
                job,
                run_id,
                run_at_ms,
                mut response,
                event,
            } => {
                response["processInstanceId"] = json!(env.instance_id);
                if let Some(c) = caller {
                    fx.ok(&c, response);
                }
                announce(fx, event);
                self.running
                    .insert(job.id.clone(), (run_id.clone(), run_at_ms));
                tracing::info!(job = %job.id, run_id, mode, "cron run started");
                self.execute(env, *job, run_id, run_at_ms, fx);
            }
        }
    }

    /// Runs a job's payload: at once for a system event, through the chat layer for an agent
    /// turn (ending in [`CronService::answered`]).
    fn execute(&mut self, env: &Env, job: Job, run_id: String, started: u64, fx: &mut Fx) {
        let text = |k: &str| {
            job.payload
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match text("kind").as_str() {
            "systemEvent" => {
                fx.push(Effect::Do(Action::Wake(text("text"))));
                self.finish(env, &job.id, &run_id, started, RunOutcome::ok(), fx);
            }
            "agentTurn" => {
                let message = text("message");
                let k = match session_of(env.config, &job) {
                    Ok(k) => k,
                    Err(e) => {
                        return self.finish(
                            env,
                            &job.id,
                            &run_id,
                            started,
                            RunOutcome::error(e),
                            fx,
                        )
                    }
                };
                let req = SendReq {
                    queue: false,
                    kind: SendKind::Chat,
                    fingerprint: chat::fingerprint(&["cron", &k.canonical, &message]),
                    message,
                    run_id: run_id.clone(),
                    key_given: true,
                    reply_to: None,
                };
                self.next_token += 1;
                let token = self.next_token;
                self.turns.insert(
                    token,
                    TurnWait {
                        job_id: job.id.clone(),
                        run_id,
                        started,
                        session_key: k.canonical.clone(),
                        accepted: false,
                    },
                );
                let caller = waiter(env, token);
                let send = ChatRequest::Session(k, SessionOp::Send(req));
                fx.push(Effect::Do(Action::Chat(caller, send)));
                fx.push(Effect::Timer(
                    AGENT_ACK_TIMEOUT_MS,
                    Resume::AckTimeout { token },
                ));
            }
            other => {
                let why = format!("payload kind \"{other}\" is not supported by ringgate");
                self.finish(env, &job.id, &run_id, started, RunOutcome::error(why), fx);
            }
        }
    }

    /// The chat layer answered an agent turn: its ack (then wait for the run), or its end.
    fn answered(&mut self, env: &Env, token: u64, answer: Result<Value, ErrorShape>, fx: &mut Fx) {
        let Some(t) = self.turns.get_mut(&token) else {
            // Not accepted in time: the run was already recorded as failed.
            return;
        };
        if !t.accepted {
            match answer {
                Ok(_) => {
                    t.accepted = true;
                    let wait = ChatRequest::Wait {
                        run_id: t.run_id.clone(),
                        timeout_ms: AGENT_RUN_TIMEOUT_MS,
                    };
                    fx.push(Effect::Do(Action::Chat(waiter(env, token), wait)));
                }
                Err(e) => {
                    let t = self.turns.remove(&token).expect("present");
                    let why = format!("agent turn refused: {}", e.message);
                    self.finish(
                        env,
                        &t.job_id,
                        &t.run_id,
                        t.started,
                        RunOutcome::error(why),
                        fx,
                    );
                }
            }
            return;
        }
        let t = self.turns.remove(&token).expect("present");
        let mut outcome = match &answer {
            Ok(p) => match p["status"].as_str() {
                Some("ok") => RunOutcome::ok(),
                Some("timeout") if p.get("endedAt").is_none() => {
                    RunOutcome::error("timed out waiting for the agent run")
                }
                Some("timeout") => RunOutcome::error("agent run aborted"),
                _ => RunOutcome::error(p["error"].as_str().unwrap_or("agent run failed")),
            },
            Err(e) => RunOutcome::error(e.message.clone()),
        };
        outcome.session_key = Some(t.session_key);
        self.finish(env, &t.job_id, &t.run_id, t.started, outcome, fx);
    }

    /// Records a finished run (durably), then announces it.
    fn finish(
        &mut self,
        env: &Env,
        job_id: &str,
        run_id: &str,
        started: u64,
        outcome: RunOutcome,
        fx: &mut Fx,
    ) {
        self.running.remove(job_id);
        let Some(book) = self.book.as_mut() else {
            return;
        };
        let f = match book.finish_run(job_id, run_id, started, &outcome, env.now_ms) {
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
        fx.push(Effect::Store(op, Resume::Recorded { event: f.event }));
    }
}

fn refuse(e: &CronError) -> ErrorShape {
    e.to_error_shape()
}

/// Makes an added or updated job durable, then answers and announces it.
fn save(
    fx: &mut Fx,
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
    let r = Resume::Saved {
        caller,
        job: Box::new(job),
        answer,
        event,
        before: before.map(Box::new),
    };
    fx.push(Effect::Store(op, r));
}

/// The in-process caller for waiter `token` on the cron shard.
fn waiter(env: &Env, token: u64) -> Caller {
    Caller::Internal {
        shard: env.shard,
        waiter: Waiter::Cron(token),
    }
}

/// The session an `agentTurn` runs in.
fn session_of(config: &Config, job: &Job) -> Result<key::SessionKey, String> {
    let agent = job.effective_agent_id(config.default_agent()).to_owned();
    if config.agent(&agent).is_none() {
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
    key::resolve(&raw, Some(&agent), config.default_agent())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_772_000_000_000;

    fn config() -> Config {
        Config {
            cron_enabled: true,
            ..Default::default()
        }
    }

    fn env(config: &Config, now_ms: u64) -> Env<'_> {
        Env {
            shard: 0,
            now_ms,
            config,
            shutting_down: false,
            instance_id: "inst",
        }
    }

    fn caller() -> Caller {
        Caller::conn(0, 1, "r")
    }

    fn stored_ok() -> Option<OpResult> {
        Some(OpResult::Json(json!({})))
    }

    fn no_jobs() -> Option<OpResult> {
        Some(OpResult::Json(json!([])))
    }

    /// `cron.add` of a job running `payload` every minute.
    fn add(payload: Value) -> CronCall {
        CronCall {
            caller: caller(),
            method: "cron.add".into(),
            params: json!({"name": "j", "schedule": {"kind": "every", "everyMs": 60_000},
                           "payload": payload}),
        }
    }

    /// A loaded service holding one saved job with this payload, every minute from `NOW`.
    fn with_job(cfg: &Config, payload: Value) -> (CronService, String) {
        let mut c = CronService::default();
        let mut fx = Fx::default();
        c.start(&mut fx);
        assert!(matches!(
            &fx.0[..],
            [
                Effect::Store(Op::CronLoad, Resume::Loaded),
                Effect::Timer(TICK_MS, Resume::Tick)
            ]
        ));
        c.resume(&env(cfg, NOW), Resume::Loaded, no_jobs(), &mut fx);
        let mut fx = Fx::default();
        c.handle(&env(cfg, NOW), add(payload), &mut fx);
        let Some(Effect::Store(Op::CronSave { id, .. }, saved)) = fx.0.pop() else {
            panic!("an add is written first")
        };
        let mut fx = Fx::default();
        c.resume(&env(cfg, NOW), saved, stored_ok(), &mut fx);
        assert!(
            matches!(&fx.0[..], [Effect::Broadcast(_), Effect::Reply(_, Ok(_))]),
            "{fx:?}"
        );
        (c, id)
    }

    /// The effects of a tick at `now` (the re-armed tick dropped).
    fn tick(c: &mut CronService, cfg: &Config, now: u64) -> Vec<Effect<Resume, Action>> {
        let mut fx = Fx::default();
        c.resume(&env(cfg, now), Resume::Tick, None, &mut fx);
        let mut v = fx.0.into_iter();
        assert!(matches!(
            v.next(),
            Some(Effect::Timer(TICK_MS, Resume::Tick))
        ));
        v.collect()
    }

    #[test]
    fn a_due_system_event_job_wakes_and_records_its_run() {
        let cfg = config();
        let (mut c, id) = with_job(&cfg, json!({"kind": "systemEvent", "text": "ping"}));
        assert!(tick(&mut c, &cfg, NOW + 59_999).is_empty(), "not due yet");
        let fx = tick(&mut c, &cfg, NOW + 60_000);
        let [Effect::Broadcast(started), Effect::Do(Action::Wake(text)), Effect::Store(Op::CronFinish { id: fin, .. }, Resume::Recorded { event })] =
            &fx[..]
        else {
            panic!("{fx:?}")
        };
        assert_eq!(started.name, "cron");
        assert_eq!(text, "ping");
        assert_eq!(fin, &id);
        assert_eq!(event["action"], "finished");
        assert_eq!(event["status"], "ok");
        // With the scheduler off nothing runs.
        let off = Config {
            cron_enabled: false,
            ..Default::default()
        };
        assert!(tick(&mut c, &off, NOW + 10 * 60_000).is_empty());
    }

    #[test]
    fn a_host_that_stops_leading_runs_nothing_and_reloads_when_it_leads_again() {
        let cfg = config();
        let mut c = CronService::default();
        let mut fx = Fx::default();
        c.start(&mut fx);
        assert_eq!(fx.0.len(), 2, "a load and the first tick");
        c.start(&mut fx);
        assert_eq!(fx.0.len(), 2, "leading twice loads once");
        c.stop(&mut Fx::default());
        // The load answered after stepping down is dropped: no book, nothing due.
        c.resume(
            &env(&cfg, NOW),
            Resume::Loaded,
            no_jobs(),
            &mut Fx::default(),
        );
        assert!(c.book_mut().is_none());
        let mut fx = Fx::default();
        c.start(&mut fx);
        assert_eq!(fx.0.len(), 1, "a fresh load; the tick is still armed");
        c.resume(
            &env(&cfg, NOW),
            Resume::Loaded,
            no_jobs(),
            &mut Fx::default(),
        );
        assert!(c.book_mut().is_some());
    }

    #[test]
    fn a_call_during_the_load_is_served_once_the_jobs_are_loaded() {
        let cfg = config();
        let mut c = CronService::default();
        let mut fx = Fx::default();
        c.start(&mut fx);
        let mut fx = Fx::default();
        let payload = json!({"kind": "systemEvent", "text": "t"});
        c.handle(&env(&cfg, NOW), add(payload), &mut fx);
        assert!(fx.0.is_empty(), "held, not refused: {:?}", fx.0);
        c.resume(&env(&cfg, NOW), Resume::Loaded, no_jobs(), &mut fx);
        assert!(
            matches!(fx.0.last(), Some(Effect::Store(Op::CronSave { .. }, _))),
            "served after the load: {:?}",
            fx.0
        );
    }

    #[test]
    fn a_failed_write_undoes_the_add() {
        let cfg = config();
        let mut c = CronService::default();
        let mut fx = Fx::default();
        c.resume(&env(&cfg, NOW), Resume::Loaded, no_jobs(), &mut fx);
        let payload = json!({"kind": "systemEvent", "text": "t"});
        c.handle(&env(&cfg, NOW), add(payload), &mut fx);
        let Some(Effect::Store(_, saved)) = fx.0.pop() else {
            panic!()
        };
        let mut fx = Fx::default();
        c.resume(
            &env(&cfg, NOW),
            saved,
            Some(OpResult::Failed("disk full".into())),
            &mut fx,
        );
        let [Effect::Reply(_, Err(e))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(e.message, "disk full");
        assert_eq!(c.book.as_ref().unwrap().list(&json!({}))["total"], 0);
    }

    /// Runs the job now and returns the waiter token and run id of its agent turn.
    fn agent_turn(c: &mut CronService, cfg: &Config, id: &str) -> (u64, String) {
        let run = CronCall {
            caller: caller(),
            method: "cron.run".into(),
            params: json!({"id": id}),
        };
        let mut fx = Fx::default();
        c.handle(&env(cfg, NOW + 1), run, &mut fx);
        let chat = fx.0.iter().find_map(|e| match e {
            Effect::Do(Action::Chat(
                Caller::Internal {
                    waiter: Waiter::Cron(t),
                    ..
                },
                ChatRequest::Session(k, SessionOp::Send(req)),
            )) => {
                assert_eq!(k.canonical, format!("agent:main:cron:{id}"));
                assert_eq!(req.message, "hello");
                Some((*t, req.run_id.clone()))
            }
            _ => None,
        });
        assert!(
            fx.0.iter().any(|e| matches!(
                e,
                Effect::Timer(AGENT_ACK_TIMEOUT_MS, Resume::AckTimeout { .. })
            )),
            "{fx:?}"
        );
        chat.expect("the turn goes to the chat layer")
    }

    fn finished(fx: &Fx) -> &Value {
        fx.0.iter()
            .find_map(|e| match e {
                Effect::Store(Op::CronFinish { .. }, Resume::Recorded { event }) => Some(event),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no run record in {fx:?}"))
    }

    #[test]
    fn an_agent_turn_is_accepted_then_waited_for() {
        let cfg = config();
        let payload = json!({"kind": "agentTurn", "message": "hello"});
        let mut c = with_job(&cfg, payload.clone()).0;
        // Isolated jobs run in their own session.
        let id = {
            let b = c.book.as_mut().unwrap();
            let id = b.list(&json!({}))["jobs"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            b.update(
                &json!({"id": id, "patch": {"sessionTarget": "isolated"}}),
                NOW,
            )
            .unwrap();
            id
        };
        let (token, run_id) = agent_turn(&mut c, &cfg, &id);
        let e = env(&cfg, NOW + 2);
        let mut fx = Fx::default();
        c.resume(
            &e,
            Resume::Answered {
                token,
                answer: Ok(json!({"runId": run_id, "status": "started"})),
            },
            None,
            &mut fx,
        );
        let [Effect::Do(Action::Chat(
            _,
            ChatRequest::Wait {
                run_id: w,
                timeout_ms,
            },
        ))] = &fx.0[..]
        else {
            panic!("{fx:?}")
        };
        assert_eq!(w, &run_id);
        assert_eq!(*timeout_ms, AGENT_RUN_TIMEOUT_MS);
        // The ack timer of an accepted turn does nothing.
        let mut fx = Fx::default();
        c.resume(&e, Resume::AckTimeout { token }, None, &mut fx);
        assert!(fx.is_empty(), "{fx:?}");
        let end = json!({"runId": run_id, "status": "ok", "endedAt": NOW + 3});
        c.resume(
            &e,
            Resume::Answered {
                token,
                answer: Ok(end),
            },
            None,
            &mut fx,
        );
        let ev = finished(&fx);
        assert_eq!(ev["status"], "ok");
        assert_eq!(ev["sessionKey"], format!("agent:main:cron:{id}"));
    }

    #[test]
    fn a_refused_or_unaccepted_turn_fails_the_run_once() {
        let cfg = config();
        let payload = json!({"kind": "agentTurn", "message": "hello"});
        let (mut c, id) = with_job(&cfg, payload);
        let e = env(&cfg, NOW + 2);
        let (token, _) = agent_turn(&mut c, &cfg, &id);
        let mut fx = Fx::default();
        let refusal = ErrorShape::invalid("session busy");
        c.resume(
            &e,
            Resume::Answered {
                token,
                answer: Err(refusal),
            },
            None,
            &mut fx,
        );
        assert_eq!(finished(&fx)["error"], "agent turn refused: session busy");

        let (token, _) = agent_turn(&mut c, &cfg, &id);
        let mut fx = Fx::default();
        c.resume(&e, Resume::AckTimeout { token }, None, &mut fx);
        assert_eq!(
            finished(&fx)["error"],
            "the agent turn was not accepted in time"
        );
        // A late ack finds nothing to do.
        let mut fx = Fx::default();
        c.resume(
            &e,
            Resume::Answered {
                token,
                answer: Ok(json!({})),
            },
            None,
            &mut fx,
        );
        assert!(fx.is_empty(), "{fx:?}");
    }
}
