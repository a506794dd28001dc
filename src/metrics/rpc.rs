//! Timing one RPC request for `openclaw_gateway_rpc_*`: from receipt (the request frame passed
//! validation) through the handler's return, and through the first response frame queued for
//! the client. Two clock reads per request, none when diagnostics are off.

use std::time::Instant;

use super::{labels, shard};
use crate::methods::Outcome;

/// Outcome phases and values (`openclaw_gateway_rpc_outcomes_total{phase,outcome}`).
pub mod outcome {
    /// The permission gate refused the request (role or scope).
    pub const ADMISSION: &str = "admission";
    /// The handler ran (or no handler exists).
    pub const HANDLER: &str = "handler";
    /// The first response frame was queued for the client.
    pub const RESPONSE: &str = "response";
    pub const OK: &str = "ok";
    pub const ERROR: &str = "error";
    pub const REJECTED: &str = "rejected";
    pub const UNKNOWN_METHOD: &str = "unknown_method";
    /// Answered later: by the storage thread, another shard's owner, or the chat layer.
    pub const DEFERRED: &str = "deferred";
}

/// One request in flight on the shard that received it.
#[derive(Debug, Clone, Copy)]
pub struct Rpc {
    method: usize,
    /// `None` when diagnostics are off.
    received: Option<Instant>,
    failed: bool,
}

/// What a reply answered later needs to record its first response.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    method: usize,
    received: Instant,
}

impl Rpc {
    pub fn received(method: &str) -> Rpc {
        let on = shard::enabled();
        Rpc {
            method: if on { labels::method_index(method) } else { 0 },
            received: on.then(Instant::now),
            failed: false,
        }
    }

    /// The permission gate refused it: counted, no handler ran.
    pub fn denied(&self) {
        if self.received.is_none() {
            return;
        }
        shard::record(|m| {
            m.method(self.method).requests += 1;
            m.rpc_outcome(outcome::ADMISSION, outcome::REJECTED);
        });
    }

    /// The handler returned `o` (`None`: no handler has that name).
    pub fn handled(&mut self, o: &Option<Outcome>) {
        let Some(t0) = self.received else { return };
        let secs = t0.elapsed().as_secs_f64();
        if o.is_none() {
            self.method = labels::UNKNOWN;
        }
        let method = self.method;
        shard::record(|m| {
            let s = m.method(method);
            s.requests += 1;
            s.handler.observe(secs);
            let what = match o {
                None => outcome::UNKNOWN_METHOD,
                Some(Outcome::Reply(Ok(_))) => outcome::OK,
                Some(Outcome::Reply(Err(_))) => outcome::ERROR,
                Some(_) => outcome::DEFERRED,
            };
            m.rpc_outcome(outcome::HANDLER, what);
        });
    }

    /// The answer is an error.
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// The answer was queued for the client.
    pub fn responded(&self) {
        if let Some(t0) = self.received {
            first_response(self.method, t0, !self.failed);
        }
    }

    /// For a reply that the storage thread finishes.
    pub fn pending(&self) -> Option<Pending> {
        self.received.map(|received| Pending {
            method: self.method,
            received,
        })
    }
}

impl Pending {
    /// The deferred answer was queued.
    pub fn responded(self, ok: bool) {
        first_response(self.method, self.received, ok);
    }
}

fn first_response(method: usize, t0: Instant, ok: bool) {
    let secs = t0.elapsed().as_secs_f64();
    shard::record(|m| {
        m.method(method).first_response.observe(secs);
        m.rpc_outcome(
            outcome::RESPONSE,
            if ok { outcome::OK } else { outcome::ERROR },
        );
    });
}
