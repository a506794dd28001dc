//! Handshake timeout (protocol §2.4): a socket that upgrades but never sends `connect` is
//! closed with 1000 and an empty reason once `handshakeTimeoutMs` has passed.

mod common;

use std::time::{Duration, Instant};

use common::{open, Client, Incoming, Server};
use serde_json::json;

#[test]
fn idle_preauth_socket_is_closed_1000() {
    let server = Server::opts()
        .limits(json!({"handshakeTimeoutMs": 500}))
        .start();
    let start = Instant::now();
    let (mut ws, _) = open(&server);
    let (frames, end) = common::recv_until_close(&mut ws, Duration::from_secs(3));
    let elapsed = start.elapsed();
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(end, Incoming::Close(1000, String::new()));
    assert!(
        elapsed >= Duration::from_millis(400),
        "closed too early: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(2),
        "closed too late: {elapsed:?}"
    );
}

#[test]
fn authenticated_socket_is_not_timed_out() {
    let server = Server::opts()
        .limits(json!({"handshakeTimeoutMs": 500}))
        .start();
    let mut c = Client::connect(&server);
    std::thread::sleep(Duration::from_millis(1200));
    let h = c.call("health", None);
    assert_eq!(h["ok"], true);
}
