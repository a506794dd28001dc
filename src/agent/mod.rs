//! Agent runtimes: what produces the assistant's reply to a turn. One trait, two runtimes,
//! selected per agent in the config ([`config`]):
//!
//! * [`echo`] — deterministic, streams `echo: <message>` in chunks with a configurable delay,
//!   on the owning shard's own timers; for development, demos and benchmarks.
//! * [`openai`] — any OpenAI-compatible `/v1/chat/completions` endpoint, streamed; the HTTP runs
//!   on a small worker pool off the shards and its deltas come back through the owner's inbox.
//!
//! A runtime reports through a [`Sink`] as a sequence of [`Output`]s: any number of `Delta`s,
//! then exactly one `Done` or `Failed` — unless the turn's cancel flag is raised, after which it
//! may stop reporting at all (the session owner has already finished the run as aborted).

pub mod catalog;
pub mod config;
pub mod echo;
pub mod openai;

use std::{
    cell::RefCell,
    rc::Weak,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::Value;

use crate::{
    bus::{Bus, BusMsg},
    shard::ctx::ShardCtx,
};

/// One message of the conversation given to a runtime as context.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextMessage {
    pub role: &'static str,
    pub text: String,
}

/// A turn to answer.
#[derive(Debug, Clone)]
pub struct Turn {
    pub run_id: Arc<str>,
    pub agent_id: String,
    /// Earlier messages of the session, oldest first, ending with the user's new message.
    pub context: Vec<ContextMessage>,
    /// Raised when the run is aborted; runtimes stop at their next step.
    pub cancel: Arc<AtomicBool>,
}

impl Turn {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// The user's message this turn answers.
    pub fn message(&self) -> &str {
        self.context.last().map(|m| m.text.as_str()).unwrap_or("")
    }
}

/// Token counts of a finished turn.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
}

/// Why a turn failed, in the original's `chat` error vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `errorKind`: `refusal`, `timeout`, `rate_limit` or `context_length`; none for other
    /// failures (server errors, auth), as in the original.
    pub kind: Option<&'static str>,
    pub message: String,
    /// `errorDetail` (provider, model, httpStatus, …), when known.
    pub detail: Option<Value>,
}

/// What a runtime reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// More reply text.
    Delta(String),
    /// The reply is complete.
    Done {
        usage: Usage,
        stop_reason: String,
    },
    Failed(Failure),
}

/// Where a runtime's outputs go: straight into the owner shard's state when the runtime runs on
/// that shard, else through the owner's inbox.
#[derive(Clone)]
pub enum Sink {
    Local(Weak<RefCell<ShardCtx>>),
    Remote(RemoteSink),
}

/// The owner shard's inbox, usable from any thread.
#[derive(Clone)]
pub struct RemoteSink {
    pub bus: Arc<Bus>,
    pub shard: usize,
}

impl RemoteSink {
    pub fn send(&self, run_id: &Arc<str>, out: Output) {
        let mut msg = BusMsg::RunOutput {
            run_id: run_id.clone(),
            out: Box::new(out),
        };
        // Worker threads may wait; a full inbox is retried, never dropped.
        loop {
            match self.bus.inbox(self.shard).push(msg) {
                Ok(()) => return,
                Err(back) => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

impl Sink {
    pub fn send(&self, run_id: &Arc<str>, out: Output) {
        match self {
            Sink::Local(ctx) => {
                if let Some(ctx) = ctx.upgrade() {
                    let effects = ctx.borrow_mut().on_run_output(run_id, out);
                    crate::shard::dispatch::apply(&mut ctx.borrow_mut(), effects);
                }
            }
            Sink::Remote(r) => r.send(run_id, out),
        }
    }
}

/// A runtime: starts answering a turn and returns at once.
pub trait Runtime {
    fn start(&self, turn: Turn, sink: Sink);
}

/// Starts a turn on the runtime configured for it.
pub fn start(
    cfg: &config::RuntimeConfig,
    workers: &openai::Workers,
    turn: Turn,
    me: Weak<RefCell<ShardCtx>>,
    bus: &Arc<Bus>,
    shard: usize,
) {
    match cfg {
        config::RuntimeConfig::Echo {
            delay_ms,
            chunk_chars,
        } => echo::Echo {
            delay_ms: *delay_ms,
            chunk_chars: *chunk_chars,
        }
        .start(turn, Sink::Local(me)),
        config::RuntimeConfig::OpenAi(o) => openai::OpenAi {
            config: o.clone(),
            workers: workers.clone(),
        }
        .start(
            turn,
            Sink::Remote(RemoteSink {
                bus: bus.clone(),
                shard,
            }),
        ),
    }
}

/// A rough token count (about four characters a token) for runtimes that report none.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}
