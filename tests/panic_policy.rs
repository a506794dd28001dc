//! The panic policy (RELIABILITY.md, "Panics"): a panic while one connection's request is
//! handled closes that connection (1011 "internal error") and the shard serves on; a panic
//! anywhere else stops the process at once with exit code 70 and a log line, so a supervisor
//! restarts it — never a half-dead gateway that accepts connections it does not serve. The
//! panics are reached through a test-only method enabled by `RINGGATE_TEST_HOOKS=1`.

mod common;

use std::time::Duration;

use common::{connect_params, Client, Server, READ_TIMEOUT};
use serde_json::json;

fn with_hooks() -> Server {
    Server::opts().env("RINGGATE_TEST_HOOKS", "1").start()
}

#[test]
fn a_panic_in_a_request_closes_only_that_connection() {
    let server = with_hooks();
    for shard in 0..2 {
        let mut victim = Client::connect_to_shard(&server, &connect_params(), shard);
        let mut neighbour = Client::connect_to_shard(&server, &connect_params(), shard);
        victim.send_request("ringgate.test.panic", Some(json!({"in": "request"})));
        assert_eq!(
            victim.expect_close(READ_TIMEOUT),
            (1011, "internal error".to_owned())
        );
        // The shard lives on: its other connections and new ones are served.
        assert_eq!(neighbour.call("health", None)["ok"], true);
        let mut fresh = Client::connect_to_shard(&server, &connect_params(), shard);
        assert_eq!(fresh.call("health", None)["ok"], true);
    }
    assert!(
        server.stderr().contains("panic contained"),
        "the panic is logged: {}",
        server.stderr()
    );
}

#[test]
fn a_panic_outside_a_request_stops_the_process_with_code_70() {
    let mut server = with_hooks();
    let mut c = Client::connect(&server);
    c.send_request("ringgate.test.panic", Some(json!({"in": "task"})));
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the process stopped");
    assert_eq!(status.code(), Some(70), "{status:?}");
    let log = server.stderr();
    assert!(
        log.contains("fatal: panic on thread ringgate-shard-"),
        "one clear line: {log}"
    );
}

#[test]
fn the_hooks_are_off_by_default() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    let e = c.call_err("ringgate.test.panic", Some(json!({"in": "request"})));
    assert_eq!(e["message"], "unknown method: ringgate.test.panic", "{e}");
}
