//! `node.invoke` across shards. The caller's shard owns the pending invoke (caller, deadline);
//! the node's shard delivers `node.invoke.request` to the node (no `seq`) and remembers which
//! invokes its node owes, so a `node.invoke.result` — or the node going away — is routed back.
//! A caller that goes away cancels the invoke (`node.invoke.cancel` to the node).

use std::{collections::HashMap, sync::Arc};

use serde_json::{json, Value};

use crate::{
    bus::BusMsg,
    chat::Caller,
    proto::{
        errors::{code, ErrorShape},
        frame::EventTemplate,
    },
    shard::ctx::ShardCtx,
};

/// Default invoke deadline (`node.invoke` without `timeoutMs`).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// An invoke waiting on this (the caller's) shard.
pub struct Pending {
    caller: Caller,
    node_id: String,
    command: String,
    node_shard: usize,
}

/// An invoke this (the node's) shard delivered and its node has not answered.
pub struct Forwarded {
    origin: usize,
    node_conn: u64,
}

#[derive(Default)]
pub struct Invokes {
    pending: HashMap<String, Pending>,
    forwarded: HashMap<String, Forwarded>,
}

/// How an invoke ended, reported to the caller's shard.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok {
        payload: Value,
        payload_json: Option<String>,
    },
    /// The node answered `ok:false`, or the invoke could not reach it.
    Failed {
        code: String,
        message: String,
        dispatched: bool,
    },
}

/// Messages between the caller's and the node's shard.
#[derive(Debug, Clone)]
pub enum InvokeMsg {
    Request {
        id: String,
        origin: usize,
        node_conn: u64,
        node_id: String,
        event: Arc<EventTemplate>,
    },
    Cancel {
        id: String,
        node_id: String,
    },
    Done {
        id: String,
        outcome: Outcome,
    },
}

fn send(ctx: &mut ShardCtx, shard: usize, msg: InvokeMsg) {
    ctx.route(shard, msg, on_msg, BusMsg::Invoke);
}

/// What an invoke asks of a node.
pub struct Request {
    pub node_id: String,
    pub node_shard: usize,
    pub node_conn: u64,
    pub command: String,
    pub params: Option<Value>,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub session_key: Option<String>,
}

/// Starts an invoke for `caller` (a connection on this shard).
pub fn start(ctx: &mut ShardCtx, caller: Caller, req: Request) {
    let id = uuid::Uuid::new_v4().to_string();
    let mut payload = json!({
        "id": id,
        "nodeId": req.node_id,
        "command": req.command,
        "paramsJSON": req.params.as_ref().map(Value::to_string),
        "timeoutMs": req.timeout_ms,
        "idempotencyKey": req.idempotency_key,
    });
    if let Some(k) = &req.session_key {
        payload["sessionKey"] = json!(k);
    }
    let event = Arc::new(EventTemplate::new("node.invoke.request", &payload, None));
    ctx.invokes.pending.insert(
        id.clone(),
        Pending {
            caller,
            node_id: req.node_id.clone(),
            command: req.command,
            node_shard: req.node_shard,
        },
    );
    send(
        ctx,
        req.node_shard,
        InvokeMsg::Request {
            id: id.clone(),
            origin: ctx.id,
            node_conn: req.node_conn,
            node_id: req.node_id,
            event,
        },
    );
    let me = ctx.me.clone();
    let timeout = req.timeout_ms;
    monoio::spawn(async move {
        crate::shard::timer::sleep_ms(timeout).await;
        if let Some(ctx) = me.upgrade() {
            let mut ctx = ctx.borrow_mut();
            if let Some(p) = ctx.invokes.pending.get(&id) {
                let (shard, node_id) = (p.node_shard, p.node_id.clone());
                finish(
                    &mut ctx,
                    &id,
                    Outcome::Failed {
                        code: "TIMEOUT".into(),
                        message: "node invoke timed out".into(),
                        dispatched: true,
                    },
                );
                send(&mut ctx, shard, InvokeMsg::Cancel { id, node_id });
            }
        }
    });
}

/// Answers the caller of a finished invoke.
fn finish(ctx: &mut ShardCtx, id: &str, outcome: Outcome) {
    let Some(p) = ctx.invokes.pending.remove(id) else {
        return;
    };
    match outcome {
        Outcome::Ok {
            payload,
            payload_json,
        } => p.caller.ok(
            ctx,
            &json!({"ok": true, "nodeId": p.node_id, "command": p.command,
                    "payload": payload, "payloadJSON": payload_json}),
        ),
        Outcome::Failed {
            code: c,
            message,
            dispatched,
        } => {
            let (msg, top) = if c == "NOT_CONNECTED" {
                ("node not connected".to_owned(), Some("NOT_CONNECTED"))
            } else {
                (format!("{c}: {message}"), None)
            };
            let mut details = json!({
                "nodeError": {"code": c, "message": message},
                "nodeCommandDispatched": dispatched,
            });
            if let Some(t) = top {
                details["code"] = json!(t);
            }
            p.caller.err(
                ctx,
                &ErrorShape::new(code::UNAVAILABLE, msg).with_details(details),
            );
        }
    }
}

/// Handles an invoke message from another shard (or this one).
pub fn on_msg(ctx: &mut ShardCtx, msg: InvokeMsg) {
    match msg {
        InvokeMsg::Request {
            id,
            origin,
            node_conn,
            node_id,
            event,
        } => {
            let delivered = ctx.clients.get(&node_conn).is_some_and(|c| {
                c.try_borrow_mut().is_ok_and(|mut c| {
                    let live = c.end.is_none() && c.session().is_some();
                    if live {
                        c.push_event(&event, false);
                    }
                    live
                })
            });
            if delivered {
                ctx.invokes
                    .forwarded
                    .insert(id, Forwarded { origin, node_conn });
            } else {
                let outcome = Outcome::Failed {
                    code: "NOT_CONNECTED".into(),
                    message: format!("node {node_id} is not connected"),
                    dispatched: false,
                };
                send(ctx, origin, InvokeMsg::Done { id, outcome });
            }
        }
        InvokeMsg::Cancel { id, node_id } => {
            if let Some(f) = ctx.invokes.forwarded.remove(&id) {
                let ev = EventTemplate::new(
                    "node.invoke.cancel",
                    &json!({"invokeId": id, "nodeId": node_id}),
                    None,
                );
                if let Some(c) = ctx.clients.get(&f.node_conn) {
                    if let Ok(mut c) = c.try_borrow_mut() {
                        if c.end.is_none() {
                            c.push_event(&Arc::new(ev), false);
                        }
                    }
                }
            }
        }
        InvokeMsg::Done { id, outcome } => finish(ctx, &id, outcome),
    }
}

/// `node.invoke.result` from the node on connection `node_conn`.
pub fn on_result(ctx: &mut ShardCtx, node_conn: u64, p: &Value) -> Value {
    let id = p["id"].as_str().unwrap_or_default();
    let Some(f) = ctx
        .invokes
        .forwarded
        .get(id)
        .filter(|f| f.node_conn == node_conn)
    else {
        return json!({"ok": true, "ignored": true});
    };
    let origin = f.origin;
    ctx.invokes.forwarded.remove(id);
    let outcome = if p["ok"].as_bool() == Some(true) {
        let payload_json = p["payloadJSON"].as_str().map(str::to_owned);
        let payload = match &payload_json {
            Some(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            None => p.get("payload").cloned().unwrap_or(Value::Null),
        };
        Outcome::Ok {
            payload,
            payload_json,
        }
    } else {
        Outcome::Failed {
            code: p["error"]["code"]
                .as_str()
                .unwrap_or("UNAVAILABLE")
                .to_owned(),
            message: p["error"]["message"]
                .as_str()
                .unwrap_or("node invoke failed")
                .to_owned(),
            dispatched: true,
        }
    };
    send(
        ctx,
        origin,
        InvokeMsg::Done {
            id: id.to_owned(),
            outcome,
        },
    );
    json!({"ok": true})
}

/// A connection on this shard closed: fail the invokes its node owed, cancel the ones it was
/// waiting for.
pub fn on_closed(ctx: &mut ShardCtx, conn: u64) {
    let owed: Vec<(String, usize)> = ctx
        .invokes
        .forwarded
        .iter()
        .filter(|(_, f)| f.node_conn == conn)
        .map(|(id, f)| (id.clone(), f.origin))
        .collect();
    for (id, origin) in owed {
        ctx.invokes.forwarded.remove(&id);
        let outcome = Outcome::Failed {
            code: "DISCONNECTED".into(),
            message: "node disconnected".into(),
            dispatched: true,
        };
        send(ctx, origin, InvokeMsg::Done { id, outcome });
    }
    let waiting: Vec<String> = ctx
        .invokes
        .pending
        .iter()
        .filter(|(_, p)| p.caller.conn == conn)
        .map(|(id, _)| id.clone())
        .collect();
    for id in waiting {
        if let Some(p) = ctx.invokes.pending.remove(&id) {
            send(
                ctx,
                p.node_shard,
                InvokeMsg::Cancel {
                    id,
                    node_id: p.node_id,
                },
            );
        }
    }
}
