//! The conformance suite (`tests/conformance_openclaw.rs`: the real OpenClaw CLI, client class
//! and node host against ringgate) with every gateway on the glommio driver.

#[path = "conformance_openclaw.rs"]
mod suite;
