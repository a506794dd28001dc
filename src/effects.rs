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

use serde_json::Value;

use crate::{
    proto::{errors::ErrorShape, frame::EventTemplate},
    store::Op,
};

/// Where an answer goes: a request on a connection of some shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub shard: usize,
    pub conn: u64,
    pub req_id: String,
}

/// A terminal answer (kept for retries).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok(Value),
    /// `ok:false` with both a payload and the error.
    Failed(Value, ErrorShape),
}

/// One thing for the driver to do.
#[derive(Debug)]
pub enum Effect<R> {
    /// Answer the caller (`ok:true` with the payload, or the error).
    Reply(Caller, Result<Value, ErrorShape>),
    /// Answer the caller with a kept terminal answer.
    Answer(Caller, Answer),
    /// Fan an event out to its audience on every shard.
    Broadcast(EventTemplate),
    /// A store write whose outcome the owner does not wait for (the store logs failures).
    Submit(Op),
    /// A store op; its result comes back to the owner with `R`.
    Store(Op, R),
    /// Come back with `R` after this many milliseconds (the driver bounds the duration).
    Timer(u64, R),
}

/// The effects one step of an owner produced, in order.
#[derive(Debug)]
pub struct Effects<R>(pub Vec<Effect<R>>);

impl<R> Default for Effects<R> {
    fn default() -> Self {
        Effects(Vec::new())
    }
}

impl<R> Effects<R> {
    pub fn ok(&mut self, to: &Caller, payload: Value) {
        self.0.push(Effect::Reply(to.clone(), Ok(payload)));
    }

    pub fn err(&mut self, to: &Caller, e: ErrorShape) {
        self.0.push(Effect::Reply(to.clone(), Err(e)));
    }

    pub fn push(&mut self, e: Effect<R>) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
