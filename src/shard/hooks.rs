//! Serves inbound webhooks under `hooks.path` ([`crate::hooks`] decides) in the original's
//! order: `?token=` refused, `POST` only, the hook token (its own limiter: 20 failures a
//! minute lock the address, loopback included), the sub-path, the bounded body, then the plan.
//! A wake queues a system event on every shard; an agent run is a normal chat turn in its
//! `hook:` session, answered at admission and followed to its end by a task on this shard
//! (it aborts the run at `timeoutSeconds` and queues `Hook <name>: <why>` when the run
//! fails), which a caller asking `waitForCompletion` waits for.

use std::{
    net::IpAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use super::{
    api::{read_body_bytes, BodyError, Next},
    conn::Shared,
    tap::RunTap,
    tls_io::Sock,
};
use crate::{
    auth::{
        ratelimit::{Gate, Scope},
        secret::secret_eq,
    },
    channels::ReplyRoute,
    chat::{AbortVia, ChatRequest, SendKind, SendReq, SessionOp},
    hooks::{
        plan::{self, AgentRun, HookEnv, HookRequest, Plan, Wake},
        HooksConfig,
    },
    http::{
        api::{self, ApiHead},
        Response,
    },
    state::now_ms,
};

/// How long the session's owner may take to accept a hook run (the original's admission
/// timeout).
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a followed run may go without an event when it set no `timeoutSeconds`.
const RUN_IDLE: Duration = Duration::from_secs(600);
/// How long a fan-out waits for its runs to be admitted before answering (the rest go on
/// being admitted in the background).
const FAN_OUT_DEADLINE: Duration = Duration::from_secs(8);
/// How long a fan-out's run may wait for admission in the background (items sharing a
/// session run one after another).
const BACKGROUND_ADMISSION: Duration = Duration::from_secs(600);
fn failed(status: &'static str, error: &str) -> Response {
    Response::json(status, &json!({"ok": false, "error": error}))
}

/// Serves one hook request and writes its answer.
pub async fn serve(
    shared: &Shared,
    sock: &Sock<'_>,
    ip: IpAddr,
    head: &ApiHead,
    leftover: Vec<u8>,
    authenticated: &mut dyn FnMut(),
) -> Next {
    let h = head;
    let unread = h.chunked || h.content_length.is_some_and(|n| n > 0);
    let (hooks, attributed) = {
        let ctx = shared.borrow();
        let attributed = crate::http::proxy::attribute(ip, &h.forwarded, &ctx.config.proxies);
        (ctx.config.hooks.clone(), attributed)
    };
    // Turned off between the head and now: as if they never were.
    let Some(hooks) = hooks.filter(|c| c.owns(&h.path)) else {
        return super::api::respond(
            sock,
            api::with_common(crate::http::not_found()),
            h,
            leftover,
            unread,
        )
        .await;
    };
    let Some(ip) = attributed.ip() else {
        return super::api::respond(
            sock,
            api::with_common(api::proxy_attribution_required()),
            h,
            leftover,
            unread,
        )
        .await;
    };
    let query = query_pairs(&h.query);
    // Any `token` key, however it is encoded (or mis-encoded).
    let token_in_query = h.query.split('&').any(|p| {
        let k = p.split('=').next().unwrap_or_default();
        k == "token"
            || crate::http::control_ui::percent_decode(&k.replace('+', " ")).as_deref()
                == Some("token")
    });
    if token_in_query {
        let r = Response::text("400 Bad Request", "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).");
        return super::api::respond(sock, api::with_common(r), h, leftover, unread).await;
    }
    if h.method != "POST" {
        let r =
            Response::text("405 Method Not Allowed", "Method Not Allowed").header("Allow", "POST");
        return super::api::respond(sock, api::with_common(r), h, leftover, unread).await;
    }
    let token = hook_token(head);
    if let Err(r) = check_token(shared, &hooks, ip, token, &h.path) {
        return super::api::respond(sock, api::with_common(r), h, leftover, unread).await;
    }
    authenticated();
    let sub_path = h.path[hooks.base_path.len()..].trim_start_matches('/');
    if sub_path.is_empty() {
        return super::api::respond(
            sock,
            api::with_common(Response::text("404 Not Found", "Not Found")),
            h,
            leftover,
            unread,
        )
        .await;
    }
    let (body, rest) = match read_body_bytes(sock, h, leftover, hooks.max_body(sub_path)).await {
        Ok(b) => b,
        Err(e) => {
            let r = match e {
                BodyError::TooLarge => failed("413 Payload Too Large", "payload too large"),
                BodyError::Timeout => failed("408 Request Timeout", "request body timeout"),
                BodyError::Chunked => failed("411 Length Required", "Content-Length is required"),
                BodyError::Expectation => Response::text("417 Expectation Failed", ""),
            };
            return super::api::respond(sock, api::with_common(r), h, Vec::new(), true).await;
        }
    };
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                let r = failed("400 Bad Request", &e.to_string());
                return super::api::respond(sock, api::with_common(r), h, rest, false).await;
            }
        }
    };
    // A reload between the token check and now changes what the request means.
    if shared.borrow().config.hooks.as_ref() != Some(&hooks) {
        let r = failed("409 Conflict", "hook configuration changed; retry request");
        return super::api::respond(sock, api::with_common(r), h, rest, false).await;
    }
    let r = run_plan(
        shared,
        &hooks,
        head,
        sub_path,
        &payload,
        &query,
        token.unwrap_or_default(),
    )
    .await;
    super::api::respond(sock, api::with_common(r), h, rest, false).await
}

/// `Authorization: Bearer <t>` (non-empty), else `X-OpenClaw-Token`.
fn hook_token(head: &ApiHead) -> Option<&str> {
    crate::http::bearer_value(head.authorization.as_deref()).or_else(|| {
        head.header("x-openclaw-token")
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// The token check: a match always passes (and clears the address's failures); a mismatch
/// from a locked address is 429, otherwise it counts and is 401.
fn check_token(
    shared: &Shared,
    hooks: &HooksConfig,
    ip: IpAddr,
    token: Option<&str>,
    path: &str,
) -> Result<(), Response> {
    let mut ctx = shared.borrow_mut();
    let now = now_ms();
    if token.is_some_and(|t| secret_eq(&hooks.token, t)) {
        if ctx.hook_limiter.record_success(ip) {
            ctx.sender.to_others(crate::bus::BusMsg::AuthSuccess {
                ip,
                scope: Scope::Hooks,
            });
        }
        return Ok(());
    }
    if let Gate::Locked { retry_after_ms } = ctx.hook_limiter.gate(ip, now) {
        if ctx.globals.log_allowed() {
            tracing::warn!(%ip, "hook auth throttled");
        }
        let secs = retry_after_ms.div_ceil(1000).max(1);
        return Err(Response::text("429 Too Many Requests", "Too Many Requests")
            .header("Retry-After", secs.to_string()));
    }
    ctx.hook_limiter.record_failure(ip, now);
    ctx.sender.to_others(crate::bus::BusMsg::AuthFailure {
        ip,
        at_ms: now,
        scope: Scope::Hooks,
    });
    if ctx.globals.log_allowed() {
        tracing::info!(%ip, path, "hook request refused: bad or missing hook token");
    }
    Err(Response::text("401 Unauthorized", "Unauthorized"))
}

/// `a=1&b=x+y` decoded (`+` is a space); undecodable pairs are skipped.
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| crate::http::control_ui::percent_decode(&s.replace('+', " "));
            Some((d(k)?, d(v)?))
        })
        .collect()
}

async fn run_plan(
    shared: &Shared,
    hooks: &HooksConfig,
    head: &ApiHead,
    sub_path: &str,
    payload: &Value,
    query: &[(String, String)],
    token: &str,
) -> Response {
    let now_iso = crate::cron::schedule::ms_to_iso(now_ms());
    let decided = {
        let ctx = shared.borrow();
        let agents: Vec<&str> = ctx.config.agents.iter().map(|a| a.id.as_str()).collect();
        let channels = ctx.channels.ids();
        let env = HookEnv {
            hooks,
            agents: &agents,
            default_agent: ctx.config.default_agent(),
            channels: &channels,
        };
        let req = HookRequest {
            sub_path,
            payload,
            headers: &head.headers,
            query,
            now_iso: &now_iso,
            token,
        };
        crate::panic_policy::contain(|| {
            plan::plan(&req, &env, &mut || uuid::Uuid::new_v4().to_string())
        })
    };
    let decided = match decided {
        Ok(d) => d,
        Err(panic) => {
            tracing::error!(panic, "hook mapping failed");
            return failed("500 Internal Server Error", "hook mapping failed");
        }
    };
    let plan = match decided {
        Ok(p) => p,
        Err(msg) => return failed("400 Bad Request", &msg),
    };
    match plan {
        Plan::NotFound => Response::text("404 Not Found", "Not Found"),
        Plan::NoContent => Response::new("204 No Content", "text/plain; charset=utf-8", ""),
        Plan::Wake(w) => {
            let outcome = wake(shared, &w);
            Response::json(
                "200 OK",
                &json!({"ok": true, "mode": w.mode(), "eventOutcome": outcome}),
            )
        }
        Plan::Agent { run, wait } => {
            let (status, mut body, done) = admit(shared, &run, ADMISSION_TIMEOUT).await;
            if let (true, Some(done)) = (wait, done) {
                body["completion"] = done.await;
            }
            Response::json(status, &body)
        }
        Plan::Mapped {
            wakes,
            runs,
            fan_out,
            dropped,
        } => mapped(shared, sub_path, wakes, runs, fan_out, dropped).await,
    }
}

/// Queues a system event on every shard; `coalesced` when it repeats the newest one.
fn wake(shared: &Shared, w: &Wake) -> &'static str {
    let mut ctx = shared.borrow_mut();
    if ctx.queued_system_events.back() == Some(&w.text) {
        return "coalesced";
    }
    ctx.record_system_event(w.text.clone());
    ctx.sender
        .to_others(crate::bus::BusMsg::SystemEvent(w.text.clone()));
    if ctx.globals.log_allowed() {
        tracing::info!(mode = w.mode(), "hook wake queued a system event");
    }
    "queued"
}

/// A run's end as the original's `completion`.
type Completion = std::pin::Pin<Box<dyn std::future::Future<Output = Value>>>;

/// Starts a run (its follower first, so no event passes it by). Returns the answer's status
/// and body, and, once admitted, the follower's completion.
async fn admit(
    shared: &Shared,
    run: &AgentRun,
    admission: Duration,
) -> (&'static str, Value, Option<Completion>) {
    let tap = RunTap::new(&run.session.canonical, &run.run_id);
    shared.borrow_mut().run_taps.push(tap.clone());
    let guard = TapGuard {
        shared: shared.clone(),
        tap: tap.clone(),
    };
    let send = SendReq {
        // Behind the session's active run, never interrupting it (the original's per-session
        // hook queue).
        queue: true,
        kind: SendKind::Chat,
        fingerprint: run.fingerprint,
        message: run.prompt.clone(),
        run_id: run.run_id.clone(),
        key_given: true,
        reply_to: run.delivery.as_ref().map(|d| ReplyRoute {
            channel: d.channel,
            account_id: d.account_id.clone().unwrap_or_else(|| "default".into()),
            to: d.to.clone(),
        }),
    };
    if shared.borrow().globals.log_allowed() {
        tracing::info!(session = ?run.session.canonical, run = %run.run_id, name = ?run.name, "hook agent run");
    }
    let op = ChatRequest::Session(run.session.clone(), SessionOp::Send(send));
    let err = |status: &'static str, error: &str| {
        (
            status,
            json!({"ok": false, "error": error, "runId": run.run_id}),
            None,
        )
    };
    let answer = match super::conn::ask_chat(shared, op, admission).await {
        None => {
            // Too late (it waits behind other runs of its session, or the owner is stuck):
            // cancel it, waiting or started.
            abort(shared, run);
            return err(
                "503 Service Unavailable",
                "hook agent run did not start before admission timeout",
            );
        }
        Some(Err(e)) if e.code == crate::proto::errors::code::INVALID_REQUEST => {
            return err("409 Conflict", &e.message);
        }
        // Its session's queue is full: busy, not broken.
        Some(Err(e)) if e.message.contains("turns waiting") => {
            return err("503 Service Unavailable", &e.message);
        }
        Some(Err(e)) => {
            if shared.borrow().globals.log_allowed() {
                tracing::warn!(run = %run.run_id, error = %e.message, "hook agent run refused");
            }
            return err(
                "502 Bad Gateway",
                "hook agent run failed before entering the agent runner",
            );
        }
        Some(Ok(v)) => v,
    };
    let ok = json!({"ok": true, "runId": run.run_id});
    // A replay of a run that already ended: its end comes from the run index, not the tap.
    let replay = matches!(answer["status"].as_str(), Some("ok" | "timeout"));
    let follow = follow(shared.clone(), guard, run.clone(), replay);
    // Followed on its own task whether or not this caller waits: the run outlives the request.
    let done = crate::store::oneshot::Oneshot::new();
    let tx = done.clone();
    crate::rt::spawn(async move { tx.complete(follow.await) });
    (
        "200 OK",
        ok,
        Some(Box::pin(async move { done.wait().await })),
    )
}

/// Removes a run's tap when its follower ends (however it ends).
struct TapGuard {
    shared: Shared,
    tap: Rc<RunTap>,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        if let Ok(mut ctx) = self.shared.try_borrow_mut() {
            ctx.run_taps.retain(|t| !Rc::ptr_eq(t, &self.tap));
        }
    }
}

fn abort(shared: &Shared, run: &AgentRun) {
    let mut ctx = shared.borrow_mut();
    let (caller, token, _) = ctx.http_waiter();
    ctx.http_waiters.remove(&token);
    let op = SessionOp::Abort {
        run_id: Some(run.run_id.clone()),
        via: AbortVia::Chat,
    };
    super::drive::chat_as(
        &mut ctx,
        caller,
        ChatRequest::Session(run.session.clone(), op),
    );
}

/// Follows a run to its end: aborts it past `timeoutSeconds`, queues `Hook <name>: <why>`
/// when it did not end well, and returns the original's `completion`.
async fn follow(shared: Shared, guard: TapGuard, run: AgentRun, replay: bool) -> Value {
    if replay {
        drop(guard);
        let wait = ChatRequest::Wait {
            run_id: run.run_id.clone(),
            timeout_ms: 1_000,
        };
        let status = match super::conn::ask_chat(&shared, wait, Duration::from_secs(5)).await {
            Some(Ok(v)) if v["status"] == "ok" => "ok",
            _ => "error",
        };
        return json!({"status": status});
    }
    let hard = run
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut text = String::new();
    let (status, why) = loop {
        let idle = Instant::now() + RUN_IDLE;
        let deadline = hard.map_or(idle, |h| h.min(idle));
        let Some(p) = guard.tap.next(deadline).await else {
            abort(&shared, &run);
            let why = if hard.is_some_and(|h| Instant::now() >= h) {
                "timed out"
            } else {
                "went silent"
            };
            break ("error", why.to_owned());
        };
        if let Some(t) = p["message"]["content"][0]["text"].as_str() {
            text = t.to_owned();
        }
        match p["state"].as_str().unwrap_or_default() {
            "final" => break ("ok", String::new()),
            "aborted" => break ("error", "aborted".to_owned()),
            "error" => {
                break (
                    "error",
                    p["errorMessage"]
                        .as_str()
                        .unwrap_or("agent run failed")
                        .to_owned(),
                )
            }
            _ => {}
        }
    };
    drop(guard);
    if status != "ok" {
        let mut ctx = shared.borrow_mut();
        let event = format!("Hook {}: {why}", run.name);
        ctx.record_system_event(event.clone());
        ctx.sender.to_others(crate::bus::BusMsg::SystemEvent(event));
    }
    if shared.borrow().globals.log_allowed() {
        tracing::info!(run = %run.run_id, status, "hook agent run completed");
    }
    let disposition = if text.trim().is_empty() {
        "empty"
    } else if text.trim() == "NO_REPLY" {
        "silent"
    } else {
        "visible"
    };
    json!({"status": status, "replyDisposition": disposition})
}

/// A mapping's wakes, then its runs: one run answers as `/agent` does, a fan-out with every
/// run id once all are admitted (or what is missing after [`FAN_OUT_DEADLINE`]).
async fn mapped(
    shared: &Shared,
    sub_path: &str,
    wakes: Vec<Wake>,
    runs: Vec<AgentRun>,
    fan_out: bool,
    dropped: usize,
) -> Response {
    let mut wake_outcome: Option<&'static str> = None;
    let mut mode = "now";
    for w in &wakes {
        let o = wake(shared, w);
        if wake_outcome.is_none() || o == "queued" {
            wake_outcome = Some(o);
        }
        mode = w.mode();
    }
    let with_wake = |mut v: Value| {
        if let Some(o) = wake_outcome {
            v["eventOutcome"] = json!(o);
        }
        v
    };
    if dropped > 0 && shared.borrow().globals.log_allowed() {
        tracing::warn!(
            sub_path,
            dropped,
            "hook mapping fan-out dropped items beyond the 200-item cap"
        );
    }
    if runs.is_empty() {
        return Response::json("200 OK", &with_wake(json!({"ok": true, "mode": mode})));
    }
    if !fan_out && runs.len() == 1 {
        let (status, body, _) = admit(shared, &runs[0], ADMISSION_TIMEOUT).await;
        return Response::json(status, &with_wake(body));
    }
    // Every item is admitted on its own task, at once: the answer reports what was admitted
    // by the deadline, and the rest carry on.
    let total = runs.len();
    let slots: Vec<_> = runs
        .into_iter()
        .map(|run| {
            let slot = crate::store::oneshot::Oneshot::new();
            let (tx, shared) = (slot.clone(), shared.clone());
            crate::rt::spawn(async move {
                let (status, body, _) = admit(&shared, &run, BACKGROUND_ADMISSION).await;
                tx.complete((status, body));
            });
            slot
        })
        .collect();
    let deadline = Instant::now() + FAN_OUT_DEADLINE;
    let mut settled = Vec::with_capacity(total);
    for slot in &slots {
        let left = deadline.saturating_duration_since(Instant::now());
        settled.push(crate::rt::timeout(left, slot.wait()).await);
    }
    if let [Some((status, body))] = &settled[..] {
        return Response::json(status, &with_wake(body.clone()));
    }
    let ids: Vec<&Value> = settled
        .iter()
        .flatten()
        .filter(|(s, _)| *s == "200 OK")
        .map(|(_, b)| &b["runId"])
        .collect();
    let failures: Vec<&(&'static str, Value)> = settled
        .iter()
        .flatten()
        .filter(|(s, _)| *s != "200 OK")
        .collect();
    let pending = settled.iter().filter(|s| s.is_none()).count();
    if failures.is_empty() && pending == 0 {
        let body = json!({"ok": true, "runId": ids[0], "runIds": ids, "dispatched": ids.len()});
        return Response::json("200 OK", &with_wake(body));
    }
    let errors: Vec<&Value> = failures.iter().take(5).map(|(_, b)| &b["error"]).collect();
    let mut body = json!({"ok": false,
        "error": format!("hook fan-out incomplete: {}/{total} dispatched, {} failed, {pending} pending", ids.len(), failures.len()),
        "runIds": ids});
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    let status = failures.first().map_or("503 Service Unavailable", |f| f.0);
    Response::json(status, &with_wake(body))
}
