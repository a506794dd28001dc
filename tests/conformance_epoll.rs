//! The conformance suite (`tests/conformance_openclaw.rs`: the real OpenClaw CLI, client class
//! and node host against ringgate) with every gateway on monoio's epoll driver (what `auto`
//! picks where io_uring is refused).

#[path = "conformance_openclaw.rs"]
mod suite;
