//! The worker channel on a shard (`/__openclaw__/worker`): a worker's `connect` is admitted
//! here by its credential alone (self-contained, so any shard can check it), and each call it
//! makes afterwards travels to the owner of the session its credential names. The connection
//! never holds an operator session: it gets no events but its own inference stream, no
//! presence entry, and no method outside the closed worker list.

use serde_json::Value;

use super::{
    client::{Client, Phase},
    ctx::ShardCtx,
    dispatch::After,
};
use crate::{
    chat::{key::SessionKey, ChatRequest, SessionOp, WorkerCall},
    methods::Effect,
    proto::{
        errors::{close, truncate_reason},
        frame::{res_err, res_ok},
    },
    state::now_ms,
    worker::{
        channel::{self, WorkerError, METHODS},
        credential::Grant,
    },
};

fn refuse(c: &mut Client, id: &str, e: WorkerError) {
    c.push_text(&res_err(id, &e.clone().into()));
    // The worker reads the close reason as its reason too.
    c.close(close::POLICY, &truncate_reason(e.reason));
}

/// The first frame on the worker channel: admit the worker or refuse it (error, then close
/// 1008 with the reason).
pub fn on_connect(ctx: &mut ShardCtx, c: &mut Client, frame: &Value) {
    let id = frame["id"].as_str().unwrap_or("connect");
    if frame["type"] != "req" || frame["method"] != "connect" {
        let e = WorkerError::invalid("invalid-handshake", "the first frame must be connect");
        return refuse(c, id, e);
    }
    let max_payload = ctx.config.limits.max_payload;
    let minter = &ctx.globals.worker_minter;
    match channel::admit(&frame["params"], minter, now_ms(), max_payload) {
        Ok(a) => {
            c.push_text(&res_ok(id, &a.hello));
            c.limit = max_payload;
            if c.holds_preauth {
                ctx.globals.release_preauth(c.ip);
                c.holds_preauth = false;
            }
            tracing::info!(conn = %c.conn_id, run = %a.grant.run_id, "agent worker admitted");
            c.phase = Phase::Worker(Box::new(a.grant));
        }
        Err(e) => {
            tracing::warn!(conn = %c.conn_id, ip = %c.ip, reason = e.reason, "agent worker refused");
            refuse(c, id, e);
        }
    }
}

/// A call of an admitted worker: routed to its session's owner, or refused here.
pub fn on_request(ctx: &mut ShardCtx, c: &mut Client, text: &[u8], after: &mut After) {
    let Phase::Worker(grant) = &c.phase else {
        return;
    };
    let Some(frame) = ctx.parser.parse(text) else {
        let e = WorkerError::invalid("invalid-frame", "frames are JSON requests");
        return refuse(c, "invalid", e);
    };
    let (Some(id), Some(method)) = (frame["id"].as_str(), frame["method"].as_str()) else {
        let e = WorkerError::invalid("invalid-frame", "frames are requests with id and method");
        return refuse(c, "invalid", e);
    };
    if frame["type"] != "req" || id.is_empty() || id.len() > 256 {
        let e = WorkerError::invalid("invalid-frame", "frames are requests with id and method");
        return refuse(c, "invalid", e);
    }
    if !METHODS.contains(&method) {
        let e = WorkerError::invalid(
            "method-not-allowed",
            format!("{method} is not a worker method"),
        );
        c.push_text(&res_err(id, &e.into()));
        return;
    }
    let params = match frame.get("params") {
        Some(p) if p.is_object() => p.clone(),
        _ => {
            let e = WorkerError::invalid("invalid-frame", "params must be an object");
            c.push_text(&res_err(id, &e.into()));
            return;
        }
    };
    let req = route(grant, method, params);
    after.effects.push(Effect::Chat {
        conn: c.id,
        req_id: id.to_owned(),
        req,
    });
}

fn route(grant: &Grant, method: &str, params: Value) -> ChatRequest {
    let agent_id = grant
        .session_key
        .strip_prefix("agent:")
        .and_then(|r| r.split(':').next())
        .unwrap_or("main")
        .to_owned();
    let key = SessionKey {
        canonical: grant.session_key.clone(),
        agent_id,
    };
    let call = WorkerCall {
        run_id: grant.run_id.clone(),
        epoch: grant.owner_epoch,
        method: method.to_owned(),
        params,
    };
    ChatRequest::Session(key, SessionOp::Worker(Box::new(call)))
}
