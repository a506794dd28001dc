//! # ringgate
//!
//! A thread-per-core, io_uring reimplementation of the OpenClaw Gateway control plane: the
//! WebSocket server that OpenClaw's CLI, TUI, apps and node hosts connect to. It speaks the same
//! wire protocol (v4; v3 for nodes and probes).
//!
//! ## Shape
//!
//! * [`shard`]: one OS thread per core, pinned, each running its own runtime (monoio on
//!   io_uring, or on epoll where io_uring is unavailable, or glommio when asked for; all behind
//!   the seam in [`rt`]), its own `SO_REUSEPORT` listener and its own client table. A connection lives its whole life on the shard that accepted it; nothing on the
//!   per-message path takes a lock.
//! * [`bus`]: one bounded lock-free inbox per shard. A broadcast is encoded once on its origin
//!   shard ([`proto::frame::EventTemplate`], with a `seq` slot) and crosses to each other shard
//!   once, where it fans out locally.
//! * [`proto`]: the sans-IO protocol layer — frames, schemas, errors, the connect gate, the
//!   permission gate and event recipient rules — unit-tested without sockets.
//! * [`auth`]: shared secret, device proof, failure messages, the per-IP failure limiter.
//! * [`methods`]: the method layer, one module per family.
//! * [`state`]: replicated global state (presence) and the process-wide counters.
//! * [`pairing`] and [`store`]: device pairing decisions (pure) and the storage thread that
//!   owns the SQLite database and the authoritative pairing state; shards hold replicas.
//! * [`chat`]: sessions, chat and agent runs. Each session is owned by one shard (hash of its
//!   key), which orders its runs, idempotency cache and transcript writes; its events fan out
//!   to every shard. [`agent`]: the runtimes that answer a turn (echo; OpenAI-compatible
//!   streaming on a worker pool off the shards).
//! * [`channels`]: channel adapters (`channels.*`, `send`); the built-in `webhook` channel
//!   delivers signed HTTP POSTs with retries on its own threads and verifies signed inbound
//!   requests.
//! * [`placement`]: which shard owns what (a session, a send key, approvals, cron).
//! * [`effects`]: the vocabulary of the owners of shared state, which are sans-IO state
//!   machines — the chat owner ([`chat::owner`]), the run index ([`chat::runs`]), exec
//!   approvals ([`approvals`]), node invokes ([`nodes::invoke`]), channel sends
//!   ([`channels::sends`]) and the cron service ([`cron::service`]). A step takes a request or
//!   a typed resume, the time and the config, changes the owner's state and pushes effects:
//!   answers (to a connection, or to an owner waiting in-process), broadcasts, events for one
//!   connection, store ops and timers that come back as typed resumes (a timer carries the
//!   generation it was set for), messages for the same owner on another shard, and the
//!   owner's own actions. They are unit-tested through their effects with a fake clock.
//!   `shard::drive` is the one driver: it runs each step with the shard's clock and config and
//!   applies the effects (fan-out, bus, encoding, store tasks, timers, starting runtimes).
//!   No domain folder (`chat`, `approvals`, `cron`, `nodes`, `channels`, `agent`) imports
//!   `shard`, `bus` or the runtime; `make lint` checks it (`tools/lint/sans_io_imports.sh`).
//!   The storage thread publishes through a trait the bus implements, so `store` sits below
//!   the shards too.
//!
//! ## The three gates
//!
//! *connect* ([`proto::handshake`]), *permission* ([`proto::scopes`]) and *bandwidth* (payload
//! limits pre/post auth, per-connection buffered bytes, a per-shard buffered-bytes budget; see
//! [`config::Limits`]).

pub mod agent;
pub mod approvals;
pub mod auth;
pub mod bus;
pub mod calendar;
pub mod channels;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod config_doc;
pub mod config_schema;
pub mod cron;
pub mod effects;
pub mod fingerprint;
pub mod hooks;
pub mod http;
pub mod logs;
pub mod methods;
pub mod metrics;
pub mod nodes;
pub mod pairing;
pub mod panic_policy;
pub mod placement;
pub mod proto;
pub mod rt;
pub mod shard;
pub mod skills;
pub mod state;
pub mod store;
pub mod sysinfo;
pub mod tls;
pub mod worker;
