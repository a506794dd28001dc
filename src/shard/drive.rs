//! The driver of the sans-IO owners ([`crate::effects`]): runs an owner's step with the shard's
//! clock and knowledge, then applies the effects it pushed — answers (local or over the bus),
//! broadcasts, store ops and timers — and feeds what comes back to the owner as its resume.

use std::sync::Arc;

use serde_json::Value;

use crate::{
    agent::{config::RuntimeConfig, echo, openai, Output, Sink, Turn},
    approvals::{self, ApprovalCall, ApprovalOp},
    bus::BusMsg,
    channels::{
        sends::{self, Delivery, SendCall},
        DeliveryReport,
    },
    chat::{
        owner,
        runs::{self, RunNote},
        SessionCall,
    },
    cron::service as cron,
    effects::{Answer, Caller, Effect, Effects, Never, Waiter},
    methods::Routed,
    nodes::invoke::{self, InvokeMsg, Invokes},
    proto::errors::{code, ErrorShape},
    proto::frame::EventTemplate,
    state::now_ms,
    store::OpResult,
};

use super::ctx::ShardCtx;

/// How the driver reaches one kind of owner: its resume, how a resume travels to the same
/// owner on another shard, and how its own actions are carried out.
struct Owner<R, O = Never> {
    resume: fn(&mut ShardCtx, R, Option<OpResult>),
    /// Wraps a resume for the bus (`None`: this owner never routes).
    bus: Option<fn(Box<R>) -> BusMsg>,
    act: fn(&mut ShardCtx, O),
}

fn no_action(_: &mut ShardCtx, n: Never) {
    match n {}
}

/// Applies effects in order.
fn apply<R: 'static, O>(ctx: &mut ShardCtx, fx: Effects<R, O>, owner: &Owner<R, O>) {
    for e in fx.0 {
        match e {
            Effect::Reply(to, Ok(v)) => ctx.answer(&to, Answer::Ok(v)),
            Effect::Reply(to, Err(e)) => ctx.reply_err(&to, e),
            Effect::Answer(to, a) => ctx.answer(&to, a),
            Effect::Broadcast(ev) => ctx.broadcast(ev),
            Effect::Event(conn, ev) => ctx.push_event_to(conn, &ev),
            Effect::Frame(shard, conn, frame) => ctx.reply(shard, conn, frame),
            Effect::Submit(op) => ctx.store.submit(op),
            Effect::Store(op, r) => {
                let resume = owner.resume;
                ctx.spawn_store(op, move |ctx, res| resume(ctx, r, Some(res)))
            }
            Effect::Timer(ms, r) => {
                let me = ctx.me.clone();
                let resume = owner.resume;
                crate::rt::spawn(async move {
                    super::timer::sleep_ms(ms).await;
                    if let Some(ctx) = me.upgrade() {
                        resume(&mut ctx.borrow_mut(), r, None);
                    }
                });
            }
            Effect::Route(shard, r) if shard == ctx.id => (owner.resume)(ctx, r, None),
            Effect::Route(shard, r) => match owner.bus {
                Some(wrap) => ctx.sender.send(shard, wrap(Box::new(r))),
                None => tracing::error!(shard, "an owner that never routes asked to route"),
            },
            Effect::Do(o) => (owner.act)(ctx, o),
        }
    }
}

/// An answer for an owner waiting in-process on this shard.
pub fn answered(ctx: &mut ShardCtx, waiter: Waiter, r: Result<Value, ErrorShape>) {
    match waiter {
        Waiter::Cron(token) => cron_answered(ctx, token, r),
        Waiter::Http(token) => {
            // Gone when the request already timed out.
            if let Some(w) = ctx.http_waiters.remove(&token) {
                w.complete(r);
            }
        }
    }
}

const APPROVALS: Owner<approvals::Resume> = Owner {
    resume: approval_resume,
    bus: None,
    act: no_action,
};

fn approvals_env(ctx: &ShardCtx) -> approvals::Env {
    approvals::Env {
        now_ms: now_ms(),
        routed: ctx.approval_clients_everywhere() > 0,
    }
}

/// Serves an approval call on the approvals owner.
pub fn approval(ctx: &mut ShardCtx, call: ApprovalCall) {
    let env = approvals_env(ctx);
    let mut fx = Effects::default();
    ctx.approvals.handle(&env, call, &mut fx);
    apply(ctx, fx, &APPROVALS);
}

fn approval_resume(ctx: &mut ShardCtx, r: approvals::Resume, res: Option<OpResult>) {
    let env = approvals_env(ctx);
    let mut fx = Effects::default();
    ctx.approvals.resume(&env, r, res, &mut fx);
    apply(ctx, fx, &APPROVALS);
}

/// Sends an approval call to the approvals owner (or serves it here).
pub fn route_approval(ctx: &mut ShardCtx, call: ApprovalCall) {
    if let Some(host) = ctx.leader_host() {
        let caller = call.caller.clone();
        let out = crate::cluster::Out::Approval {
            host: host.clone(),
            call,
        };
        return to_host(ctx, host, &caller, out, "the exec approvals");
    }
    let owner = ctx.placement().approvals();
    ctx.route(owner, call, approval, BusMsg::Approval);
}

const SENDS: Owner<sends::Resume> = Owner {
    resume: send_resume,
    bus: None,
    act: no_action,
};

fn sends_env(ctx: &ShardCtx, call: Option<&SendCall>) -> sends::Env {
    sends::Env {
        now_ms: now_ms(),
        budget_ms: call.and_then(|c| {
            ctx.channels.channel(c.channel)?;
            Some(
                ctx.channels
                    .delivery_budget_ms(c.channel, c.msg.account_id.as_deref()),
            )
        }),
    }
}

/// Serves a `send` on the owner of its idempotency key.
pub fn send(ctx: &mut ShardCtx, call: SendCall) {
    let env = sends_env(ctx, Some(&call));
    let mut fx = Effects::default();
    if let Some(d) = ctx.sends.handle(&env, call, &mut fx) {
        deliver(ctx, d, &mut fx);
    }
    apply(ctx, fx, &SENDS);
}

/// Hands a delivery to its channel, whose threads report the final outcome to this shard's
/// inbox ([`send_report`]).
fn deliver(ctx: &mut ShardCtx, mut d: Delivery, fx: &mut Effects<sends::Resume>) {
    let bus = ctx.sender.bus().clone();
    let (me, key) = (ctx.id, d.key.clone());
    let report = Box::new(move |report: DeliveryReport| {
        let mut m = BusMsg::ChannelReport(Box::new((key, report)));
        // The delivery thread waits for room rather than lose an outcome.
        while let Err(back) = bus.inbox(me).push(m) {
            m = back;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    let sent = match ctx.channels.channel(d.channel) {
        Some(ch) => ch
            .send(std::mem::take(&mut d.msg), report)
            .map_err(|e| sends::refusal(&e)),
        None => Err(crate::proto::errors::ErrorShape::invalid(format!(
            "unsupported channel: {}",
            d.channel
        ))),
    };
    match sent {
        Ok(_) => ctx.sends.queued(&d, fx),
        Err(e) => ctx.sends.refused(&d, e, fx),
    }
}

/// A delivery's final outcome, on the owner shard.
pub fn send_report(ctx: &mut ShardCtx, key: String, report: DeliveryReport) {
    let env = sends_env(ctx, None);
    let mut fx = Effects::default();
    ctx.sends.report(&env, key, report, &mut fx);
    apply(ctx, fx, &SENDS);
}

fn send_resume(ctx: &mut ShardCtx, r: sends::Resume, _: Option<OpResult>) {
    let mut fx = Effects::default();
    ctx.sends.resume(r, &mut fx);
    apply(ctx, fx, &SENDS);
}

const RUNS: Owner<runs::Resume> = Owner {
    resume: runs_resume,
    bus: None,
    act: no_action,
};

/// A run started or ended: applied to this shard's run index, whose waiters it answers.
pub fn run_note(ctx: &mut ShardCtx, note: RunNote) {
    let mut fx = Effects::default();
    ctx.run_index.note(note, now_ms(), &mut fx);
    apply(ctx, fx, &RUNS);
}

/// `agent.wait` on this shard's run index.
pub fn run_wait(ctx: &mut ShardCtx, caller: Caller, run_id: &str, timeout_ms: u64) {
    let mut fx = Effects::default();
    ctx.run_index.wait(caller, run_id, timeout_ms, &mut fx);
    apply(ctx, fx, &RUNS);
}

fn runs_resume(ctx: &mut ShardCtx, r: runs::Resume, _: Option<OpResult>) {
    let mut fx = Effects::default();
    ctx.run_index.resume(r, &mut fx);
    apply(ctx, fx, &RUNS);
}

const INVOKES: Owner<InvokeMsg, invoke::Remote> = Owner {
    resume: invoke_resume,
    bus: Some(BusMsg::Invoke),
    act: invoke_remote,
};

/// Hands a message for a node or caller on another host to the cluster link.
fn invoke_remote(ctx: &mut ShardCtx, r: invoke::Remote) {
    match &ctx.cluster {
        Some(c) => c.send(crate::cluster::Out::Invoke(r)),
        // Only a cluster names other hosts.
        None => tracing::error!(host = %r.host, "an invoke for another host without a cluster"),
    }
}

/// Host `host` left the cluster: fail what waits on its nodes.
pub fn invoke_host_gone(ctx: &mut ShardCtx, host: &str) {
    invokes(ctx, |i, _, fx| i.host_gone(host, fx));
}

/// Runs one step of this shard's invokes with its clock and client table, then applies it.
fn invokes(ctx: &mut ShardCtx, step: impl FnOnce(&mut Invokes, &invoke::Env, &mut invoke::Fx)) {
    let mut fx = Effects::default();
    let clients = &ctx.clients;
    let live = |conn: u64| {
        clients.get(&conn).is_some_and(|c| {
            // As the push will borrow it: a connection that cannot be borrowed now would not
            // get the request, and its caller must hear NOT_CONNECTED, not wait for the timeout.
            c.try_borrow_mut()
                .is_ok_and(|c| c.end.is_none() && c.session().is_some())
        })
    };
    let env = invoke::Env {
        shard: ctx.id,
        conn_live: &live,
    };
    step(&mut ctx.invokes, &env, &mut fx);
    apply(ctx, fx, &INVOKES);
}

/// Starts a `node.invoke` for a connection on this shard.
pub fn invoke_start(ctx: &mut ShardCtx, caller: Caller, req: invoke::Request) {
    invokes(ctx, |i, env, fx| i.start(env, caller, req, fx));
}

fn invoke_resume(ctx: &mut ShardCtx, msg: InvokeMsg, _: Option<OpResult>) {
    invokes(ctx, |i, env, fx| i.resume(env, msg, fx));
}

/// An invoke message from another shard.
pub fn invoke_msg(ctx: &mut ShardCtx, msg: InvokeMsg) {
    invoke_resume(ctx, msg, None);
}

/// `node.invoke.result` from the node on connection `conn`; returns the node's answer.
pub fn invoke_result(ctx: &mut ShardCtx, conn: u64, p: &Value) -> Value {
    let mut answer = Value::Null;
    invokes(ctx, |i, _, fx| answer = i.result(conn, p, fx));
    answer
}

/// A connection on this shard closed (node or caller).
pub fn invoke_closed(ctx: &mut ShardCtx, conn: u64) {
    invokes(ctx, |i, env, fx| i.closed(env, conn, fx));
}

const CRON: Owner<cron::Resume, cron::Action> = Owner {
    resume: cron_resume,
    bus: None,
    act: cron_act,
};

/// Runs one step of the cron service with the shard's clock and config, then applies it.
fn cron_step(
    ctx: &mut ShardCtx,
    step: impl FnOnce(&mut cron::CronService, &cron::Env, &mut Effects<cron::Resume, cron::Action>),
) {
    let (config, globals) = (ctx.config.clone(), ctx.globals.clone());
    let env = cron::Env {
        shard: ctx.id,
        now_ms: now_ms(),
        config: &config,
        shutting_down: ctx.shutting_down,
        instance_id: &globals.instance_id,
    };
    let mut fx = Effects::default();
    step(&mut ctx.cron, &env, &mut fx);
    apply(ctx, fx, &CRON);
}

/// On the cron owner at start: load the jobs and start ticking (in a cluster, only once
/// this host is the one that runs cron: [`cron_leadership`]).
pub fn cron_start(ctx: &mut ShardCtx) {
    if ctx.id == ctx.placement().cron() && ctx.cron_here() {
        cron_step(ctx, |c, _, fx| c.start(fx));
    }
}

/// The cluster view changed: the cron owner starts running jobs when this host has become
/// the one that runs cron, and stops when another host has.
pub fn cron_leadership(ctx: &mut ShardCtx) {
    if ctx.id != ctx.placement().cron() {
        return;
    }
    match (ctx.cron_here(), ctx.cron.leading()) {
        (true, false) => {
            tracing::info!("this host runs the cluster's cron jobs now");
            cron_step(ctx, |c, _, fx| c.start(fx));
        }
        (false, true) => {
            tracing::info!("another cluster host runs the cron jobs now");
            cron_step(ctx, |c, _, fx| c.stop(fx));
        }
        _ => {}
    }
}

/// Sends a `cron.*` request to the cron owner (or serves it here); in a cluster, to the
/// host that runs cron.
pub fn route_cron(ctx: &mut ShardCtx, call: cron::CronCall) {
    if let Some(host) = ctx.leader_host() {
        let caller = call.caller.clone();
        let out = crate::cluster::Out::Cron {
            host: host.clone(),
            call,
        };
        return to_host(ctx, host, &caller, out, "cron");
    }
    let owner = ctx.placement().cron();
    ctx.route(owner, call, cron_call, BusMsg::Cron);
}

/// Serves a `cron.*` request on the cron owner.
pub fn cron_call(ctx: &mut ShardCtx, call: cron::CronCall) {
    cron_step(ctx, |c, env, fx| c.handle(env, call, fx));
}

fn cron_resume(ctx: &mut ShardCtx, r: cron::Resume, res: Option<OpResult>) {
    cron_step(ctx, |c, env, fx| c.resume(env, r, res, fx));
}

fn cron_answered(ctx: &mut ShardCtx, token: u64, answer: Result<Value, ErrorShape>) {
    cron_resume(ctx, cron::Resume::Answered { token, answer }, None);
}

fn cron_act(ctx: &mut ShardCtx, a: cron::Action) {
    match a {
        cron::Action::Wake(text) => {
            ctx.record_system_event(text.clone());
            ctx.sender.to_others(BusMsg::SystemEvent(text));
        }
        cron::Action::Chat(caller, req) => chat_as(ctx, caller, req),
    }
}

const CHAT: Owner<owner::Resume, owner::Action> = Owner {
    resume: chat_resume,
    bus: None,
    act: chat_act,
};

/// Runs one step of this shard's chat owner with its clock and config, then applies it.
fn chat_step(
    ctx: &mut ShardCtx,
    step: impl FnOnce(&mut owner::ChatOwner, &owner::Env, &mut Effects<owner::Resume, owner::Action>),
) {
    let config = ctx.config.clone();
    let env = owner::Env {
        now_ms: now_ms(),
        config: &config,
    };
    let mut fx = Effects::default();
    step(&mut ctx.chat, &env, &mut fx);
    apply(ctx, fx, &CHAT);
}

/// A session request on the session's owner.
pub fn session_call(ctx: &mut ShardCtx, call: SessionCall) {
    chat_step(ctx, |o, env, fx| o.handle(env, call, fx));
}

/// Output of a runtime for a run this shard owns.
pub fn run_output(ctx: &mut ShardCtx, run_id: &Arc<str>, out: Output) {
    chat_step(ctx, |o, env, fx| o.output(env, run_id, out, fx));
}

/// Output of a model call made for the worker of a run this shard owns.
pub fn inference_output(
    ctx: &mut ShardCtx,
    run_id: &Arc<str>,
    turn_id: &str,
    out: crate::worker::inference::InferenceOut,
) {
    chat_step(ctx, |o, env, fx| {
        o.worker_inference(env, run_id, turn_id, out, fx)
    });
}

/// A sink that feeds a runtime's outputs to this shard's chat owner through its inbox.
fn owner_sink(ctx: &ShardCtx) -> Sink {
    let (bus, shard) = (ctx.sender.bus().clone(), ctx.id);
    Sink::new(move |run_id: &Arc<str>, out| {
        let out = Box::new(out);
        let run_id = run_id.clone();
        bus.push_waiting(shard, BusMsg::RunOutput { run_id, out });
    })
}

/// Launches the `openclaw worker` of a turn: mints its credential, writes its envelope, and
/// hands it to the process supervisor (off the shards).
fn launch_worker(ctx: &mut ShardCtx, l: owner::WorkerLaunch) {
    let credential = ctx.globals.worker_minter.mint(&l.grant);
    let port = ctx.globals.port.load(std::sync::atomic::Ordering::Relaxed);
    let host = match ctx.config.bind {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let url = format!("ws://{host}:{port}{}", crate::http::head::WORKER_PATH);
    let workspace = l.config.workspace.display().to_string();
    let envelope = crate::worker::envelope::build(&crate::worker::envelope::Launch {
        url: &url,
        grant: &l.grant,
        credential: &credential,
        agent_id: &l.agent_id,
        prompt: &l.prompt,
        workspace: &workspace,
        provider: "openai",
        model: &l.config.provider.model,
        system_prompt: l.config.provider.system_prompt.as_deref(),
        history: &l.history,
        base_leaf: l.base_leaf.as_deref(),
        tools: &l.config.tools,
    });
    let sink = owner_sink(ctx);
    ctx.workers
        .processes
        .launch(crate::agent::worker_pool::Launch {
            envelope: envelope.to_string().into_bytes(),
            agent_id: l.agent_id,
            config: l.config,
            run_id: l.run_id,
            cancel: l.cancel,
            stop: l.stop,
            sink,
        });
}

/// Makes a model call for a worker on the provider pool; its output comes back through this
/// shard's inbox.
fn infer(ctx: &mut ShardCtx, r: owner::InferRequest) {
    let (bus, shard) = (ctx.sender.bus().clone(), ctx.id);
    let (run_id, turn_id) = (r.run_id.clone(), r.turn_id.clone());
    let (cancel, run_cancel) = (r.cancel.clone(), r.run_cancel.clone());
    ctx.workers.infer(crate::agent::openai::InferJob {
        config: r.provider,
        context: r.context,
        options: r.options,
        cancelled: Box::new(move || {
            cancel.load(std::sync::atomic::Ordering::Acquire)
                || run_cancel.load(std::sync::atomic::Ordering::Acquire)
        }),
        report: Box::new(move |out| {
            let m = Box::new((run_id.clone(), turn_id.clone(), out));
            bus.push_waiting(shard, BusMsg::Inference(m));
        }),
    });
}

fn chat_resume(ctx: &mut ShardCtx, r: owner::Resume, res: Option<OpResult>) {
    chat_step(ctx, |o, env, fx| o.resume(env, r, res, fx));
}

fn chat_act(ctx: &mut ShardCtx, a: owner::Action) {
    match a {
        owner::Action::StartTurn(rt, turn) => start_turn(ctx, rt, turn),
        owner::Action::LaunchWorker(l) => launch_worker(ctx, *l),
        owner::Action::Infer(r) => infer(ctx, *r),
        owner::Action::Note(note) => {
            ctx.sender.to_others(BusMsg::RunNote(note.clone()));
            if let Some(c) = &ctx.cluster {
                c.send(crate::cluster::Out::Note(note.clone()));
            }
            run_note(ctx, note);
        }
        owner::Action::ForwardReply {
            route,
            key,
            run_id,
            text,
        } => crate::channels::hub::forward_reply(&ctx.channels, &route, &key, &run_id, &text),
    }
}

/// Starts an agent runtime on a turn. The echo agent is played on this shard's timers, its
/// outputs fed straight to the owner; provider runtimes run on the worker pool and report
/// through this shard's inbox.
fn start_turn(ctx: &mut ShardCtx, rt: RuntimeConfig, turn: Turn) {
    match rt {
        RuntimeConfig::Echo {
            delay_ms,
            chunk_chars,
        } => {
            let outputs = echo::Echo {
                delay_ms,
                chunk_chars,
            }
            .outputs(&turn);
            let me = ctx.me.clone();
            crate::rt::spawn(async move {
                for out in outputs {
                    // The delay comes before each chunk; `Done` follows the last at once.
                    if delay_ms > 0 && matches!(out, Output::Delta(_)) {
                        super::timer::sleep_ms(delay_ms).await;
                    }
                    if turn.cancelled() {
                        return;
                    }
                    let Some(ctx) = me.upgrade() else { return };
                    run_output(&mut ctx.borrow_mut(), &turn.run_id, out);
                }
            });
        }
        RuntimeConfig::OpenAi(config) => {
            let sink = owner_sink(ctx);
            let workers = ctx.workers.clone();
            openai::OpenAi { config, workers }.start(turn, sink);
        }
        // The owner launches worker runs itself (`Action::LaunchWorker`).
        RuntimeConfig::Worker(_) => {
            let f = crate::agent::Failure {
                kind: None,
                message: "a worker agent's turn cannot start as a plain runtime".into(),
                detail: None,
            };
            run_output(ctx, &turn.run_id, Output::Failed(f));
        }
    }
}

/// Runs a chat-layer request from connection `conn` on this shard.
pub fn chat_request(ctx: &mut ShardCtx, conn: u64, req_id: String, req: crate::chat::ChatRequest) {
    let caller = Caller::conn(ctx.id, conn, req_id);
    chat_as(ctx, caller, req);
}

/// Runs a chat-layer request for `caller` (a connection, or an owner waiting in-process).
pub fn chat_as(ctx: &mut ShardCtx, caller: Caller, req: crate::chat::ChatRequest) {
    match req {
        crate::chat::ChatRequest::Session(key, op) => forward(ctx, caller, key, op),
        crate::chat::ChatRequest::Wait { run_id, timeout_ms } => {
            run_wait(ctx, caller, &run_id, timeout_ms)
        }
        crate::chat::ChatRequest::AbortRun { run_id } => match ctx.run_index.session_of(&run_id) {
            Some(key) => {
                let agent_id = key
                    .strip_prefix("agent:")
                    .and_then(|r| r.split(':').next())
                    .unwrap_or("main")
                    .to_owned();
                let key = crate::chat::key::SessionKey {
                    canonical: key.to_string(),
                    agent_id,
                };
                forward(
                    ctx,
                    caller,
                    key,
                    crate::chat::SessionOp::Abort {
                        run_id: Some(run_id),
                        via: crate::chat::AbortVia::Sessions,
                    },
                )
            }
            None => {
                let none = serde_json::json!({"ok": true, "abortedRunId": null, "status": "no-active-run"});
                ctx.answer(&caller, Answer::Ok(none));
            }
        },
    }
}

fn forward(
    ctx: &mut ShardCtx,
    caller: Caller,
    key: crate::chat::key::SessionKey,
    op: crate::chat::SessionOp,
) {
    route_session(ctx, SessionCall { caller, key, op });
}

/// Sessions whose owner host a shard remembers at most; past it the table starts over (an
/// entry is only a shortcut: the link looks the owner up again).
const MAX_KNOWN_OWNERS: usize = 65_536;

/// Sends a session call to its owner: in a cluster first to the owner host (asking the link
/// which host that is when this shard does not know), then to the owner shard there.
fn route_session(ctx: &mut ShardCtx, call: SessionCall) {
    if let Some(c) = &ctx.cluster {
        match ctx.session_owners.get(&call.key.canonical) {
            Some(h) if *h == c.host => {}
            Some(h) => {
                let (host, caller) = (h.clone(), call.caller.clone());
                let what = format!("session {}", call.key.canonical);
                let out = crate::cluster::Out::Session {
                    host: host.clone(),
                    call: Box::new(call),
                };
                return to_host(ctx, host, &caller, out, &what);
            }
            None => {
                if let Err(call) = c.claim(ctx.id, Box::new(call)) {
                    let e =
                        ErrorShape::new(code::UNAVAILABLE, "the cluster link is overloaded; retry")
                            .retryable(true);
                    ctx.reply_err(&call.caller, e);
                }
                return;
            }
        }
    }
    let owner = ctx.placement().session(&call.key.canonical);
    ctx.route(owner, call, session_call, BusMsg::SessionCall);
}

/// The link's answer to a claim: remember the owner host and go on.
pub fn session_owner(ctx: &mut ShardCtx, host: Result<Arc<str>, String>, call: SessionCall) {
    match host {
        Ok(host) => {
            if ctx.session_owners.len() >= MAX_KNOWN_OWNERS {
                ctx.session_owners.clear();
            }
            ctx.session_owners.insert(call.key.canonical.clone(), host);
            route_session(ctx, call);
        }
        Err(why) => {
            let e = ErrorShape::new(code::UNAVAILABLE, why).retryable(true);
            ctx.reply_err(&call.caller, e);
        }
    }
}

/// Sends a connection's request (`out`) to cluster host `host`, which serves `what`; its
/// answer comes back as a response frame, and if `host` dies first the request is answered
/// here ([`ShardCtx::track_forward`]). An in-process caller (a cron run, an inbound channel
/// message) has no address on another host: it is refused, naming the host.
fn to_host(
    ctx: &mut ShardCtx,
    host: Arc<str>,
    caller: &Caller,
    out: crate::cluster::Out,
    what: &str,
) {
    let Caller::Conn { conn, req_id, .. } = caller else {
        let e = ErrorShape::new(
            code::UNAVAILABLE,
            format!("{what} is served by cluster host {host}; run it there"),
        );
        return ctx.reply_err(caller, e);
    };
    ctx.track_forward(*conn, req_id, host);
    if let Some(c) = &ctx.cluster {
        c.send(out);
    }
}

/// Serves a request a method handler routed (the caller's connection is no longer borrowed).
pub fn routed(ctx: &mut ShardCtx, caller: Caller, r: Routed) {
    match r {
        Routed::Approval(mut op) => {
            if let ApprovalOp::Request { from, .. } = &mut op {
                *from = (caller.shard(), caller.conn_id().unwrap_or_default());
            }
            route_approval(ctx, ApprovalCall { caller, op });
        }
        Routed::Send {
            key,
            fingerprint,
            channel,
            msg,
        } => {
            let owner = ctx.placement().send_key(&key);
            let call = SendCall {
                caller,
                key,
                fingerprint,
                channel,
                msg,
            };
            ctx.route(owner, call, send, BusMsg::ChannelSend);
        }
        Routed::Cron { method, params } => route_cron(
            ctx,
            cron::CronCall {
                caller,
                method,
                params,
            },
        ),
        Routed::Invoke(req) => invoke_start(ctx, caller, req),
        Routed::InvokeResult(p) => {
            let conn = caller.conn_id().unwrap_or_default();
            let answer = invoke_result(ctx, conn, &p);
            ctx.answer(&caller, Answer::Ok(answer));
        }
        Routed::NodeStats { node_id, stats } => {
            ctx.node_stats(&node_id, stats);
            let v = serde_json::json!({"ok": true, "event": "node.host.stats", "handled": true, "reason": "updated"});
            ctx.answer(&caller, Answer::Ok(v));
        }
        Routed::PrefsSet { op, keys } => ctx.spawn_store(op, move |ctx, r| match r {
            OpResult::Json(v) => {
                let changed = v["status"] == "ok";
                ctx.answer(&caller, Answer::Ok(v));
                if changed {
                    ctx.broadcast(EventTemplate::new(
                        "users.prefs.changed",
                        &serde_json::json!({"profileId": crate::chat::row::OWNER_ID, "keys": keys}),
                        None,
                    ));
                }
            }
            OpResult::Invalid(m) => ctx.reply_err(&caller, ErrorShape::invalid(m)),
            other => ctx.reply_err(
                &caller,
                ErrorShape::new(
                    crate::proto::errors::code::UNAVAILABLE,
                    format!("preferences not saved: {other:?}"),
                )
                .retry_after(1000),
            ),
        }),
    }
}
