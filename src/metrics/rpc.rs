//! Timing one RPC request for `openclaw_gateway_rpc_*`: from receipt (the request frame passed
//! validation) through the handler's return, and through the first response frame queued for
//! the client.
//!
//! Cheap by construction: the method label comes from the table entry the permission gate
//! looks up anyway; a request answered inline costs two clock reads and one thread-local
//! update (its handler and first-response times are one measurement, dispatch through the
//! queued reply); with diagnostics off, nothing.

use std::time::Instant;

use super::{
    labels,
    shard::{self, Outcome, Phase},
};
use crate::{methods::Outcome as Handled, proto::scopes::MethodSpec};

/// One request in flight on the shard that received it.
#[derive(Debug, Clone, Copy)]
pub struct Rpc {
    method: usize,
    /// `None` when diagnostics are off.
    received: Option<Instant>,
    /// Set once the handler returned: an answer produced inline (recorded at `responded`).
    inline: Option<Outcome>,
    failed: bool,
}

/// What a reply answered later needs to record its first response.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    method: usize,
    received: Instant,
}

impl Rpc {
    pub fn received(spec: Option<&'static MethodSpec>) -> Rpc {
        let on = shard::enabled();
        Rpc {
            method: if on { labels::spec_index(spec) } else { 0 },
            received: on.then(Instant::now),
            inline: None,
            failed: false,
        }
    }

    /// The permission gate refused it: counted, no handler ran.
    pub fn denied(&mut self) {
        if self.received.is_some() {
            self.inline = Some(Outcome::Rejected);
            self.failed = true;
        }
    }

    /// The handler returned `o` (`None`: no handler has that name).
    pub fn handled(&mut self, o: &Option<Handled>) {
        let Some(t0) = self.received else { return };
        let what = match o {
            None => Outcome::UnknownMethod,
            Some(Handled::Reply(Ok(_))) => Outcome::Ok,
            Some(Handled::Reply(Err(_))) => Outcome::Error,
            Some(_) => Outcome::Deferred,
        };
        if o.is_none() {
            self.method = labels::UNKNOWN;
        }
        if what != Outcome::Deferred {
            // Answered inline: `responded` records it with one more clock read.
            self.inline = Some(what);
            return;
        }
        let secs = t0.elapsed().as_secs_f64();
        let method = self.method;
        shard::record(|m| {
            let s = m.method(method);
            s.requests += 1;
            s.handler.observe(secs);
            m.rpc_outcome(Phase::Handler, Outcome::Deferred);
        });
    }

    /// The answer is an error.
    pub fn failed(&mut self) {
        self.failed = true;
    }

    /// The inline answer was queued for the client.
    pub fn responded(&self) {
        let (Some(t0), Some(what)) = (self.received, self.inline) else {
            return;
        };
        let secs = t0.elapsed().as_secs_f64();
        let (method, ok) = (self.method, !self.failed);
        shard::record(|m| {
            let s = m.method(method);
            s.requests += 1;
            s.first_response.observe(secs);
            if what == Outcome::Rejected {
                m.rpc_outcome(Phase::Admission, Outcome::Rejected);
            } else {
                s.handler.observe(secs);
                m.rpc_outcome(Phase::Handler, what);
            }
            m.rpc_outcome(Phase::Response, Outcome::ok(ok));
        });
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
        let secs = self.received.elapsed().as_secs_f64();
        shard::record(|m| {
            m.method(self.method).first_response.observe(secs);
            m.rpc_outcome(Phase::Response, Outcome::ok(ok));
        });
    }
}
