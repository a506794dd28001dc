//! The original's inbound webhooks (`hooks.*`): `POST <hooks.path>/wake` queues a system
//! event, `POST <hooks.path>/agent` runs an agent turn in a `hook:` session, and mappings turn
//! any other payload into either through `{{…}}` templates. This module decides (config,
//! templates, the plan for a request, the untrusted-content boundary); `shard::hooks` reads
//! the request and runs the plan.

pub mod config;
pub mod plan;
pub mod template;
pub mod wrap;

pub use config::HooksConfig;
