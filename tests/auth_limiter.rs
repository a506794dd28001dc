//! The auth-failure limiter counts per client IP across the whole gateway: ten failed
//! shared-secret checks in a minute lock a remote IP out, however the kernel spread its
//! connections over the shards. (Each shard used to count alone, allowing 10 × shards.)
//!
//! Loopback is never locked out, so this test reaches the server through the host's own
//! non-loopback address; on a host without one it says so and does nothing.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};

use common::{connect_params, open_on, recv, send_connect, Incoming, Server, READ_TIMEOUT};
use serde_json::json;

/// This host's address on its default route (no packet is sent).
fn own_address() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// One connect with a wrong token; returns the error it got.
fn failed_connect(addr: SocketAddr) -> serde_json::Value {
    let stream = std::net::TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
    let mut ws = open_on(stream, addr, &[]).expect("upgrade");
    let _challenge = recv(&mut ws, READ_TIMEOUT);
    let mut p = connect_params();
    p["auth"] = json!({"token": "wrong"});
    match send_connect(&mut ws, &p) {
        Incoming::Json(v) => {
            assert_eq!(v["ok"], false, "{v}");
            v["error"].clone()
        }
        other => panic!("expected an error response, got {other:?}"),
    }
}

#[test]
fn failures_on_every_shard_count_toward_one_lockout() {
    let Some(ip) = own_address() else {
        eprintln!("no non-loopback address on this host: the remote lockout is not exercised");
        return;
    };
    let server = Server::opts().bind("0.0.0.0").shards(2).start();
    let addr = SocketAddr::new(ip, server.addr.port());
    for i in 0..10 {
        let e = failed_connect(addr);
        assert_eq!(
            e["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "failure {i}: {e}"
        );
    }
    // Whichever shard the next connects land on, the IP is locked out — even with the
    // right token.
    for _ in 0..6 {
        let stream = std::net::TcpStream::connect_timeout(&addr, READ_TIMEOUT).unwrap();
        let mut ws = open_on(stream, addr, &[]).expect("upgrade");
        let _challenge = recv(&mut ws, READ_TIMEOUT);
        match send_connect(&mut ws, &connect_params()) {
            Incoming::Json(v) => {
                assert_eq!(v["ok"], false, "{v}");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("too many failed authentication attempts"),
                    "{v}"
                );
                assert!(v["error"]["retryAfterMs"].as_u64().unwrap() > 0, "{v}");
            }
            other => panic!("expected the lockout, got {other:?}"),
        }
    }
    // Loopback is still served (connecting to 0.0.0.0 reaches the host over loopback).
    let mut c = common::Client::connect(&server);
    assert_eq!(c.call("health", None)["ok"], true);
}
