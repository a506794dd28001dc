//! What an owner of shared state asks the shard to do. Owners (exec approvals first) are plain
//! state machines: a `handle` method takes a request, the time and what it needs to know of
//! the gateway, changes the owner's state and pushes [`Effect`]s; it never touches a socket,
//! a timer, the bus or the store itself. The shard's driver (`shard::drive`) applies the
//! effects and feeds what comes back — a store result, a timer that fired — to the owner as a
//! typed resume `R`. So owner logic is unit-tested by asserting on effects, with a fake clock
//! and no runtime, and a timer cannot act on a request it was not set for: its resume carries
//! the generation of the request that armed it.
//!
//! This module imports nothing from `shard` or `bus`.

use std::sync::Arc;

use serde_json::Value;

use crate::{
    proto::{errors::ErrorShape, frame::EventTemplate},
    store::Op,
};

/// Where an answer goes: a request on a connection of some shard, or an owner on some shard
/// waiting for it in-process (a cron run waiting for its agent turn), which gets it back as a
/// typed value — never as wire bytes, and without a pseudo connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Conn {
        shard: usize,
        conn: u64,
        req_id: String,
    },
    Internal {
        shard: usize,
        waiter: Waiter,
    },
    /// A request on a connection of another cluster host (its answer goes back through the
    /// cluster link as a response frame). Boxed: rare, and every owner stores callers.
    Remote(Box<RemoteCaller>),
}

/// A connection of another cluster host that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCaller {
    pub host: Arc<str>,
    pub shard: usize,
    pub conn: u64,
    pub req_id: String,
}

/// An in-process waiter: which owner waits, and its token (the owner's own request id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    /// The cron service (`cron::service`), by run token.
    Cron(u64),
    /// An HTTP request on that shard (an inbound channel message), by token.
    Http(u64),
}

impl Caller {
    /// A request `req_id` on connection `conn` of `shard`.
    pub fn conn(shard: usize, conn: u64, req_id: impl Into<String>) -> Caller {
        Caller::Conn {
            shard,
            conn,
            req_id: req_id.into(),
        }
    }

    /// The shard the answer goes to.
    pub fn shard(&self) -> usize {
        match self {
            Caller::Conn { shard, .. } | Caller::Internal { shard, .. } => *shard,
            Caller::Remote(r) => r.shard,
        }
    }

    /// The connection of this host that asked, if one did.
    pub fn conn_id(&self) -> Option<u64> {
        match self {
            Caller::Conn { conn, .. } => Some(*conn),
            Caller::Internal { .. } | Caller::Remote(_) => None,
        }
    }

    /// Whether connection `conn` of `shard` asked.
    pub fn is_conn(&self, shard: usize, conn: u64) -> bool {
        self.shard() == shard && self.conn_id() == Some(conn)
    }
}

/// A terminal answer (kept for retries).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok(Value),
    /// `ok:false` with both a payload and the error.
    Failed(Value, ErrorShape),
}

/// One thing for the driver to do. `R` is the owner's resume (what comes back to it); `O` the
/// owner's own actions, which only its driver knows how to carry out (starting an agent turn,
/// queueing a system event) — most owners have none.
#[derive(Debug)]
pub enum Effect<R, O = Never> {
    /// Answer the caller (`ok:true` with the payload, or the error).
    Reply(Caller, Result<Value, ErrorShape>),
    /// Answer the caller with a kept terminal answer.
    Answer(Caller, Answer),
    /// Fan an event out to its audience on every shard.
    Broadcast(EventTemplate),
    /// Deliver an event to one connection on this shard, unsequenced (node traffic). The
    /// driver skips a connection that has gone.
    Event(u64, Arc<EventTemplate>),
    /// Send a ready frame to connection `u64` of shard `usize` (the worker channel's
    /// unsequenced events). The driver skips a connection that has gone.
    Frame(usize, u64, Vec<u8>),
    /// A store write whose outcome the owner does not wait for (the store logs failures).
    Submit(Op),
    /// A store op; its result comes back to the owner with `R`.
    Store(Op, R),
    /// Come back with `R` after this many milliseconds (the driver bounds the duration).
    Timer(u64, R),
    /// Continue with `R` on the same kind of owner on shard `usize` (this one included).
    Route(usize, R),
    /// An action of this owner's own.
    Do(O),
}

/// No owner-specific actions.
#[derive(Debug)]
pub enum Never {}

/// The effects one step of an owner produced, in order.
#[derive(Debug)]
pub struct Effects<R, O = Never>(pub Vec<Effect<R, O>>);

impl<R, O> Default for Effects<R, O> {
    fn default() -> Self {
        Effects(Vec::new())
    }
}

impl<R, O> Effects<R, O> {
    pub fn ok(&mut self, to: &Caller, payload: Value) {
        self.0.push(Effect::Reply(to.clone(), Ok(payload)));
    }

    pub fn err(&mut self, to: &Caller, e: ErrorShape) {
        self.0.push(Effect::Reply(to.clone(), Err(e)));
    }

    pub fn push(&mut self, e: Effect<R, O>) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
impl<R: std::fmt::Debug, O: std::fmt::Debug> Effect<R, O> {
    /// A short name for owner tests: `reply:<conn>:ok|err`, `answer:<conn>:ok|failed`,
    /// `event:<name>`, `submit`, `store`, `timer:<ms>`; anything else as its `Debug` form.
    pub fn short(&self) -> String {
        let conn = |c: &Caller| match c.conn_id() {
            Some(n) => n.to_string(),
            None => format!("{c:?}"),
        };
        match self {
            Effect::Reply(c, r) => {
                let outcome = if r.is_ok() { "ok" } else { "err" };
                format!("reply:{}:{outcome}", conn(c))
            }
            Effect::Answer(c, Answer::Ok(_)) => format!("answer:{}:ok", conn(c)),
            Effect::Answer(c, Answer::Failed(..)) => format!("answer:{}:failed", conn(c)),
            Effect::Broadcast(ev) => format!("event:{}", ev.name),
            Effect::Submit(_) => "submit".into(),
            Effect::Store(..) => "store".into(),
            Effect::Timer(ms, _) => format!("timer:{ms}"),
            other => format!("{other:?}"),
        }
    }
}
