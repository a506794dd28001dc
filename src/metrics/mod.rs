//! Metrics in the Prometheus text format: the original's `openclaw_*` families (its
//! `diagnostics-prometheus` plugin, `GET /api/diagnostics/prometheus`) and ringgate's own
//! per-shard `ringgate_*` families.
//!
//! * [`shard`]: what a shard counts, in a thread-local of its own thread — plain integers, no
//!   atomics shared across cores, no lock on the per-message path.
//! * [`gather`]: a scrape collects every shard's copy over the bus.
//! * [`render`]: the gathered figures encoded by `prometheus-client`.
//! * [`labels`]: the bounded `method` label.
//! * [`hist`]: fixed-bucket histograms that merge across shards.
//! * [`text`] and [`top`]: reading an exposition back, and `ringgate top`'s per-shard view of it.

pub mod gather;
pub mod hist;
pub mod labels;
pub mod render;
pub mod rpc;
pub mod shard;
pub mod text;
pub mod top;

pub use shard::record;
