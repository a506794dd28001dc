//! Sessions, chat and agent runs (protocol §6.5, §7.1–7.3).
//!
//! Each session is owned by one shard ([`crate::placement`]); every request that changes a
//! session or runs a turn in it travels to the owner (the shard's driver routes it), which alone orders its runs, its
//! idempotency cache and its transcript writes ([`owner`]). The owner emits the run's events
//! once; they fan out to every shard over the bus, so watchers on any shard see them in the
//! order the owner produced them. Answers travel back to the caller's shard and connection.
//! A small replicated index of runs ([`runs`]) lets any shard answer `agent.wait` and find the
//! session of a run id.

pub mod cursor;
pub mod key;
pub mod owner;
pub mod payload;
pub mod row;
pub mod runs;

use serde_json::{Map, Value};

use self::key::SessionKey;

/// Live-text pacing (`LIVE_TEXT_PACING_MS`): deltas of a run at least this far apart.
pub const PACE_MS: u64 = 75;

/// What kind of request started a run (decides its answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SendKind {
    /// `chat.send`: one ack `{runId, status:"started"}`.
    Chat,
    /// `sessions.send`: as `chat.send`.
    Sessions,
    /// `agent`: `accepted`, then the final result on the same request id.
    Agent,
}

impl SendKind {
    /// The name stored with the run record.
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::Chat => "chat",
            SendKind::Sessions => "sessions",
            SendKind::Agent => "agent",
        }
    }

    /// The kind of a stored run record (unknown names are chat turns).
    pub fn parse(s: &str) -> SendKind {
        match s {
            "agent" => SendKind::Agent,
            "sessions" => SendKind::Sessions,
            _ => SendKind::Chat,
        }
    }
}

/// Serialisable so a call can travel to the session's owner host (a cluster); a channel
/// reply route stays on the host of its channel.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SendReq {
    pub kind: SendKind,
    pub message: String,
    /// The idempotency key, which is the run id.
    pub run_id: String,
    /// Hash of what the request asks for: a retry with the same key must match it.
    pub fingerprint: u64,
    /// The caller named the session (the `agent` ack then echoes `sessionKey`).
    pub key_given: bool,
    /// Deliver the reply through a channel too (a message that came in through one).
    #[serde(skip)]
    pub reply_to: Option<crate::channels::ReplyRoute>,
    /// Wait for the session's active run to end instead of interrupting it (hook runs: the
    /// original queues them per session). Carried to a session another cluster host owns.
    #[serde(default)]
    pub queue: bool,
}

/// Which method asked for an abort (the two answer differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AbortVia {
    /// `chat.abort`: `{ok, aborted, runIds}`.
    Chat,
    /// `sessions.abort`: `{ok, abortedRunId, status}`.
    Sessions,
}

/// A request for a session's owner.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum SessionOp {
    Send(SendReq),
    /// Abort the active run (or the named one).
    Abort {
        run_id: Option<String>,
        via: AbortVia,
    },
    Inject {
        message: String,
        label: Option<String>,
    },
    Patch(Map<String, Value>),
    Reset,
    Delete {
        transcript: bool,
    },
    /// A worker's call for its run (`crate::worker`): made on the owner's own host, never
    /// sent to another.
    #[serde(skip)]
    Worker(Box<WorkerCall>),
}

/// A call of a worker process on the worker channel, admitted by the credential minted for
/// run `run_id` under owner epoch `epoch`.
#[derive(Debug, Clone)]
pub struct WorkerCall {
    pub run_id: String,
    pub epoch: u64,
    pub method: String,
    pub params: Value,
}

/// A session request with the caller to answer.
#[derive(Debug, Clone)]
pub struct SessionCall {
    pub caller: Caller,
    pub key: SessionKey,
    pub op: SessionOp,
}

/// A chat-layer request produced by a method handler.
#[derive(Debug, Clone)]
pub enum ChatRequest {
    Session(SessionKey, SessionOp),
    /// `agent.wait`.
    Wait {
        run_id: String,
        timeout_ms: u64,
    },
    /// `sessions.abort` by run id only: find the run's session, then abort there.
    AbortRun {
        run_id: String,
    },
}

pub use crate::effects::Caller;

pub use crate::effects::Answer;

pub use crate::fingerprint::fingerprint;
