//! Plain HTTP on the gateway port (protocol §1.1): health probes, 426 for non-upgrade
//! requests, 403 for upgrades that came through an unattributed proxy.

mod common;

use common::{http_raw, upgrade_request, Server};

#[test]
fn healthz_and_readyz() {
    let server = Server::start();
    for path in ["/healthz", "/readyz"] {
        let r = http_raw(
            server.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(r.head.contains("content-type: application/json"), "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
        assert_eq!(v["ok"], true, "{v}");
    }
}

#[test]
fn plain_get_is_426() {
    let server = Server::start();
    let r = http_raw(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 426, "{r:?}");
}

#[test]
fn forwarded_upgrade_is_403() {
    let server = Server::start();
    for h in [
        "X-Forwarded-For: 203.0.113.7",
        "Forwarded: for=203.0.113.7",
        "X-Real-IP: 203.0.113.7",
    ] {
        let r = http_raw(server.addr, &upgrade_request(server.addr, &[h]));
        assert_eq!(r.status, 403, "{h}: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
        assert_eq!(v["error"]["type"], "proxy_attribution_required", "{v}");
    }
    // The same upgrade without the proxy header is accepted.
    let (_ws, ch) = common::open(&server);
    assert_eq!(ch["event"], "connect.challenge");
}

#[test]
fn garbage_request_is_400() {
    let server = Server::start();
    let r = http_raw(server.addr, "\u{1}\u{2}garbage\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");
}
