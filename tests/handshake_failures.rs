//! Handshake failures (protocol §2.4, §2.5): for each, the exact `res` error (code, message,
//! `details.code`) and the close code/reason that follows, or the bare close when the original
//! sends no response.

mod common;

use common::{
    add_device, connect_params, expect_close, expect_rejection, open, open_with_headers,
    send_connect, send_json, send_text, Incoming, Server, READ_TIMEOUT,
};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const MSG_TOKEN_MISMATCH: &str =
    "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)";
const MSG_TOKEN_MISSING: &str =
    "unauthorized: gateway token missing (use this gateway's gateway.auth.token or pair the device)";
const MSG_FIRST_REQUEST: &str = "invalid handshake: first request must be connect";
const MSG_UNKNOWN_CLIENT_ID: &str =
    "invalid connect params: at /client/id: must be equal to one of the allowed values";
const MSG_CONTROL_UI_DEVICE: &str =
    "control ui requires device identity (use HTTPS or localhost secure context)";
const MSG_ORIGIN: &str = "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)";

/// Close reasons are the message truncated to 120 UTF-8 bytes.
fn truncated(s: &str) -> &str {
    if s.len() <= 120 {
        s
    } else {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        &s[..end]
    }
}

/// Connects with `params` and expects a rejection closing with `close` and the message as the
/// reason (truncated); returns the error object.
fn rejected(server: &Server, params: &Value, close: u16) -> Value {
    let (mut ws, _) = open(server);
    let first = send_connect(&mut ws, params);
    let msg = match &first {
        Incoming::Json(v) => v["error"]["message"].as_str().unwrap_or("").to_owned(),
        _ => String::new(),
    };
    let reason = if close == 1002 {
        "protocol mismatch".to_owned()
    } else {
        truncated(&msg).to_owned()
    };
    expect_rejection(&mut ws, first, close, &reason)
}

/// Expects the connection to close with `(code, reason)` and no response before it.
fn bare_close(ws: &mut common::Ws, code: u16, reason: &str) {
    let (frames, end) = common::recv_until_close(ws, READ_TIMEOUT);
    assert!(frames.is_empty(), "no response expected, got {frames:?}");
    assert_eq!(end, Incoming::Close(code, reason.to_owned()));
}

#[test]
fn bad_token() {
    let server = Server::start();
    let mut p = connect_params();
    p["auth"]["token"] = json!("wrong");
    let err = rejected(&server, &p, 1008);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": MSG_TOKEN_MISMATCH,
               "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch",
                           "canRetryWithDeviceToken": false,
                           "recommendedNextStep": "update_auth_credentials"}})
    );
}

#[test]
fn missing_token() {
    let server = Server::start();
    let mut p = connect_params();
    p.as_object_mut().unwrap().remove("auth");
    let err = rejected(&server, &p, 1008);
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(err["message"], MSG_TOKEN_MISSING);
    assert_eq!(err["details"]["code"], "AUTH_TOKEN_MISSING");
    assert_eq!(err["details"]["authReason"], "token_missing");
    assert_eq!(
        err["details"]["recommendedNextStep"],
        "update_auth_configuration"
    );
}

#[test]
fn first_request_not_connect() {
    let server = Server::start();
    let (mut ws, _) = open(&server);
    send_json(
        &mut ws,
        &json!({"type": "req", "id": "1", "method": "health"}),
    );
    let first = common::recv(&mut ws, READ_TIMEOUT);
    let err = expect_rejection(&mut ws, first, 1008, MSG_FIRST_REQUEST);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": MSG_FIRST_REQUEST})
    );
}

#[test]
fn non_json_first_frame_closes_1000_without_response() {
    let server = Server::start();
    let (mut ws, _) = open(&server);
    send_text(&mut ws, "this is not json");
    bare_close(&mut ws, 1000, "");
}

#[test]
fn json_that_is_not_a_request_closes_1008_without_response() {
    let server = Server::start();
    let (mut ws, _) = open(&server);
    send_json(&mut ws, &json!({"type": "event", "event": "hello"}));
    bare_close(&mut ws, 1008, "invalid request frame");

    // A req frame with an unknown top-level field is not a valid request frame either.
    let (mut ws, _) = open(&server);
    send_json(
        &mut ws,
        &json!({"type": "req", "id": "1", "method": "connect", "bogus": 1}),
    );
    bare_close(&mut ws, 1008, "invalid request frame");
}

#[test]
fn invalid_connect_params() {
    let server = Server::start();
    let mut p = connect_params();
    p["client"]["id"] = json!("my-rust-client");
    let err = rejected(&server, &p, 1008);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": MSG_UNKNOWN_CLIENT_ID})
    );
}

#[test]
fn protocol_mismatch_closes_1002() {
    let server = Server::start();
    let mut p = connect_params();
    p["minProtocol"] = json!(5);
    p["maxProtocol"] = json!(6);
    let err = rejected(&server, &p, 1002);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": "protocol mismatch",
               "details": {"code": "PROTOCOL_MISMATCH", "clientMinProtocol": 5,
                           "clientMaxProtocol": 6, "expectedProtocol": 4,
                           "minimumProbeProtocol": 3}})
    );
}

#[test]
fn invalid_role() {
    let server = Server::start();
    let mut p = connect_params();
    p["role"] = json!("admin");
    let err = rejected(&server, &p, 1008);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": "invalid role"})
    );
}

#[test]
fn node_without_device_is_not_paired() {
    let server = Server::start();
    let mut p = common::params_for("node-host", "node", &[]);
    p["role"] = json!("node");
    let err = rejected(&server, &p, 1008);
    assert_eq!(
        err,
        json!({"code": "NOT_PAIRED", "message": "device identity required",
               "details": {"code": "DEVICE_IDENTITY_REQUIRED"}})
    );
}

#[test]
fn device_less_tui_requires_device_identity() {
    let server = Server::start();
    let p = common::params_for("openclaw-tui", "ui", &["operator.admin"]);
    let err = rejected(&server, &p, 1008);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": MSG_CONTROL_UI_DEVICE,
               "details": {"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"}})
    );
}

#[test]
fn origin_not_allowed() {
    let server = Server::start();
    let (mut ws, _) = open_with_headers(&server, &[("Origin", "https://evil.example")]);
    let first = send_connect(&mut ws, &connect_params());
    let err = expect_rejection(&mut ws, first, 1008, truncated(MSG_ORIGIN));
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": MSG_ORIGIN,
               "details": {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED",
                           "reason": "origin not allowed"}})
    );
}

#[test]
fn worker_claims_close_invalid_handshake() {
    let server = Server::start();
    let claims = [
        ("role", json!("worker")),
        ("client.id", json!("openclaw-worker")),
        ("client.mode", json!("worker")),
    ];
    for (field, value) in claims {
        let mut p = connect_params();
        match field.split_once('.') {
            Some((a, b)) => p[a][b] = value,
            None => p[field] = value,
        }
        let (mut ws, _) = open(&server);
        send_json(
            &mut ws,
            &json!({"type": "req", "id": "1", "method": "connect", "params": p}),
        );
        bare_close(&mut ws, 1008, "invalid-handshake");
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

/// Opens a socket and returns it with device-signed admin params for its challenge.
fn signed(server: &Server, tweak: impl Fn(&str, u64) -> (String, u64)) -> (common::Ws, Value) {
    let (ws, ch) = open(server);
    let nonce = ch["payload"]["nonce"].as_str().unwrap();
    let ts = ch["payload"]["ts"].as_u64().unwrap();
    let (nonce, signed_at) = tweak(nonce, ts);
    let mut p = connect_params();
    add_device(&mut p, &key(), &nonce, signed_at);
    (ws, p)
}

fn device_rejection(ws: &mut common::Ws, p: &Value, message: &str, code: &str, reason: &str) {
    let first = send_connect(ws, p);
    let err = expect_rejection(ws, first, 1008, message);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": message,
               "details": {"code": code, "reason": reason}})
    );
}

#[test]
fn forged_device_signature() {
    let server = Server::start();
    let (mut ws, mut p) = signed(&server, |n, ts| (n.to_owned(), ts));
    // Sign with a different key but present the first key's identity.
    let mut q = p.clone();
    add_device(
        &mut q,
        &SigningKey::from_bytes(&[9u8; 32]),
        p["device"]["nonce"].as_str().unwrap(),
        p["device"]["signedAt"].as_u64().unwrap(),
    );
    p["device"]["signature"] = q["device"]["signature"].clone();
    device_rejection(
        &mut ws,
        &p,
        "device signature invalid",
        "DEVICE_AUTH_SIGNATURE_INVALID",
        "device-signature",
    );

    // A valid signature over different fields (scopes changed after signing) is forged too.
    let (mut ws, mut p) = signed(&server, |n, ts| (n.to_owned(), ts));
    p["scopes"] = json!(["operator.read"]);
    device_rejection(
        &mut ws,
        &p,
        "device signature invalid",
        "DEVICE_AUTH_SIGNATURE_INVALID",
        "device-signature",
    );
}

#[test]
fn device_nonce_mismatch() {
    let server = Server::start();
    let (mut ws, p) = signed(&server, |_, ts| {
        ("00000000-0000-4000-8000-000000000000".into(), ts)
    });
    device_rejection(
        &mut ws,
        &p,
        "device nonce mismatch",
        "DEVICE_AUTH_NONCE_MISMATCH",
        "device-nonce-mismatch",
    );
}

#[test]
fn device_signature_expired() {
    let server = Server::start();
    let (mut ws, p) = signed(&server, |n, ts| (n.to_owned(), ts - 600_000));
    device_rejection(
        &mut ws,
        &p,
        "device signature expired",
        "DEVICE_AUTH_SIGNATURE_EXPIRED",
        "device-signature-stale",
    );
}

#[test]
fn device_id_mismatch() {
    let server = Server::start();
    let (mut ws, mut p) = signed(&server, |n, ts| (n.to_owned(), ts));
    p["device"]["id"] = json!("0".repeat(64));
    device_rejection(
        &mut ws,
        &p,
        "device identity mismatch",
        "DEVICE_AUTH_DEVICE_ID_MISMATCH",
        "device-id-mismatch",
    );
}

#[test]
fn valid_signature_from_unpaired_device_requires_pairing() {
    // With local silent approval off, an unpaired device gets NOT_PAIRED with a request id.
    let server = Server::opts()
        .config(r#"{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}"#)
        .start();
    let (mut ws, p) = signed(&server, |n, ts| (n.to_owned(), ts));
    let first = send_connect(&mut ws, &p);
    let msg = "pairing required: device is not approved yet";
    let res = match first {
        common::Incoming::Json(v) => v,
        other => panic!("expected an error response, got {other:?}"),
    };
    let err = &res["error"];
    assert_eq!(err["code"], "NOT_PAIRED", "{err}");
    assert_eq!(err["message"], msg);
    let d = &err["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED", "{err}");
    assert_eq!(d["reason"], "not-paired", "{err}");
    assert_eq!(d["deviceId"], p["device"]["id"], "{err}");
    assert_eq!(d["requestedRole"], "operator", "{err}");
    assert_eq!(d["requestedScopes"], json!(["operator.admin"]), "{err}");
    let request_id = d["requestId"].as_str().expect("requestId").to_owned();
    let (code, reason) = common::expect_close(&mut ws, READ_TIMEOUT);
    assert_eq!(code, 1008);
    assert_eq!(reason, format!("{msg} (requestId: {request_id})"));
}

#[test]
fn rejected_socket_is_closed_after_the_close_frame() {
    // After the close handshake the server ends the TCP connection.
    let server = Server::start();
    let (mut ws, _) = open(&server);
    send_text(&mut ws, "not json");
    let (code, _) = expect_close(&mut ws, READ_TIMEOUT);
    assert_eq!(code, 1000);
    match common::recv(&mut ws, READ_TIMEOUT) {
        Incoming::Gone(_) => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
}
