//! Test-only hooks, off unless the process starts with `RINGGATE_TEST_HOOKS=1` (the
//! integration tests set it; nothing else should). They let a black-box test reach the paths
//! that must never happen in production, to show what the gateway does when they do.
//!
//! `ringgate.test.panic {in}` (admin): `in:"request"` panics inside the method handler — the
//! panic policy confines it to the caller's connection; `in:"task"` panics in a task on the
//! shard, outside any request — the policy stops the process (exit 70).
//!
//! `ringgate.test.stall {ms}` (admin): blocks the shard's thread for `ms` (at most 10 s), as a
//! stuck shard would — for the readiness probe and the watchdog.

use std::sync::OnceLock;

use serde_json::Value;

use super::{Call, Outcome};

/// The hidden methods.
pub const PANIC_METHOD: &str = "ringgate.test.panic";
pub const STALL_METHOD: &str = "ringgate.test.stall";

/// Is `method` one of the hooks (and are they enabled)?
pub fn is_hook(method: &str) -> bool {
    matches!(method, PANIC_METHOD | STALL_METHOD) && enabled()
}

/// Were the hooks enabled at start-up?
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("RINGGATE_TEST_HOOKS").is_ok_and(|v| v == "1"))
}

pub fn handle(call: &Call) -> Outcome {
    if call.method == STALL_METHOD {
        let ms = call
            .params
            .get("ms")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(10_000);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return Outcome::Reply(Ok(serde_json::json!({"ok": true})));
    }
    match call.params.get("in").and_then(Value::as_str) {
        Some("task") => {
            crate::rt::spawn(async {
                panic!("test hook: panic in a shard task");
            });
            Outcome::Reply(Ok(serde_json::json!({"ok": true})))
        }
        _ => panic!("test hook: panic in a request handler"),
    }
}
