//! Frame size limits (protocol §1.1, §2.4): 64 KiB before `hello-ok` (close 1009
//! "preauth payload too large"), the configured `maxPayload` after it (close 1009), and
//! `hello-ok.policy.maxPayload` reporting the configured value.

mod common;

use common::{connect_params, open, send_connect, send_text, Client, Incoming, Server};
use serde_json::json;

/// A JSON request frame of about `size` bytes.
fn padded_request(method: &str, size: usize) -> String {
    let frame = json!({"type": "req", "id": "big", "method": method,
                       "params": {"pad": "x".repeat(size)}});
    frame.to_string()
}

#[test]
fn preauth_frame_over_64k_closes_1009() {
    let server = Server::start();
    let (mut ws, _) = open(&server);
    send_text(&mut ws, &padded_request("connect", 70 * 1024));
    let (frames, end) = common::recv_until_close(&mut ws, common::READ_TIMEOUT);
    assert!(frames.is_empty(), "no response expected: {frames:?}");
    assert_eq!(
        end,
        Incoming::Close(1009, "preauth payload too large".into())
    );
}

#[test]
fn preauth_frame_under_64k_is_handled() {
    // Just under the limit: parsed normally (here: not a connect → the usual rejection).
    let server = Server::start();
    let (mut ws, _) = open(&server);
    send_text(&mut ws, &padded_request("health", 60 * 1024));
    let first = common::recv(&mut ws, common::READ_TIMEOUT);
    let msg = "invalid handshake: first request must be connect";
    let err = common::expect_rejection_with_id(&mut ws, first, "big", 1008, msg);
    assert_eq!(err["message"], msg);
}

#[test]
fn post_auth_limit_follows_config() {
    let server = Server::opts().limits(json!({"maxPayload": 8192})).start();
    let mut c = Client::connect(&server);
    assert_eq!(c.hello["policy"]["maxPayload"], 8192);
    assert_eq!(c.hello["policy"]["maxBufferedBytes"], 52428800);

    // Under the limit: served.
    let id = c.send_request("health", Some(json!({"pad": "x".repeat(6000)})));
    let res = c.wait_response(&id, common::READ_TIMEOUT);
    assert_eq!(res["ok"], true, "{res}");

    // Over it: closed 1009.
    c.send_text(&padded_request("health", 10 * 1024));
    let (code, reason) = c.expect_close(common::READ_TIMEOUT);
    assert_eq!(code, 1009, "reason {reason:?}");
}

#[test]
fn post_auth_default_limit_allows_frames_over_64k() {
    // After hello-ok the pre-auth 64 KiB cap no longer applies.
    let server = Server::start();
    let mut c = Client::connect(&server);
    let id = c.send_request("health", Some(json!({"pad": "x".repeat(200 * 1024)})));
    let res = c.wait_response(&id, common::READ_TIMEOUT);
    assert_eq!(res["ok"], true, "{res}");
    // And the limit before hello-ok is per connection.
    let (mut ws, _) = open(&server);
    let first = send_connect(&mut ws, &connect_params());
    assert!(
        matches!(first, Incoming::Json(ref v) if v["ok"] == true),
        "{first:?}"
    );
}
