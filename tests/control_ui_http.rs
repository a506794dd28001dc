//! The Control UI's HTTP surface on the gateway port, as the original serves it, against a
//! small synthetic UI build (so these tests need nothing installed): the prepared
//! `index.html` for the root and page paths, fingerprinted assets from any depth with
//! long-lived caching and their precompressed forms, security headers, 404 (not 426) for the
//! rest and for anything outside the root, the authenticated bootstrap config, the probes.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use common::{http_raw, Server, TempDir, TOKEN};
use serde_json::{json, Value};

const INDEX: &str = r#"<!doctype html>
<html data-openclaw-control-ui-build-id="build-7" lang="en">
<head><link rel="icon" href="./favicon.svg" />
<script>window.__boot = 1;</script>
<script type="module" crossorigin src="./assets/app-abc123.js"></script></head>
<body></body></html>"#;

/// A UI build: index, one fingerprinted asset with a `.br` twin, a favicon.
fn ui_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("ui");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("index.html"), INDEX).unwrap();
    std::fs::write(root.join("assets/app-abc123.js"), "console.log('plain');").unwrap();
    std::fs::write(root.join("assets/app-abc123.js.br"), b"BROTLI-BYTES").unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg/>").unwrap();
    root
}

fn server_with(dir: &TempDir, extra: &str) -> Server {
    let root = ui_root(dir.path());
    Server::opts()
        .config(&format!(
            r#"{{gateway: {{controlUi: {{root: {:?} {extra}}}}}}}"#,
            root.display().to_string()
        ))
        .start()
}

fn get(server: &Server, path: &str, headers: &[&str]) -> common::HttpResponse {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    http_raw(server.addr, &(req + "\r\n"))
}

const HTML: &str = "Accept: text/html,application/xhtml+xml";

#[test]
fn the_index_is_served_prepared_for_the_root_and_every_page() {
    let dir = TempDir::new("ui-index");
    let server = server_with(&dir, "");
    for path in ["/", "/chat/main", "/settings/devices", "/approve/abc"] {
        let r = get(&server, path, &[HTML]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(r.head.contains("content-type: text/html; charset=utf-8"));
        assert!(r.body.contains(
            r#"<html data-openclaw-control-ui-base-path="" data-openclaw-terminal-enabled="false" data-openclaw-control-ui-build-id="build-7" lang="en">"#
        ), "{}", r.body);
        assert!(
            r.body.contains(r#"src="/assets/app-abc123.js""#),
            "absolute asset URLs"
        );
        assert!(r.body.contains(r#"href="/favicon.svg?v=build-7""#));
        for h in [
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "cache-control: no-cache",
        ] {
            assert!(r.head.contains(h), "{path}: missing {h} in {}", r.head);
        }
        // The CSP allows exactly the page's inline script.
        assert!(r
            .head
            .contains("content-security-policy: default-src 'self'"));
        assert!(r.head.contains("script-src 'self' 'sha256-"));
    }
    // HEAD: the same headers, no body.
    let r = http_raw(
        server.addr,
        "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "{r:?}");
    // A script-like request for a page path is a 404, not the HTML.
    assert_eq!(
        get(&server, "/chat/main", &["Accept: application/javascript"]).status,
        404
    );
}

#[test]
fn assets_from_any_depth_cached_for_good_and_precompressed() {
    let dir = TempDir::new("ui-assets");
    let server = server_with(&dir, "");
    for path in [
        "/assets/app-abc123.js",
        "/settings/devices/assets/app-abc123.js",
    ] {
        let r = get(&server, path, &[]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body, "console.log('plain');");
        assert!(r
            .head
            .contains("content-type: application/javascript; charset=utf-8"));
        assert!(r
            .head
            .contains("cache-control: public, max-age=31536000, immutable"));
        assert!(r.head.contains("vary: accept-encoding"));
    }
    let r = get(
        &server,
        "/assets/app-abc123.js",
        &["Accept-Encoding: gzip, deflate, br"],
    );
    assert_eq!(r.body, "BROTLI-BYTES");
    assert!(r.head.contains("content-encoding: br"), "{}", r.head);
    let r = get(&server, "/favicon.svg", &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "<svg/>"));
    assert!(r.head.contains("content-type: image/svg+xml"));
    assert!(
        r.head.contains("cache-control: no-cache"),
        "unversioned: revalidate"
    );
    let r = get(&server, "/favicon.svg?v=build-7", &[]);
    assert!(
        r.head.contains("immutable"),
        "versioned public asset: {}",
        r.head
    );
    // Missing assets and the `.br` files themselves are 404, with the security headers.
    for path in [
        "/assets/missing.js",
        "/assets/app-abc123.js.br",
        "/nothing.png",
    ] {
        let r = get(&server, path, &[HTML]);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.head.contains("x-frame-options: deny"), "{path}");
    }
}

#[test]
fn nothing_outside_the_root_is_ever_served() {
    let dir = TempDir::new("ui-traversal");
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let server = server_with(&dir, "");
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/%00/secret.txt",
        "//etc/passwd",
        "/assets/../../secret.txt",
    ] {
        let r = get(&server, path, &[HTML]);
        assert!(
            !r.body.contains("TOP-SECRET") && !r.body.contains("root:"),
            "{path} leaked: {r:?}"
        );
        assert!(r.status == 404 || r.status == 200, "{path}: {r:?}");
    }
}

#[test]
fn the_bootstrap_config_needs_the_shared_secret() {
    let dir = TempDir::new("ui-config");
    let server = server_with(&dir, "");
    for path in [
        "/control-ui-config.json",
        "/__openclaw/control-ui-config.json",
        "/__openclaw__/control-ui-config.json",
    ] {
        let r = get(&server, path, &[]);
        assert_eq!(r.status, 401, "{path}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "Unauthorized", "type": "unauthorized"}})
        );
        assert_eq!(
            get(&server, path, &["Authorization: Bearer wrong"]).status,
            401
        );
        let r = get(&server, path, &[&format!("Authorization: Bearer {TOKEN}")]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["basePath"], "");
        assert_eq!(v["assistantName"], "Assistant");
        assert_eq!(v["assistantAgentId"], "main");
        assert_eq!(v["serverBuildId"], "build-7");
        assert!(v["serverVersion"].is_string());
        assert_eq!(v["pluginFrameGrants"], json!([]));
    }
    // The image routes the UI requests: 401 without credentials, 404 with (none kept).
    let r = get(&server, "/api/users/gateway-owner/avatar", &[]);
    assert_eq!(r.status, 401);
    let r = get(
        &server,
        "/api/users/gateway-owner/avatar",
        &[&format!("Authorization: Bearer {TOKEN}")],
    );
    assert_eq!(r.status, 404);
}

#[test]
fn probes_answer_like_the_original() {
    let dir = TempDir::new("ui-probes");
    let server = server_with(&dir, "");
    for path in ["/health", "/healthz"] {
        let r = get(&server, path, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&r.body).unwrap(),
            json!({"ok": true, "status": "live"})
        );
        assert!(r.head.contains("cache-control: no-store"));
    }
    // Ready once every shard runs its loop and the store answers (loopback sees details).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&server, "/readyz", &[]);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        if r.status == 200 {
            assert_eq!(v["ready"], true);
            assert_eq!(v["failing"], json!([]));
            assert!(v["uptimeMs"].is_u64());
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&server, "/ready", &[]).status, 200);
    for path in ["/startup", "/startupz"] {
        let v: Value = serde_json::from_str(&get(&server, path, &[]).body).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["status"], "started");
        assert!(v["version"].is_string());
    }
    // Other methods, sub-paths and unknown paths.
    let r = http_raw(
        server.addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        get(&server, "/healthz/x", &["Accept: application/json"]).status,
        404
    );
    assert_eq!(get(&server, "/api/anything", &[]).status, 404);
    assert_eq!(get(&server, "/ui/x", &[HTML]).status, 404);
}

/// A shard that stops running its loop makes `/readyz` fail (503, naming it) until it runs
/// again. The stall is a test hook that blocks the shard's thread.
#[test]
fn a_stalled_shard_makes_readiness_fail() {
    let dir = TempDir::new("ui-ready");
    let root = ui_root(dir.path());
    let server = Server::opts()
        .env("RINGGATE_TEST_HOOKS", "1")
        .config(&format!(
            r#"{{gateway: {{controlUi: {{root: {:?}}}}}}}"#,
            root.display().to_string()
        ))
        .start();
    let ready = || get(&server, "/readyz", &[]).status == 200;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = common::Client::connect_to_shard(&server, &common::connect_params(), 0);
    c.send_request("ringgate.test.stall", Some(json!({"ms": 4000})));
    // Connections the kernel hands to the stalled shard wait; the other shard answers.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let addr = server.addr;
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).ok()?;
                    s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .ok()?;
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    (buf.starts_with("HTTP/1.1 503")).then_some(buf)
                })
            })
            .collect();
        for h in handles {
            if let Ok(Some(b)) = h.join() {
                seen = Some(b);
            }
        }
    }
    let body = seen.expect("a 503 from the healthy shard while the other stalled");
    assert!(body.contains(r#""failing":["shard-0"]"#), "{body}");
    // Once the stall ends, ready again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "not ready again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_base_path_mounts_the_ui_under_it() {
    let dir = TempDir::new("ui-base");
    let server = server_with(&dir, r#", basePath: "/ui""#);
    let r = get(&server, "/ui", &[HTML]);
    assert_eq!(r.status, 302);
    assert!(r.head.contains("location: /ui/"), "{}", r.head);
    let r = get(&server, "/ui/", &[HTML]);
    assert_eq!(r.status, 200);
    assert!(r
        .body
        .contains(r#"data-openclaw-control-ui-base-path="/ui""#));
    assert!(r.body.contains(r#"src="/ui/assets/app-abc123.js""#));
    assert_eq!(get(&server, "/ui/assets/app-abc123.js", &[]).status, 200);
    assert_eq!(get(&server, "/", &[HTML]).status, 404);
    let r = get(
        &server,
        "/ui/control-ui-config.json",
        &[&format!("Authorization: Bearer {TOKEN}")],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["basePath"],
        "/ui"
    );
}

#[test]
fn a_disabled_or_missing_ui_is_said_so() {
    let dir = TempDir::new("ui-off");
    let server = server_with(&dir, ", enabled: false");
    assert_eq!(get(&server, "/", &[HTML]).status, 404);
    assert_eq!(get(&server, "/healthz", &[]).status, 200);
    let server = Server::opts()
        .config(r#"{gateway: {controlUi: {root: "/nonexistent/ui"}}}"#)
        .start();
    let r = get(&server, "/", &[HTML]);
    assert_eq!(r.status, 503);
    assert!(r.body.contains("/nonexistent/ui"), "{r:?}");
    assert!(server
        .stderr()
        .contains("Control UI assets not found at /nonexistent/ui"));
}

#[test]
fn requests_share_a_kept_alive_connection() {
    let dir = TempDir::new("ui-keepalive");
    let server = server_with(&dir, "");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Two requests in one write (pipelined), then a third after the answers.
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /favicon.svg HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("<svg/>") {
        let n = s.read(&mut buf).expect("both answers");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK"), "{rest}");
    assert!(rest.contains("Connection: close"));
}

/// Request targets that are not paths (found by fuzzing: a multi-byte first character was
/// sliced in the middle, a panic that took the process down) are refused, and the gateway
/// serves on. Absolute-form targets name their path.
#[test]
fn odd_request_targets_are_refused_and_survived() {
    let dir = TempDir::new("ui-targets");
    let server = server_with(&dir, "");
    for target in ["ɷ/", "*", "assets/app-abc123.js", "ɷ"] {
        let r = http_raw(
            server.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 400, "{target}: {r:?}");
    }
    let r = get(&server, "http://127.0.0.1/assets/app-abc123.js", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(get(&server, "/healthz", &[]).status, 200, "still serving");
}
