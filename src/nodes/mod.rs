//! Nodes (protocol §2.7, §7.8): devices and hosts connected with `role: "node"` that expose
//! commands. The registry of connected nodes is replicated on every shard by deltas
//! ([`registry`]); `node.invoke` is forwarded from the caller's shard to the node's shard and the
//! node's `node.invoke.result` is routed back ([`invoke`]): the caller's shard keeps the pending
//! invoke (its deadline and its caller), the node's shard knows which invokes its node owes.

pub mod invoke;
pub mod registry;
pub mod surface;
