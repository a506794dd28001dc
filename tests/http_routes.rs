//! Plain HTTP on the gateway port (protocol §1.1): health probes, 404 for requests that are
//! neither an upgrade nor the Control UI's, 403 for upgrades that came through an
//! unattributed proxy, 400/431 for malformed or ambiguous heads.

mod common;

use common::{http_raw, upgrade_request, Server};

#[test]
fn healthz_and_readyz() {
    let server = Server::start();
    let r = http_raw(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.head.contains("content-type: application/json"), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(v, serde_json::json!({"ok": true, "status": "live"}));
    // Readiness: 503 naming what is not up yet, then 200 once every shard and the store run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = http_raw(server.addr, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
        if r.status == 200 {
            assert_eq!(v["ready"], true, "{v}");
            break;
        }
        assert_eq!(r.status, 503, "{r:?}");
        assert!(!v["failing"].as_array().unwrap().is_empty(), "{v}");
        assert!(std::time::Instant::now() < deadline, "never ready: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn plain_requests_outside_the_ui_are_404_not_426() {
    let server = Server::start();
    for req in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let r = http_raw(server.addr, req);
        assert_eq!(r.status, 404, "{req:?}: {r:?}");
    }
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

/// A body framed two ways (`Content-Length` and `Transfer-Encoding`, or two lengths) is the
/// request-smuggling shape: refused with 400 whatever the path, as Node does. Accepted before.
#[test]
fn ambiguous_body_framing_is_400() {
    let server = Server::start();
    for head in [
        "POST /channels/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /channels/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "POST /channels/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let r = http_raw(server.addr, head);
        assert_eq!(r.status, 400, "{head:?}: {r:?}");
    }
}

/// Probes answer `GET` and `HEAD` only (405 with `Allow`), as the original.
#[test]
fn probes_refuse_other_methods() {
    let server = Server::start();
    for m in ["POST", "PUT", "DELETE"] {
        let r = http_raw(
            server.addr,
            &format!("{m} /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(r.status, 405, "{m}: {r:?}");
    }
}

/// A real request with many headers (a browser behind a couple of proxies) is served; past
/// the limit the answer is 431, not a generic 400.
#[test]
fn many_headers_are_served_and_too_many_get_431() {
    let server = Server::start();
    let with = |n: usize| {
        let mut h = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for i in 0..n {
            h.push_str(&format!("X-Header-{i}: value\r\n"));
        }
        h + "\r\n"
    };
    assert_eq!(http_raw(server.addr, &with(100)).status, 200);
    assert_eq!(http_raw(server.addr, &with(300)).status, 431);
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(20_000)
    );
    assert_eq!(http_raw(server.addr, &huge).status, 431);
}
