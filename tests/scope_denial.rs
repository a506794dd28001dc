//! Authorization after the handshake (protocol §1.3, §4, §5): scope denials with their exact
//! error shape, unknown methods, invalid params and invalid frames — none of which closes the
//! connection.

mod common;

use common::{params_for, Client, Incoming, Server, READ_TIMEOUT};
use serde_json::json;

#[test]
fn probe_has_no_scopes_status_forbidden_health_allowed() {
    let server = Server::start();
    // A device-less probe gets its requested scopes cleared.
    let mut c = Client::connect_with(&server, &params_for("cli", "probe", &["operator.admin"]));
    assert_eq!(c.hello["auth"]["scopes"], json!([]));
    assert_eq!(c.hello["auth"]["role"], "operator");
    let err = c.call_err("status", None);
    assert_eq!(
        err,
        json!({"code": "FORBIDDEN", "message": "missing scope: operator.read",
               "details": {"code": "MISSING_SCOPE", "missingScope": "operator.read",
                           "requiredScopes": ["operator.read"]}})
    );
    let err = c.call_err("system-presence", None);
    assert_eq!(err["message"], "missing scope: operator.read");
    let health = c.call("health", None);
    assert_eq!(health["ok"], true, "{health}");
}

#[test]
fn read_only_cli_cannot_call_admin_methods() {
    let server = Server::start();
    let mut c = Client::connect_with(&server, &params_for("cli", "cli", &["operator.read"]));
    assert_eq!(c.hello["auth"]["scopes"], json!(["operator.read"]));
    let err = c.call_err("system-event", Some(json!({"text": "hi"})));
    assert_eq!(
        err,
        json!({"code": "FORBIDDEN", "message": "missing scope: operator.admin",
               "details": {"code": "MISSING_SCOPE", "missingScope": "operator.admin",
                           "requiredScopes": ["operator.admin"]}})
    );
    let err = c.call_err("wake", Some(json!({"mode": "now", "text": "x"})));
    assert_eq!(err["message"], "missing scope: operator.write");
    // What read allows still works.
    c.call("status", None);
    c.call("system-presence", None);
}

#[test]
fn unknown_method_keeps_the_socket_usable() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    let err = c.call_err("no.such.method", None);
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST", "message": "unknown method: no.such.method"})
    );
    // A core method ringgate does not implement is unknown too.
    let err = c.call_err("cron.scratch.get", Some(json!({})));
    assert_eq!(err["message"], "unknown method: cron.scratch.get");
    let h = c.call("health", None);
    assert_eq!(h["ok"], true);
}

#[test]
fn invalid_params() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    let err = c.call_err("wake", Some(json!({"text": "x"})));
    assert_eq!(
        err,
        json!({"code": "INVALID_REQUEST",
               "message": "invalid wake params: must have required property 'mode'"})
    );
    let err = c.call_err("wake", Some(json!({"mode": "later", "text": "x"})));
    assert_eq!(
        err["message"],
        "invalid wake params: at /mode: must be equal to constant; at /mode: must match a schema in anyOf"
    );
    let err = c.call_err("system-event", Some(json!({"text": "x", "bogus": 1})));
    assert_eq!(
        err["message"],
        "invalid system-event params: at root: unexpected property 'bogus'"
    );
    // Valid params pass.
    assert_eq!(
        c.call("wake", Some(json!({"mode": "now", "text": "x"}))),
        json!({"ok": true})
    );
}

#[test]
fn invalid_request_frame_after_auth_echoes_id() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    c.send_json(&json!({"type": "req", "id": "7", "method": ""}));
    let res = c.wait_response("7", READ_TIMEOUT);
    assert_eq!(
        res,
        json!({"type": "res", "id": "7", "ok": false,
               "error": {"code": "INVALID_REQUEST",
                         "message": "invalid request frame: at /method: must not have fewer than 1 characters"}})
    );
    // Without an id the response uses "invalid".
    c.send_json(&json!({"type": "req", "method": "health"}));
    let res = c.wait_response("invalid", READ_TIMEOUT);
    assert_eq!(res["ok"], false);
    assert_eq!(
        res["error"]["message"],
        "invalid request frame: must have required property 'id'"
    );
    // Unknown top-level field.
    c.send_json(&json!({"type": "req", "id": "8", "method": "health", "extra": true}));
    let res = c.wait_response("8", READ_TIMEOUT);
    assert_eq!(
        res["error"]["message"],
        "invalid request frame: at root: unexpected property 'extra'"
    );
    c.call("health", None);
}

#[test]
fn non_json_after_auth_is_ignored() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    c.send_text("definitely { not json");
    // Nothing comes back for it.
    match common::recv(&mut c.ws, std::time::Duration::from_millis(300)) {
        Incoming::Timeout => {}
        other => panic!("expected silence after a non-JSON frame, got {other:?}"),
    }
    // And the socket still answers.
    let id = c.send_request("health", None);
    let res = c.wait_response(&id, READ_TIMEOUT);
    assert_eq!(res["ok"], true, "{res}");
}
