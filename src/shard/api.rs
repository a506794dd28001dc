//! Serves the HTTP APIs ([`crate::http::api`] decides): the original's auth and scope checks,
//! the bounded body read, and the endpoints. A completion is a normal chat turn of the agent
//! the `model` names, run by the session's owner shard; its events reach this shard's fan-out
//! and are taken by a [`RunTap`], so the answer streams as the run does.

use std::{
    net::IpAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use super::{conn::Shared, tap::RunTap, tls_io::Sock};
use crate::{
    auth::{
        ratelimit::Gate,
        secret::{secret_eq, AuthMode},
    },
    chat::{key, AbortVia, ChatRequest, SendKind, SendReq, SessionOp},
    http::{
        api::{self, models, openai, ApiHead, ApiRoute, Endpoint},
        Response,
    },
    state::now_ms,
};

/// How long a whole body may take to arrive (the original's 408): a deadline per read would
/// let a client trickle a byte at a time and hold the connection for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the chat layer may take to accept a turn.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a run may go without an event before the request gives up on it (and aborts it).
const RUN_IDLE: Duration = Duration::from_secs(600);
/// How long one write to the caller may wait for room.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the connection does next.
pub enum Next {
    /// Read the next request; these bytes already arrived.
    KeepAlive(Vec<u8>),
    Close,
}

/// Serves one API request and writes its answer.
pub async fn serve(
    shared: &Shared,
    sock: &Sock<'_>,
    ip: IpAddr,
    head: &ApiHead,
    leftover: Vec<u8>,
    authenticated: &mut dyn FnMut(),
) -> Next {
    let endpoints = shared.borrow().config.http;
    // Answered before its body is read, a request with one ends the connection (its body
    // must never be taken for the next request).
    let unread = head.chunked || head.content_length.is_some_and(|n| n > 0);
    let endpoint = match api::route(head, endpoints) {
        ApiRoute::Done(r) => return respond(sock, r, head, leftover, unread).await,
        ApiRoute::Serve(e) => e,
    };
    // Whose request: behind a trusted proxy the client it names; forwarded headers that
    // cannot be attributed are refused before auth.
    let attributed = {
        let ctx = shared.borrow();
        crate::http::proxy::attribute(ip, &head.forwarded, &ctx.config.proxies)
    };
    let peer = ip;
    let Some(ip) = attributed.ip() else {
        let r = api::proxy_attribution_required();
        return respond(sock, r, head, leftover, unread).await;
    };
    let scopes = match authorize(shared, ip, head, &endpoint, (peer, attributed)) {
        Ok(s) => s,
        Err(r) => return respond(sock, r, head, leftover, unread).await,
    };
    // An authenticated caller no longer counts against its address's pre-auth budget (a
    // streamed completion may take minutes).
    authenticated();
    if !api::scopes_allow(&scopes, endpoint.scope()) {
        let r = api::missing_scope(endpoint.scope());
        return respond(sock, r, head, leftover, unread).await;
    }
    let endpoint_reads_no_body = endpoint.max_body() == 0;
    let (body, rest) = if endpoint.max_body() > 0 {
        match read_body(sock, head, leftover, endpoint.max_body()).await {
            Ok(b) => b,
            Err(r) => return respond(sock, r, head, Vec::new(), true).await,
        }
    } else {
        // A body where none is read (`GET`, kill) closes the connection after the answer.
        (Value::Null, leftover)
    };
    let r = match endpoint {
        Endpoint::ChatCompletions => return completion(shared, sock, head, &body, rest).await,
        Endpoint::Responses => return responses(shared, sock, head, &body, rest).await,
        Endpoint::Models | Endpoint::Model(_) => models_answer(shared, &endpoint),
        Endpoint::ToolsInvoke => tools_invoke(shared, &body),
        Endpoint::History(k) => history(shared, head, &k).await,
        Endpoint::Kill(k) => kill(shared, &k).await,
    };
    respond(sock, r, head, rest, unread && endpoint_reads_no_body).await
}

fn models_answer(shared: &Shared, endpoint: &Endpoint) -> Response {
    let ctx = shared.borrow();
    let agents: Vec<&str> = ctx.config.agents.iter().map(|a| a.id.as_str()).collect();
    let default = ctx.config.default_agent();
    match endpoint {
        Endpoint::Model(id) => models::detail(id, &agents, default),
        _ => models::list(&agents, default),
    }
}

/// Writes a whole response; keeps the connection when the client and the answer allow.
pub(super) async fn respond(
    sock: &Sock<'_>,
    mut r: Response,
    head: &ApiHead,
    rest: Vec<u8>,
    close: bool,
) -> Next {
    r.close |= close || head.close;
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let mut bytes = r.encode_head();
    bytes.extend_from_slice(r.body_bytes());
    if sock.write_all(&bytes, deadline).await.is_err() || r.close {
        return Next::Close;
    }
    Next::KeepAlive(rest)
}

/// The original's gateway auth for these routes: forwarded headers from an untrusted peer are
/// refused, a locked-out address gets 429, then `Authorization: Bearer` must carry the shared
/// secret (with `auth: none`, a browser `Origin` must be allowed). Returns the caller's scopes.
fn authorize(
    shared: &Shared,
    ip: IpAddr,
    head: &ApiHead,
    endpoint: &Endpoint,
    (peer, attributed): (IpAddr, crate::http::proxy::Attribution),
) -> Result<Vec<String>, Response> {
    let mut ctx = shared.borrow_mut();
    let now = now_ms();
    if let Gate::Locked { retry_after_ms } = ctx.limiter.gate(ip, now) {
        return Err(api::rate_limited(retry_after_ms));
    }
    let given = crate::http::bearer_value(head.authorization.as_deref());
    let secret = match &ctx.config.auth {
        AuthMode::TrustedProxy(tp) => {
            let header = |n: &str| head.header(n).map(str::to_owned);
            let proxied = crate::auth::trusted_proxy::authorize(
                tp,
                &ctx.config.proxies,
                peer,
                attributed,
                &header,
            )
            .and_then(|user| match &head.origin {
                Some(o)
                    if !origin_allowed(&ctx.config.allowed_origins, o, head.host.as_deref()) =>
                {
                    Err("trusted_proxy_origin_not_allowed".to_owned())
                }
                _ => Ok(user),
            });
            match proxied {
                Ok(user) => {
                    if ctx.globals.log_allowed() {
                        tracing::debug!(%user, path = %head.path, "HTTP API request from a proxy user");
                    }
                    return Ok(api::header_scopes(head.scopes.as_deref()));
                }
                // A local client connecting directly may use the password instead.
                Err(_)
                    if tp.password.is_some() && peer.is_loopback() && !head.forwarded.present =>
                {
                    tp.password.clone().unwrap_or_default()
                }
                Err(reason) => {
                    if ctx.globals.log_allowed() {
                        tracing::info!(%peer, path = %head.path, reason, "HTTP API request refused by trusted-proxy auth");
                    }
                    return Err(api::unauthorized());
                }
            }
        }
        AuthMode::None => {
            if let Some(origin) = &head.origin {
                if !origin_allowed(&ctx.config.allowed_origins, origin, head.host.as_deref()) {
                    return Err(api::unauthorized());
                }
            }
            return Ok(api::header_scopes(head.scopes.as_deref()));
        }
        AuthMode::Token(t) | AuthMode::Password(t) => t.clone(),
    };
    match given {
        Some(g) if !secret.is_empty() && secret_eq(&secret, g) => {
            if ctx.limiter.record_success(ip) {
                ctx.sender.to_others(crate::bus::BusMsg::AuthSuccess {
                    ip,
                    scope: crate::auth::ratelimit::Scope::Gateway,
                });
            }
            // The shared secret is the CLI's operator — except for the kill route, whose
            // trusted-operator check grants a shared secret no scopes (the original's build).
            Ok(match endpoint {
                Endpoint::Kill(_) => Vec::new(),
                _ => api::header_scopes(None),
            })
        }
        given => {
            if given.is_some() {
                ctx.limiter.record_failure(ip, now);
                ctx.sender.to_others(crate::bus::BusMsg::AuthFailure {
                    ip,
                    at_ms: now,
                    scope: crate::auth::ratelimit::Scope::Gateway,
                });
            }
            if ctx.globals.log_allowed() {
                tracing::info!(%ip, path = %head.path, "HTTP API request refused: bad or missing bearer token");
            }
            Err(api::unauthorized())
        }
    }
}

/// A browser `Origin` the API routes accept: the request's own host, or one of
/// `gateway.controlUi.allowedOrigins`.
fn origin_allowed(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    let same_host = host.is_some_and(|h| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == h)
    });
    same_host || allowed.iter().any(|o| o == origin)
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// `Transfer-Encoding` framed (411).
    Chunked,
    /// Declared larger than the route takes (413, refused before reading).
    TooLarge,
    /// The body took longer than [`BODY_TIMEOUT`] (408), or the caller left.
    Timeout,
    /// An `Expect` other than `100-continue` (417).
    Expectation,
}

/// Reads a `Content-Length` framed body of at most `max` bytes within [`BODY_TIMEOUT`]
/// (answering `Expect: 100-continue` first). Returns the body and the bytes
/// after it.
pub async fn read_body_bytes(
    sock: &Sock<'_>,
    head: &ApiHead,
    mut got: Vec<u8>,
    max: usize,
) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
    if head.chunked {
        return Err(BodyError::Chunked);
    }
    let len = head.content_length.unwrap_or(0);
    if len > max {
        return Err(BodyError::TooLarge);
    }
    match head
        .expect
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => {}
        Some("100-continue") if got.len() < len => {
            let deadline = Instant::now() + WRITE_TIMEOUT;
            if sock
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", deadline)
                .await
                .is_err()
            {
                return Err(BodyError::Timeout);
            }
        }
        Some("100-continue") => {}
        Some(_) => return Err(BodyError::Expectation),
    }
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + BODY_TIMEOUT;
    while got.len() < len {
        let Some(n) = sock.recv_some(&mut chunk, deadline).await else {
            return Err(BodyError::Timeout);
        };
        got.extend_from_slice(&chunk[..n]);
    }
    let rest = got.split_off(len);
    Ok((got, rest))
}

/// Reads and parses the JSON body (an empty body is `{}`), answering failures as the
/// OpenAI-compatible routes do. Returns the value and the bytes after it.
async fn read_body(
    sock: &Sock<'_>,
    head: &ApiHead,
    got: Vec<u8>,
    max: usize,
) -> Result<(Value, Vec<u8>), Response> {
    let (body, rest) = read_body_bytes(sock, head, got, max)
        .await
        .map_err(|e| match e {
            BodyError::Chunked => api::error(
                "411 Length Required",
                "Content-Length is required",
                "invalid_request_error",
            ),
            BodyError::TooLarge => api::error(
                "413 Payload Too Large",
                "Payload too large",
                "invalid_request_error",
            ),
            BodyError::Timeout => api::error(
                "408 Request Timeout",
                "Request body timeout",
                "invalid_request_error",
            ),
            BodyError::Expectation => {
                api::with_common(Response::text("417 Expectation Failed", ""))
            }
        })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((json!({}), rest));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => Ok((v, rest)),
        Err(e) => Err(api::invalid_request(&format!("Invalid JSON body: {e}"))),
    }
}

/// `POST /tools/invoke`: ringgate runs no gateway tools, so every named tool is unavailable —
/// the original's answer for a tool it does not offer.
fn tools_invoke(shared: &Shared, body: &Value) -> Response {
    let name = body
        .get("name")
        .or_else(|| body.get("tool"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let Some(name) = name else {
        return api::ok_false(
            "400 Bad Request",
            "invalid_request",
            "tools.invoke requires name",
        );
    };
    if let Some(agent) = body.get("agentId").and_then(Value::as_str) {
        if shared.borrow().config.agent(agent).is_none() {
            return api::ok_false(
                "400 Bad Request",
                "invalid_request",
                &format!("Unknown agent id \"{agent}\""),
            );
        }
    }
    api::ok_false(
        "404 Not Found",
        "not_found",
        &format!("Tool not available: {name}"),
    )
}

/// Resolves a session key from the URL (short forms belong to the default agent).
fn session(shared: &Shared, raw: &str) -> Option<key::SessionKey> {
    let ctx = shared.borrow();
    key::resolve(raw, None, ctx.config.default_agent()).ok()
}

fn not_found(raw: &str) -> Response {
    api::ok_false(
        "404 Not Found",
        "not_found",
        &format!("Session not found: {raw}"),
    )
}

/// `GET /sessions/<key>/history`: the newest `limit` transcript messages; `cursor` pages to
/// older ones (`nextCursor` of the previous page).
async fn history(shared: &Shared, head: &ApiHead, raw: &str) -> Response {
    let (limit, cursor) = match api::history_query(&head.query) {
        Ok(q) => q,
        Err(msg) => return api::invalid_request(msg),
    };
    let Some(k) = session(shared, raw) else {
        return not_found(raw);
    };
    let store = shared.borrow().store.clone();
    let op = crate::store::Op::History(Box::new(crate::store::sessions::HistoryQuery {
        key: k.canonical.clone(),
        limit: limit as u64,
        offset: cursor.unwrap_or(0),
        max_bytes: crate::store::sessions::MAX_HISTORY_BYTES,
    }));
    match super::conn::call_store(&store, op).await {
        crate::store::OpResult::History(page) if page.row.is_some() => {
            let mut out = json!({"sessionKey": k.canonical, "items": page.messages,
                "messages": page.messages, "hasMore": page.has_more});
            if page.has_more {
                out["nextCursor"] = json!(page.next_offset.to_string());
            }
            api::json_ok(&out)
        }
        crate::store::OpResult::History(_) => not_found(raw),
        other => {
            if shared.borrow().globals.log_allowed() {
                tracing::warn!(result = ?other, "HTTP history read failed");
            }
            api::with_common(Response::json(
                "503 Service Unavailable",
                &json!({"ok": false, "error": {"type": "unavailable",
                    "message": "session history is unavailable; retry shortly", "retryable": true}}),
            ))
            .header("Retry-After", "1")
        }
    }
}

/// `POST /sessions/<key>/kill`: stops the session's active run.
async fn kill(shared: &Shared, raw: &str) -> Response {
    let Some(k) = session(shared, raw) else {
        return not_found(raw);
    };
    let store = shared.borrow().store.clone();
    let probe = crate::store::Op::History(Box::new(crate::store::sessions::HistoryQuery {
        key: k.canonical.clone(),
        limit: 1,
        offset: 0,
        max_bytes: 64 * 1024,
    }));
    match super::conn::call_store(&store, probe).await {
        crate::store::OpResult::History(page) if page.row.is_some() => {}
        _ => return not_found(raw),
    }
    let op = SessionOp::Abort {
        run_id: None,
        via: AbortVia::Chat,
    };
    match super::conn::ask_chat(shared, ChatRequest::Session(k, op), ACCEPT_TIMEOUT).await {
        Some(Ok(v)) => api::json_ok(&json!({"ok": true, "killed": v["aborted"] == true})),
        Some(Err(e)) => api::ok_false("503 Service Unavailable", "unavailable", &e.message),
        None => api::ok_false(
            "503 Service Unavailable",
            "unavailable",
            "the session did not answer in time",
        ),
    }
}

/// A run an HTTP request started. When the request ends, however it ends, the tap goes; a
/// run that has not ended by then (its caller left, a write failed, it went silent, or the
/// owner accepted it too late) is aborted: no run goes on for nobody.
struct Tapped<'a> {
    shared: &'a Shared,
    tap: Rc<RunTap>,
    session: key::SessionKey,
}

impl Drop for Tapped<'_> {
    fn drop(&mut self) {
        // A task dropped while the shard itself is borrowed (its teardown) leaves both alone.
        let Ok(mut ctx) = self.shared.try_borrow_mut() else {
            return;
        };
        ctx.run_taps.retain(|t| !Rc::ptr_eq(t, &self.tap));
        if !self.tap.ended() {
            let (caller, token, _) = ctx.http_waiter();
            ctx.http_waiters.remove(&token);
            let op = SessionOp::Abort {
                run_id: Some(self.tap.run_id().to_owned()),
                via: AbortVia::Chat,
            };
            let turn = ChatRequest::Session(self.session.clone(), op);
            super::drive::chat_as(&mut ctx, caller, turn);
        }
    }
}

/// How a run ended, for the answer.
enum End {
    Done {
        finish: &'static str,
    },
    Failed(Response, Value),
    /// The caller closed the connection: the run is aborted, nothing is written.
    Gone,
}

/// Starts a turn for an HTTP request: the tap first (no event of the run can pass it by),
/// then the turn, accepted by the session's owner. The tap goes when the guard drops.
async fn start_run<'a>(
    shared: &'a Shared,
    k: key::SessionKey,
    prompt: String,
    run_id: &str,
    what: &'static str,
) -> Result<Tapped<'a>, Response> {
    let tap = RunTap::new(&k.canonical, run_id);
    shared.borrow_mut().run_taps.push(tap.clone());
    let tapped = Tapped {
        shared,
        tap,
        session: k.clone(),
    };
    if shared.borrow().globals.log_allowed() {
        tracing::info!(session = %k.canonical, run = %run_id, "HTTP {what}");
    }
    let send = SendReq {
        queue: false,
        kind: SendKind::Chat,
        fingerprint: crate::chat::fingerprint(&[what, &k.canonical, &prompt]),
        message: prompt,
        run_id: run_id.to_owned(),
        key_given: true,
        reply_to: None,
    };
    let op = ChatRequest::Session(k, SessionOp::Send(send));
    // Refused or unanswered, the guard drops here (and aborts a turn accepted too late).
    match super::conn::ask_chat(shared, op, ACCEPT_TIMEOUT).await {
        Some(Ok(_)) => Ok(tapped),
        Some(Err(e)) if e.code == crate::proto::errors::code::INVALID_REQUEST => {
            Err(api::invalid_request(&e.message))
        }
        Some(Err(e)) => Err(api::error(
            "503 Service Unavailable",
            &e.message,
            "service_unavailable",
        )),
        None => Err(api::error(
            "503 Service Unavailable",
            "the session did not accept the turn in time",
            "service_unavailable",
        )),
    }
}

/// `POST /v1/chat/completions`.
async fn completion(
    shared: &Shared,
    sock: &Sock<'_>,
    head: &ApiHead,
    body: &Value,
    rest: Vec<u8>,
) -> Next {
    let c = match openai::parse(body) {
        Ok(c) => c,
        Err(msg) => return respond(sock, api::invalid_request(&msg), head, rest, false).await,
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let id = format!("chatcmpl_{uuid}");
    let created = now_ms() / 1000;
    let k = match request_session(shared, head, &c.agent, c.user.as_deref(), "openai", &uuid) {
        Ok(k) => k,
        Err(r) => return respond(sock, r, head, rest, false).await,
    };
    let tapped = match start_run(shared, k, c.prompt.clone(), &uuid, "chat completion").await {
        Ok(t) => t,
        Err(r) => return respond(sock, r, head, rest, false).await,
    };
    let tap = tapped.tap.clone();
    let mut run = RunText::default();
    if !c.stream {
        let end = run.until_end(&tap, sock).await;
        let r = match end {
            End::Done { finish } => api::json_ok(&openai::completion_body(
                &id,
                created,
                &c.model,
                &run.text,
                finish,
                openai::Usage::default(),
            )),
            End::Failed(r, _) => r,
            End::Gone => return Next::Close,
        };
        return respond(sock, r, head, rest, false).await;
    }
    // Streamed: the role chunk at once, then a chunk per piece of text, the finish chunk
    // (and usage), then [DONE] — chunked, so the connection can carry the next request.
    let mut w = SseWriter::start(sock, head).await;
    let chunk = |delta: Value, finish: Option<&str>| {
        openai::sse(&openai::chunk(&id, created, &c.model, delta, finish))
    };
    w.frame(&chunk(json!({"role": "assistant"}), None)).await;
    let end = loop {
        if !w.ok {
            return Next::Close;
        }
        match run.step(&tap, sock).await {
            Step::Text(piece) => w.frame(&chunk(json!({"content": piece}), None)).await,
            Step::End(end) => break end,
        }
    };
    match end {
        End::Done { finish } => {
            w.frame(&chunk(json!({}), Some(finish))).await;
            if c.include_usage {
                let u = openai::usage_chunk(&id, created, &c.model, openai::Usage::default());
                w.frame(&openai::sse(&u)).await;
            }
        }
        End::Gone => return Next::Close,
        End::Failed(_, error) => {
            w.frame(&openai::sse(&json!({ "error": error }))).await;
        }
    }
    w.frame(openai::SSE_DONE).await;
    w.finish(head, rest).await
}

/// `POST /v1/responses`: the same turn, told as a response resource (streamed: its events).
async fn responses(
    shared: &Shared,
    sock: &Sock<'_>,
    head: &ApiHead,
    body: &Value,
    rest: Vec<u8>,
) -> Next {
    use crate::http::api::responses::{self as res, event, message_item, resource};
    let req = match res::parse(body) {
        Ok(r) => r,
        Err(msg) => return respond(sock, api::invalid_request(&msg), head, rest, false).await,
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let id = format!("resp_{uuid}");
    let msg_id = format!("msg_{}", uuid::Uuid::new_v4());
    let created = now_ms() / 1000;
    let k = match request_session(
        shared,
        head,
        &req.agent,
        req.user.as_deref(),
        "openresponses",
        &uuid,
    ) {
        Ok(k) => k,
        Err(r) => return respond(sock, r, head, rest, false).await,
    };
    let tapped = match start_run(shared, k, req.prompt.clone(), &uuid, "response").await {
        Ok(t) => t,
        Err(r) => return respond(sock, r, head, rest, false).await,
    };
    let tap = tapped.tap.clone();
    let mut run = RunText::default();
    let done = |run: &RunText, finish: &str| {
        let status = if finish == "length" {
            "incomplete"
        } else {
            "completed"
        };
        let mut item = message_item(&msg_id, &run.text, true);
        if status == "incomplete" {
            item["status"] = json!("incomplete");
        }
        resource(&id, created, &req.model, status, vec![item], None)
    };
    let failed = |error: &Value| {
        let e = json!({"code": error["type"], "message": error["message"]});
        resource(&id, created, &req.model, "failed", Vec::new(), Some(e))
    };
    if !req.stream {
        let r = match run.until_end(&tap, sock).await {
            End::Done { finish } => api::json_ok(&done(&run, finish)),
            End::Failed(r, error) => {
                let mut out = api::with_common(Response::json(r.status, &failed(&error)));
                out.close = r.close;
                out
            }
            End::Gone => return Next::Close,
        };
        return respond(sock, r, head, rest, false).await;
    }
    let mut w = SseWriter::start(sock, head).await;
    let opening = resource(&id, created, &req.model, "in_progress", Vec::new(), None);
    w.frame(&event("response.created", json!({"response": opening})))
        .await;
    w.frame(&event("response.in_progress", json!({"response": opening})))
        .await;
    let part = |text: &str| {
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0,
        "part": {"type": "output_text", "text": text}})
    };
    w.frame(&event(
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item(&msg_id, "", false)}),
    ))
    .await;
    w.frame(&event("response.content_part.added", part("")))
        .await;
    let end = loop {
        if !w.ok {
            return Next::Close;
        }
        match run.step(&tap, sock).await {
            Step::Text(piece) => {
                let d = json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "delta": piece});
                w.frame(&event("response.output_text.delta", d)).await
            }
            Step::End(end) => break end,
        }
    };
    match end {
        End::Done { finish } => {
            let d =
                json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "text": run.text});
            w.frame(&event("response.output_text.done", d)).await;
            w.frame(&event("response.content_part.done", part(&run.text)))
                .await;
            let item = done(&run, finish)["output"][0].clone();
            w.frame(&event(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            ))
            .await;
            let final_ = done(&run, finish);
            let kind = if final_["status"] == "incomplete" {
                "response.incomplete"
            } else {
                "response.completed"
            };
            w.frame(&event(kind, json!({"response": final_}))).await;
        }
        End::Gone => return Next::Close,
        End::Failed(_, error) => {
            w.frame(&event(
                "response.failed",
                json!({"response": failed(&error)}),
            ))
            .await;
        }
    }
    w.frame(openai::SSE_DONE).await;
    w.finish(head, rest).await
}

/// The agent (`x-openclaw-agent-id`, else the model's) and the session a request runs in.
fn request_session(
    shared: &Shared,
    head: &ApiHead,
    model_agent: &openai::AgentRef,
    user: Option<&str>,
    prefix: &str,
    uuid: &str,
) -> Result<key::SessionKey, Response> {
    let ctx = shared.borrow();
    let agent = match (head.agent.as_deref().map(str::trim), model_agent) {
        (Some(h), _) if !h.is_empty() => h.to_ascii_lowercase(),
        (_, openai::AgentRef::Id(a)) => a.clone(),
        (_, openai::AgentRef::Default) => ctx.config.default_agent().to_owned(),
    };
    if !openai::valid_agent_id(&agent) || ctx.config.agent(&agent).is_none() {
        let raw = head.agent.clone().unwrap_or_else(|| agent.clone());
        return Err(api::invalid_request(&format!("Unknown agent '{raw}'.")));
    }
    openai::session_key(&agent, prefix, head.session_key.as_deref(), user, uuid)
        .and_then(|k| key::resolve(&k, Some(&agent), ctx.config.default_agent()))
        .map_err(|msg| api::invalid_request(&msg))
}

/// Writes SSE frames as HTTP chunks; after a failed write it writes nothing more.
struct SseWriter<'a, 'b> {
    sock: &'a Sock<'b>,
    ok: bool,
    /// HTTP/1.1 chunks (HTTP/1.0: raw, closed at the end).
    chunked: bool,
}

impl<'a, 'b> SseWriter<'a, 'b> {
    /// Sends the `200` head of an event stream (chunked, so the connection can carry the
    /// next request afterwards).
    async fn start(sock: &'a Sock<'b>, head: &ApiHead) -> SseWriter<'a, 'b> {
        let mut w = SseWriter {
            sock,
            ok: true,
            chunked: !head.http10,
        };
        let mut start = api::with_common(Response::new(
            "200 OK",
            "text/event-stream; charset=utf-8",
            Vec::new(),
        ))
        .header("Cache-Control", "no-cache");
        // HTTP/1.0 has no chunks: the stream ends when the connection does.
        start.close = head.close || head.http10;
        let bytes = start.encode_head();
        let framing = if w.chunked {
            "Transfer-Encoding: chunked\r\n"
        } else {
            ""
        };
        let text = String::from_utf8_lossy(&bytes).replace("Content-Length: 0\r\n", framing);
        w.raw(text.as_bytes()).await;
        w
    }

    /// Ends the body; what the connection does next.
    async fn finish(mut self, head: &ApiHead, rest: Vec<u8>) -> Next {
        if !self.chunked {
            return Next::Close;
        }
        self.raw(b"0\r\n\r\n").await;
        if self.ok && !head.close {
            Next::KeepAlive(rest)
        } else {
            Next::Close
        }
    }

    async fn raw(&mut self, bytes: &[u8]) {
        if self.ok {
            let deadline = Instant::now() + WRITE_TIMEOUT;
            self.ok = self.sock.write_all(bytes, deadline).await.is_ok();
        }
    }

    async fn frame(&mut self, data: &str) {
        if !self.chunked {
            return self.raw(data.as_bytes()).await;
        }
        let framed = format!("{:x}\r\n{data}\r\n", data.len());
        self.raw(framed.as_bytes()).await;
    }
}

/// The text of a run as its `chat` events tell it: deltas carry the whole text so far, so a
/// piece is what a delta adds to what was already passed on.
#[derive(Default)]
struct RunText {
    text: String,
    /// The run ended after the last piece handed out (its finish reason).
    pending_end: Option<&'static str>,
}

enum Step {
    Text(String),
    End(End),
}

fn message_text(p: &Value) -> Option<&str> {
    p["message"]["content"][0]["text"].as_str()
}

impl RunText {
    /// Takes the whole text up to `full`; returns what is new.
    fn advance(&mut self, full: &str) -> Option<String> {
        let piece = full.strip_prefix(self.text.as_str())?;
        if piece.is_empty() {
            return None;
        }
        let piece = piece.to_owned();
        self.text = full.to_owned();
        Some(piece)
    }

    async fn step(&mut self, tap: &RunTap, sock: &Sock<'_>) -> Step {
        if let Some(finish) = self.pending_end.take() {
            return Step::End(End::Done { finish });
        }
        loop {
            let next = tap.next(Instant::now() + RUN_IDLE);
            let p = match crate::rt::select(next, sock.stream.hangup()).await {
                crate::rt::Either::Left(p) => p,
                crate::rt::Either::Right(()) => return Step::End(End::Gone),
            };
            let Some(p) = p else {
                let error = json!({"message": "the agent run went silent; it was aborted", "type": "api_error"});
                let r = api::error(
                    "504 Gateway Timeout",
                    "the agent run went silent; it was aborted",
                    "api_error",
                );
                return Step::End(End::Failed(r, error));
            };
            match p["state"].as_str().unwrap_or_default() {
                "delta" => {
                    if let Some(piece) = message_text(&p).and_then(|t| self.advance(t)) {
                        return Step::Text(piece);
                    }
                }
                "final" | "aborted" => {
                    if let Some(piece) = message_text(&p).and_then(|t| self.advance(t)) {
                        // The rest of the text first; the end comes with the next step.
                        self.pending_end = Some(finish_of(&p));
                        return Step::Text(piece);
                    }
                    return Step::End(End::Done {
                        finish: finish_of(&p),
                    });
                }
                "error" => {
                    let message = p["errorMessage"].as_str().unwrap_or("agent run failed");
                    let (status, message, kind) = openai::failure(
                        p["errorKind"].as_str(),
                        p["errorDetail"]["httpStatus"].as_u64(),
                        message,
                    );
                    let error = json!({"message": message, "type": kind});
                    return Step::End(End::Failed(api::error(status, &message, kind), error));
                }
                _ => {}
            }
        }
    }

    async fn until_end(&mut self, tap: &RunTap, sock: &Sock<'_>) -> End {
        loop {
            if let Step::End(e) = self.step(tap, sock).await {
                return e;
            }
        }
    }
}

fn finish_of(p: &Value) -> &'static str {
    match p["stopReason"].as_str() {
        Some("length" | "max_tokens") => "length",
        _ => "stop",
    }
}
