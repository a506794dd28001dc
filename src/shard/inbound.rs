//! `POST /channels/webhook/<accountId>`: an inbound channel message on the gateway port. The
//! body is read (bounded by the account's `maxInboundBytes`), its signature checked, and the
//! message sent into the account's session as a chat turn. The HTTP answer waits until the turn
//! is durable (202 with the run id), so an acknowledged message is never lost; the agent's
//! reply is delivered back through the channel when the account has a `url`.

use std::time::Instant;

use serde_json::{json, Value};

use super::{conn::Shared, tls_io::Sock};
use crate::http::head::{self as http, Inbound};
use crate::{
    channels::{webhook, ReplyRoute},
    chat::{self, key, ChatRequest, SendKind, SendReq, SessionOp},
    proto::errors::{code, ErrorShape},
};

/// How long an inbound message waits for its turn to be durable before the sender is told
/// 503 (it may retry: the run id makes that idempotent).
const TURN_TIMEOUT_MS: u64 = 30_000;

fn answer(status: &str, body: Value) -> Vec<u8> {
    http::response(status, "application/json", &body.to_string())
}

fn error(status: &str, message: &str) -> Vec<u8> {
    answer(status, json!({"ok": false, "error": message}))
}

fn status_line(code: u16) -> &'static str {
    match code {
        400 => "400 Bad Request",
        401 => "401 Unauthorized",
        404 => "404 Not Found",
        409 => "409 Conflict",
        413 => "413 Payload Too Large",
        _ => "503 Service Unavailable",
    }
}

/// Reads the body: `len` bytes, some of which may already have arrived with the head.
async fn read_body(
    sock: &Sock<'_>,
    mut body: Vec<u8>,
    len: usize,
    deadline: Instant,
) -> Option<Vec<u8>> {
    let mut chunk = vec![0u8; 8192];
    while body.len() < len {
        let n = sock.recv_some(&mut chunk, deadline).await?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(body)
}

/// Serves one inbound request; returns the complete HTTP response. Counted as the original
/// counts webhooks (`openclaw_webhook_*`, channel `webhook`): an answer other than 2xx is an
/// error.
pub async fn serve(
    shared: &Shared,
    sock: &Sock<'_>,
    head: Inbound,
    leftover: Vec<u8>,
    deadline: Instant,
) -> Vec<u8> {
    let started = Instant::now();
    let r = serve_request(shared, sock, head, leftover, deadline).await;
    let ok = r.get(9) == Some(&b'2');
    let secs = started.elapsed().as_secs_f64();
    crate::metrics::record(|m| m.webhook(webhook::CHANNEL_ID, ok, secs));
    r
}

async fn serve_request(
    shared: &Shared,
    sock: &Sock<'_>,
    head: Inbound,
    leftover: Vec<u8>,
    deadline: Instant,
) -> Vec<u8> {
    if shared.borrow().shutting_down {
        return error("503 Service Unavailable", "gateway shutting down");
    }
    let rest = head.path.split('?').next().unwrap_or_default();
    let account = match rest.strip_prefix("/channels/webhook") {
        Some("" | "/") => webhook::DEFAULT_ACCOUNT_ID.to_owned(),
        Some(a) if a.starts_with('/') && !a[1..].contains('/') => a[1..].to_owned(),
        _ => return error("404 Not Found", "no such channel route"),
    };
    let (hub, limit) = {
        let ctx = shared.borrow();
        let hub = ctx.channels.clone();
        let limit = hub
            .webhook
            .as_ref()
            .and_then(|w| w.account_config(&account))
            .map(|a| a.max_inbound_bytes);
        (hub, limit)
    };
    let (Some(wh), Some(limit)) = (hub.webhook.clone(), limit) else {
        return error(
            "404 Not Found",
            &format!("unknown webhook account `{account}`"),
        );
    };
    let Some(len) = head.content_length else {
        return error("400 Bad Request", "Content-Length is required");
    };
    if len > limit {
        return error(
            "413 Payload Too Large",
            &format!("body of {len} bytes is over this account's limit of {limit}"),
        );
    }
    let Some(body) = read_body(sock, leftover, len, deadline).await else {
        return error("400 Bad Request", "body incomplete");
    };
    let headers = webhook::InboundHeaders {
        timestamp: head.timestamp.as_deref(),
        signature: head.signature.as_deref(),
    };
    let msg = match wh.receive(&account, &headers, &body) {
        Ok(m) => m,
        Err(e) => {
            // Anyone can POST here: sampled, never unbounded.
            if shared.borrow().globals.log_allowed() {
                tracing::warn!(account, error = %e, "inbound webhook refused");
            }
            return error(status_line(e.http_status()), &e.to_string());
        }
    };
    crate::metrics::record(|m| m.message_received(webhook::CHANNEL_ID, "webhook"));
    let replies = wh.account_config(&account).is_some_and(|a| a.url.is_some());
    let (turn, canonical) = {
        let ctx = shared.borrow();
        let default_agent = ctx.config.default_agent().to_owned();
        let k = match key::resolve(&msg.session_key, None, &default_agent) {
            Ok(k) => k,
            Err(e) => return error("400 Bad Request", &e),
        };
        // Idempotent either way: a redelivered message (same `messageId`, or the same signed
        // timestamp and body) runs once.
        let run_id = match &msg.message_id {
            Some(id) => format!("webhook:{account}:{id}"),
            None => format!(
                "webhook:{account}:{}:{:016x}",
                msg.timestamp_ms,
                chat::fingerprint(&[std::str::from_utf8(&body).unwrap_or_default()])
            ),
        };
        let req = SendReq {
            queue: false,
            kind: SendKind::Chat,
            fingerprint: chat::fingerprint(&["webhook", &k.canonical, &msg.text]),
            message: msg.text.clone(),
            run_id,
            key_given: true,
            reply_to: replies.then(|| ReplyRoute {
                channel: webhook::CHANNEL_ID,
                account_id: account.clone(),
                to: msg.from.clone(),
            }),
        };
        if ctx.globals.log_allowed() {
            tracing::info!(account, from = %msg.from, session = %k.canonical, "inbound webhook message");
        }
        let canonical = k.canonical.clone();
        (ChatRequest::Session(k, SessionOp::Send(req)), canonical)
    };
    // The turn gets its own budget, whatever the upload took.
    let left = std::time::Duration::from_millis(TURN_TIMEOUT_MS);
    match super::conn::ask_chat(shared, turn, left).await {
        Some(answer) => http_answer(answer, &canonical),
        None => error(
            "503 Service Unavailable",
            "the session did not answer in time",
        ),
    }
}

/// The chat layer's answer to the turn, as HTTP.
fn http_answer(a: Result<Value, ErrorShape>, session_key: &str) -> Vec<u8> {
    let e = match a {
        Ok(p) => {
            return answer(
                "202 Accepted",
                json!({"ok": true, "runId": p["runId"], "status": p["status"], "sessionKey": session_key}),
            )
        }
        Err(e) => e,
    };
    let conflict = e
        .details
        .as_ref()
        .is_some_and(|d| d["reason"] == "chat-request-conflict");
    let status = match e.code {
        code::INVALID_REQUEST if conflict => 409,
        code::INVALID_REQUEST => 400,
        _ => 503,
    };
    error(status_line(status), &e.message)
}
