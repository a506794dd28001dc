//! Sessions, chat and agent runs (protocol §6.5, §7.1–7.3).
//!
//! Each session is owned by one shard ([`key::owner`]); every request that changes a session or
//! runs a turn in it travels to the owner ([`route`]), which alone orders its runs, its
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
use crate::{bus::BusMsg, proto::errors::ErrorShape, shard::ctx::ShardCtx};

/// Live-text pacing (`LIVE_TEXT_PACING_MS`): deltas of a run at least this far apart.
pub const PACE_MS: u64 = 75;

/// What kind of request started a run (decides its answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone)]
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
    pub reply_to: Option<crate::channels::ReplyRoute>,
}

/// Which method asked for an abort (the two answer differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortVia {
    /// `chat.abort`: `{ok, aborted, runIds}`.
    Chat,
    /// `sessions.abort`: `{ok, abortedRunId, status}`.
    Sessions,
}

/// A request for a session's owner.
#[derive(Debug, Clone)]
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

impl Caller {
    pub fn ok(&self, ctx: &mut ShardCtx, payload: &Value) {
        ctx.answer(self, Answer::Ok(payload.clone()));
    }

    pub fn err(&self, ctx: &mut ShardCtx, e: &ErrorShape) {
        ctx.reply_err(self, e.clone());
    }

    pub fn answer(&self, ctx: &mut ShardCtx, a: &Answer) {
        ctx.answer(self, a.clone());
    }
}

pub use crate::effects::Answer;

/// Runs a chat-layer request from connection `conn` on this shard.
pub fn route(ctx: &mut ShardCtx, conn: u64, req_id: String, req: ChatRequest) {
    let caller = Caller::conn(ctx.id, conn, req_id);
    route_as(ctx, caller, req);
}

/// Runs a chat-layer request for `caller` (a connection, or an owner waiting in-process).
pub fn route_as(ctx: &mut ShardCtx, caller: Caller, req: ChatRequest) {
    match req {
        ChatRequest::Session(key, op) => forward(ctx, caller, key, op),
        ChatRequest::Wait { run_id, timeout_ms } => {
            crate::shard::drive::run_wait(ctx, caller, &run_id, timeout_ms)
        }
        ChatRequest::AbortRun { run_id } => match ctx.run_index.session_of(&run_id) {
            Some(key) => {
                let agent_id = key
                    .strip_prefix("agent:")
                    .and_then(|r| r.split(':').next())
                    .unwrap_or("main")
                    .to_owned();
                let key = SessionKey {
                    canonical: key.to_string(),
                    agent_id,
                };
                forward(
                    ctx,
                    caller,
                    key,
                    SessionOp::Abort {
                        run_id: Some(run_id),
                        via: AbortVia::Sessions,
                    },
                )
            }
            None => caller.ok(
                ctx,
                &serde_json::json!({"ok": true, "abortedRunId": null, "status": "no-active-run"}),
            ),
        },
    }
}

fn forward(ctx: &mut ShardCtx, caller: Caller, key: SessionKey, op: SessionOp) {
    let owner = ctx.placement().session(&key.canonical);
    let call = SessionCall { caller, key, op };
    ctx.route(
        owner,
        call,
        crate::shard::drive::session_call,
        BusMsg::SessionCall,
    );
}

/// A stable 64-bit hash (FNV-1a) of a request's content, for idempotency checks.
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
