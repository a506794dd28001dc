//! Graceful shutdown (protocol §5.4, §6.5): on SIGTERM every client receives
//! `shutdown {reason:"gateway stopping"}` then close 1012 "service restart", and the process
//! exits 0.

mod common;

use std::time::Duration;

use common::{Client, Incoming, Server};
use serde_json::json;

#[test]
fn sigterm_sends_shutdown_then_1012_and_exits_0() {
    let mut server = Server::start();
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(&server)).collect();
    // A pre-auth socket is closed too.
    let (mut preauth, _) = common::open(&server);
    for c in &mut clients {
        c.call("health", None);
    }
    server.sigterm();
    for c in &mut clients {
        let (frames, end) = common::recv_until_close(&mut c.ws, Duration::from_secs(5));
        let shutdown: Vec<_> = frames.iter().filter(|f| f["event"] == "shutdown").collect();
        assert_eq!(shutdown.len(), 1, "frames: {frames:?}");
        assert_eq!(
            shutdown[0]["payload"],
            json!({"reason": "gateway stopping"})
        );
        assert_eq!(
            frames.last().unwrap()["event"],
            "shutdown",
            "shutdown must be the last frame before the close: {frames:?}"
        );
        assert_eq!(end, Incoming::Close(1012, "service restart".into()));
    }
    let (frames, end) = common::recv_until_close(&mut preauth, Duration::from_secs(5));
    assert!(
        frames.iter().all(|f| f["event"] != "shutdown"),
        "pre-auth sockets get no events: {frames:?}"
    );
    assert!(
        matches!(end, Incoming::Close(1012, _) | Incoming::Gone(_)),
        "{end:?}"
    );
    drop(clients);
    drop(preauth);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("ringgate did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", server.stderr());
}

#[test]
fn sigterm_with_no_clients_exits_0_quickly() {
    let mut server = Server::start();
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("ringgate did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
}
