//! The connect gate's credential checks: shared secret, device proof, failure messages and the
//! per-IP failure limiter. All pure; the handshake in `proto::handshake` composes them.

pub mod device;
pub mod messages;
pub mod ratelimit;
pub mod secret;
pub mod trusted_proxy;
