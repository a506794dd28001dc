//! The unauthorized-role flood guard (protocol §5.4): more than 10 consecutive
//! `unauthorized role` errors close the connection 1008 "repeated unauthorized calls"; any
//! other response resets the count.

mod common;

use common::{Client, Server, READ_TIMEOUT};
use serde_json::json;

fn node_event(c: &mut Client) -> serde_json::Value {
    c.call_err(
        "node.event",
        Some(json!({"event": "x", "payloadJSON": "{}"})),
    )
}

fn expect_role_error(err: &serde_json::Value) {
    assert_eq!(
        err,
        &json!({"code": "INVALID_REQUEST", "message": "unauthorized role: operator"})
    );
}

#[test]
fn eleven_unauthorized_calls_close_the_connection() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    for _ in 0..11 {
        expect_role_error(&node_event(&mut c));
    }
    let (code, reason) = c.expect_close(READ_TIMEOUT);
    assert_eq!(
        (code, reason.as_str()),
        (1008, "repeated unauthorized calls")
    );
}

#[test]
fn a_valid_call_resets_the_count() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    for _ in 0..10 {
        expect_role_error(&node_event(&mut c));
    }
    c.call("health", None);
    for _ in 0..10 {
        expect_role_error(&node_event(&mut c));
    }
    // Still open: 10 in a row is allowed.
    c.call("health", None);
    // An error that is not a role error resets it as well.
    for _ in 0..10 {
        expect_role_error(&node_event(&mut c));
    }
    c.call_err("no.such.method", None);
    for _ in 0..10 {
        expect_role_error(&node_event(&mut c));
    }
    let h = c.call("health", None);
    assert_eq!(h["ok"], true);
}
