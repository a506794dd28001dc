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
pub mod pages;
pub mod skills;
pub mod system;
pub mod test_hooks;
pub mod ui;

use std::{collections::HashMap, sync::OnceLock};

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

/// Server capabilities, in `connect.challenge.capabilities` and `hello-ok.features.capabilities`.
/// `model-catalog-snapshot`: a Control UI that sends `modelCatalog` and the cap of that name at
/// connect gets its model catalog pushed as `models.snapshot` right after `hello-ok`.
pub const CAPABILITIES: &[&str] = &["model-catalog-snapshot"];

/// Every event ringgate emits (`hello-ok.features.events`).
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "agent",
    "chat",
    "chat.metadata.changed",
    "models.snapshot",
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
    "users.prefs.changed",
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
    /// A request for an owner of shared state, or for work that needs the whole shard (no
    /// connection borrowed); whoever serves it answers the caller.
    Routed {
        conn: u64,
        req_id: String,
        routed: Box<Routed>,
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
    /// Served once the caller's connection is released, by the owner it names (possibly on
    /// another shard), which answers the caller.
    Routed(Box<Routed>),
}

impl Outcome {
    /// A request for the driver to route (boxed: it is large and rare beside plain replies).
    pub fn routed(r: Routed) -> Outcome {
        Outcome::Routed(Box::new(r))
    }
}

/// A request the shard's driver routes to whoever serves it (`shard::drive::routed`).
#[derive(Debug)]
pub enum Routed {
    /// An exec-approval request for the approvals owner.
    Approval(crate::approvals::ApprovalOp),
    /// A `send` for the owner of its idempotency key.
    Send {
        key: String,
        fingerprint: u64,
        channel: &'static str,
        msg: crate::channels::OutboundMessage,
    },
    /// A `cron.*` request for the cron owner.
    Cron { method: String, params: Value },
    /// A `node.invoke` (the caller's shard keeps it).
    Invoke(crate::nodes::invoke::Request),
    /// A `node.invoke.result` from the node on the calling connection.
    InvokeResult(Value),
    /// A node's host stats, recorded on every shard and broadcast.
    NodeStats { node_id: String, stats: Value },
    /// `users.prefs.set`: written by the store, then `users.prefs.changed` if it changed.
    PrefsSet { op: Op, keys: Vec<String> },
}

/// How a method family is run (each module's `handle` adapted to one signature).
type Handler = fn(&mut ShardCtx, &Call, &mut Vec<Effect>) -> Outcome;

/// The core family: presence, heartbeats, `wake`, logs and the device pairing RPCs.
fn core(ctx: &mut ShardCtx, call: &Call, effects: &mut Vec<Effect>) -> Outcome {
    if call.method == "logs.tail" {
        return system::logs_tail(ctx, call);
    }
    if call.method.starts_with("device.") {
        return devices::handle(ctx, call);
    }
    Outcome::Reply(system::handle(ctx, call, effects))
}

/// Every method family with its methods: the one list `hello-ok`, the "implemented?" check and
/// dispatch all read.
const FAMILIES: &[(&[&str], Handler)] = &[
    (METHODS, core),
    (chat::METHODS, |ctx, call, _| chat::handle(ctx, call)),
    (nodes::METHODS, |ctx, call, _| nodes::handle(ctx, call)),
    (approvals::METHODS, |ctx, call, _| {
        approvals::handle(ctx, call)
    }),
    (config::METHODS, |ctx, call, _| config::handle(ctx, call)),
    (ops::METHODS, |ctx, call, _| ops::handle(ctx, call)),
    (skills::METHODS, |ctx, call, _| skills::handle(ctx, call)),
    (channels::METHODS, |ctx, call, _| {
        channels::handle(ctx, call)
    }),
    (cron::METHODS, |_, call, _| cron::handle(call)),
    (ui::METHODS, |ctx, call, _| ui::handle(ctx, call)),
    (pages::METHODS, |ctx, call, _| pages::handle(ctx, call)),
];

/// Method name → handler, built once: one hash lookup per request instead of a scan of
/// every family's list.
fn handlers() -> &'static HashMap<&'static str, Handler> {
    static H: OnceLock<HashMap<&'static str, Handler>> = OnceLock::new();
    H.get_or_init(|| {
        FAMILIES
            .iter()
            .flat_map(|(methods, h)| methods.iter().map(move |m| (*m, *h)))
            .collect()
    })
}

/// Is `method` implemented (and advertised)?
pub fn implemented(method: &str) -> bool {
    handlers().contains_key(method)
}

/// Every implemented method, for `hello-ok.features.methods`.
pub fn all_methods() -> impl Iterator<Item = &'static str> {
    FAMILIES
        .iter()
        .flat_map(|(methods, _)| methods.iter().copied())
        .filter(|m| !nodes::HIDDEN.contains(m))
}

/// A string param, if present.
pub(crate) fn str_param<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// A `YYYY-MM-DD` param as a day number since the epoch, if present.
pub(crate) fn date_param(p: &Value, k: &str) -> Result<Option<i64>, ErrorShape> {
    match str_param(p, k) {
        None => Ok(None),
        Some(s) => crate::calendar::day_of_date(s)
            .map(Some)
            .ok_or_else(|| ErrorShape::invalid(format!("{k} must be YYYY-MM-DD"))),
    }
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
    let Some(handler) = handlers().get(call.method) else {
        return test_hooks::is_hook(call.method).then(|| test_hooks::handle(call));
    };
    if let Err(e) = Schemas::get().check_params(call.method, call.params) {
        return Some(Outcome::Reply(Err(ErrorShape::invalid(format!(
            "invalid {} params: {e}",
            call.method
        )))));
    }
    Some(handler(ctx, call, effects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_belongs_to_one_family() {
        let listed: usize = FAMILIES.iter().map(|(m, _)| m.len()).sum();
        assert_eq!(
            handlers().len(),
            listed,
            "a method is listed in two families"
        );
        assert!(implemented("config.patch") && implemented("health"));
        assert!(!implemented("cron.scratch.get"));
        assert!(all_methods().all(implemented));
    }
}
