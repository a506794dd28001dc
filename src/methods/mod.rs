//! The method layer: after the permission gate has passed, validate params and run the handler.
//! One module per family. Handlers do not fan events out themselves (the caller's own
//! connection is borrowed while it is served); they return [`Effect`]s that the shard applies
//! once the borrow ends, so the caller receives its own events too.

pub mod approvals;
pub mod channels;
pub mod chat;
pub mod config;
pub mod cron;
pub mod devices;
pub mod nodes;
pub mod ops;
pub mod skills;
pub mod system;

use serde_json::Value;

use crate::{
    proto::{errors::ErrorShape, schema::Schemas},
    shard::{client::Session, ctx::ShardCtx},
    state::presence::{Delta, Entry},
    store::{Op, OpResult},
};

/// Every method ringgate implements (advertised in `hello-ok.features.methods`).
pub const METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "system-event",
    "last-heartbeat",
    "set-heartbeats",
    "wake",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.pair.rename",
    "device.token.rotate",
    "device.token.revoke",
    "logs.tail",
];

/// Every event ringgate emits (`hello-ok.features.events`).
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "agent",
    "chat",
    "session.message",
    "sessions.changed",
    "presence",
    "tick",
    "health",
    "shutdown",
    "node.pair.requested",
    "node.pair.resolved",
    "node.presence",
    "node.hostStats",
    "node.invoke.cancel",
    "node.invoke.request",
    "device.pair.changed",
    "device.pair.requested",
    "device.pair.resolved",
    "voicewake.changed",
    "voicewake.routing.changed",
    "config.changed",
    "cron",
    "exec.approval.requested",
    "exec.approval.resolved",
];

/// Work a handler asks the shard to do after its response is queued.
#[derive(Debug)]
pub enum Effect {
    /// Upsert a presence entry and broadcast `presence` on every shard.
    Presence { key: String, fields: Entry },
    /// Announce a presence change already applied to this shard's replica.
    PresencePublish { delta: Delta, version: u64 },
    /// Record a queued system event on every shard.
    SystemEvent(String),
    /// Work that needs the shard (no connection borrowed) and answers the caller itself.
    Task {
        conn: u64,
        req_id: String,
        task: Task,
    },
    /// Register a node that just connected (registry on every shard, `node.presence`).
    NodeUp(Box<crate::nodes::registry::NodeInfo>),
    /// Hand a request to the chat layer (the session's owner), answered later.
    Chat {
        conn: u64,
        req_id: String,
        req: crate::chat::ChatRequest,
    },
}

/// A call that passed the permission gate.
pub struct Call<'a> {
    pub method: &'a str,
    pub params: &'a Value,
    pub session: &'a Session,
    pub now_ms: u64,
}

pub type Reply = Result<Value, ErrorShape>;

/// Turns the storage thread's result into the reply, on the caller's shard.
pub type Finish = Box<dyn FnOnce(OpResult, &ShardCtx) -> Reply>;

/// A reply that waits for the storage thread.
pub struct Deferred {
    pub op: Op,
    pub finish: Finish,
}

/// What a handler produced.
pub enum Outcome {
    Reply(Reply),
    Deferred(Box<Deferred>),
    /// Answered by the chat layer, possibly on another shard.
    Chat(crate::chat::ChatRequest),
    /// Run with the whole shard once the caller's connection is released; answers the caller.
    Task(Task),
}

/// The body of a [`Task`].
pub type TaskFn = Box<dyn FnOnce(&mut ShardCtx, crate::chat::Caller)>;

/// A deferred handler step: it gets the shard and the caller to answer.
pub struct Task(pub TaskFn);

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Task")
    }
}

/// Is `method` implemented (and advertised)?
pub fn implemented(method: &str) -> bool {
    METHODS.contains(&method)
        || chat::METHODS.contains(&method)
        || nodes::METHODS.contains(&method)
        || approvals::METHODS.contains(&method)
        || config::METHODS.contains(&method)
        || ops::METHODS.contains(&method)
        || skills::METHODS.contains(&method)
        || channels::METHODS.contains(&method)
        || cron::METHODS.contains(&method)
}

/// Every implemented method, for `hello-ok.features.methods`.
pub fn all_methods() -> impl Iterator<Item = &'static str> {
    METHODS
        .iter()
        .chain(chat::METHODS.iter())
        .chain(nodes::METHODS.iter())
        .chain(approvals::METHODS.iter())
        .chain(config::METHODS.iter())
        .chain(ops::METHODS.iter())
        .chain(skills::METHODS.iter())
        .chain(channels::METHODS.iter())
        .chain(cron::METHODS.iter())
        .copied()
        .filter(|m| !nodes::HIDDEN.contains(m))
}

/// A string param, if present.
pub(crate) fn str_param<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// A string-array param (non-strings skipped), if present.
pub(crate) fn str_list_param(p: &Value, k: &str) -> Option<Vec<String>> {
    p.get(k).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// A reply the storage thread computes as JSON: `Invalid` is the caller's mistake
/// (`INVALID_REQUEST`), `Failed` the store's (`UNAVAILABLE`).
pub(crate) fn json_from_store(op: Op) -> Outcome {
    Outcome::Deferred(Box::new(Deferred {
        op,
        finish: Box::new(|r, _| match r {
            OpResult::Json(v) => Ok(v),
            OpResult::Invalid(m) => Err(ErrorShape::invalid(m)),
            OpResult::Failed(m) => Err(ErrorShape::new(crate::proto::errors::code::UNAVAILABLE, m)),
            other => Err(ErrorShape::new(
                crate::proto::errors::code::UNAVAILABLE,
                format!("unexpected storage answer: {other:?}"),
            )),
        }),
    }))
}

/// A handler's result as an outcome (errors are answered at once).
pub(crate) fn outcome(r: Result<Outcome, ErrorShape>) -> Outcome {
    r.unwrap_or_else(|e| Outcome::Reply(Err(e)))
}

/// Runs a method; `None` when ringgate does not implement it (→ `unknown method`).
pub fn dispatch(ctx: &mut ShardCtx, call: &Call, effects: &mut Vec<Effect>) -> Option<Outcome> {
    if !implemented(call.method) {
        return None;
    }
    if let Err(e) = Schemas::get().check_params(call.method, call.params) {
        return Some(Outcome::Reply(Err(ErrorShape::invalid(format!(
            "invalid {} params: {e}",
            call.method
        )))));
    }
    if call.method == "logs.tail" {
        return Some(system::logs_tail(ctx, call));
    }
    if call.method.starts_with("device.") {
        return Some(devices::handle(ctx, call));
    }
    if chat::METHODS.contains(&call.method) {
        return Some(chat::handle(ctx, call));
    }
    if nodes::METHODS.contains(&call.method) {
        return Some(nodes::handle(ctx, call));
    }
    if approvals::METHODS.contains(&call.method) {
        return Some(approvals::handle(ctx, call));
    }
    if config::METHODS.contains(&call.method) {
        return Some(config::handle(ctx, call));
    }
    if ops::METHODS.contains(&call.method) {
        return Some(ops::handle(ctx, call));
    }
    if skills::METHODS.contains(&call.method) {
        return Some(skills::handle(ctx, call));
    }
    if channels::METHODS.contains(&call.method) {
        return Some(channels::handle(ctx, call));
    }
    if cron::METHODS.contains(&call.method) {
        return Some(cron::handle(call));
    }
    Some(Outcome::Reply(system::handle(ctx, call, effects)))
}
