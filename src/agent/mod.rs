//! Agent runtimes: what produces the assistant's reply to a turn. One trait, two runtimes,
//! selected per agent in the config ([`config`]):
//!
//! * [`echo`] — deterministic, streams `echo: <message>` in chunks with a configurable delay,
//!   on the owning shard's own timers (the shard plays its outputs); for development, demos
//!   and benchmarks.
//! * [`openai`] — any OpenAI-compatible `/v1/chat/completions` endpoint, streamed; the HTTP runs
//!   on a small worker pool off the shards and its deltas come back through the owner's inbox.
//! * `openclaw-worker` — the original's agent loop with its tools, as `openclaw worker`
//!   processes ([`worker_pool`]) on the worker channel (`crate::worker`); ringgate keeps the
//!   transcript and makes the model calls through the agent's OpenAI-compatible provider.
//!
//! A runtime reports as a sequence of [`Output`]s: any number of `Delta`s,
//! then exactly one `Done` or `Failed` — unless the turn's cancel flag is raised, after which it
//! may stop reporting at all (the session owner has already finished the run as aborted).

pub mod catalog;
pub mod config;
pub mod echo;
pub mod openai;
pub mod worker_pool;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use serde_json::Value;

/// One message of the conversation given to a runtime as context.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextMessage {
    /// `user`, `assistant` or `toolResult`.
    pub role: &'static str,
    pub text: String,
    /// The stored message as written (content blocks, tool calls, usage), for runtimes that
    /// hand the conversation on whole (the worker's `initialMessages`).
    pub body: Value,
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

/// Where a runtime running off the shard reports: the owner shard's inbox, from any thread
/// (built by the shard, so runtimes name no shard type). A full inbox is waited on, never
/// dropped.
#[derive(Clone)]
pub struct Sink(Arc<SinkFn>);

type SinkFn = dyn Fn(&Arc<str>, Output) + Send + Sync;

impl Sink {
    pub fn new(f: impl Fn(&Arc<str>, Output) + Send + Sync + 'static) -> Sink {
        Sink(Arc::new(f))
    }

    pub fn send(&self, run_id: &Arc<str>, out: Output) {
        (self.0)(run_id, out)
    }
}

/// A rough token count (about four characters a token) for runtimes that report none.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}
