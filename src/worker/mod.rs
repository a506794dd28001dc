//! Real agents through the original's agent loop: `openclaw worker` processes that dial back
//! on the worker channel (`/__openclaw__/worker`). The worker runs the loop and the tools in
//! the agent's workspace; ringgate keeps the transcript (each `worker.transcript.commit` is a
//! compare-and-swap on the session's last entry, durable before its answer), turns the
//! worker's live events into the `chat` / `agent` events clients show, and does the model
//! calls on the worker's behalf with the agent's OpenAI-compatible provider.
//!
//! Sans-IO pieces: [`credential`] (what a launch may do, checkable on any shard),
//! [`envelope`] (the launch envelope), [`channel`] (the closed method list and the hello),
//! [`inference`] (provider request and streamed answer). The process pool is
//! `crate::agent::worker_pool`; the run's state lives with the session's owner
//! (`crate::chat::owner`).

pub mod channel;
pub mod credential;
pub mod envelope;
pub mod inference;
