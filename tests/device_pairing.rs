//! Device pairing end to end: silent local approval issues a device token that works on
//! reconnect; operator approval and rejection (events across shards); revocation and removal
//! close live connections with 4001; pairing survives `kill -9`.

mod common;

use std::time::Duration;

use common::{
    add_device, connect_params, open, send_connect, Client, Incoming, Server, TempDir, READ_TIMEOUT,
};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const NO_SILENT: &str = r#"{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}"#;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Connects with a device identity; `auth` replaces the connect params' `auth`.
fn connect_device(server: &Server, key: &SigningKey, auth: Value) -> (common::Ws, Incoming) {
    let (mut ws, ch) = open(server);
    let nonce = ch["payload"]["nonce"].as_str().unwrap().to_owned();
    let ts = ch["payload"]["ts"].as_u64().unwrap();
    let mut p = connect_params();
    p["auth"] = auth;
    add_device(&mut p, key, &nonce, ts);
    let first = send_connect(&mut ws, &p);
    (ws, first)
}

fn hello(first: Incoming) -> Value {
    match first {
        Incoming::Json(v) if v["ok"] == true => v["payload"].clone(),
        other => panic!("expected hello-ok, got {other:?}"),
    }
}

fn rejection(first: Incoming) -> Value {
    match first {
        Incoming::Json(v) if v["ok"] == false => v["error"].clone(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn admin(server: &Server) -> Client {
    Client::connect(server)
}

#[test]
fn local_device_is_paired_silently_and_reconnects_with_its_token() {
    let server = Server::start();
    let k = key(11);
    let (_ws, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    let h = hello(first);
    assert_eq!(h["auth"]["method"], "token");
    assert_eq!(h["auth"]["scopes"], json!(["operator.admin"]));
    let token = h["auth"]["deviceToken"]
        .as_str()
        .expect("deviceToken")
        .to_owned();
    assert_eq!(token.len(), 43, "32 bytes base64url");
    assert!(h["auth"]["issuedAtMs"].is_u64());

    // Reconnect with only the device token (no shared secret).
    let (_ws2, first) = connect_device(&server, &k, json!({"deviceToken": token}));
    let h2 = hello(first);
    assert_eq!(h2["auth"]["method"], "device-token");
    assert_eq!(
        h2["auth"]["deviceToken"],
        token.as_str(),
        "the token is reused"
    );

    // A wrong device token is refused with the original's details.
    let (_ws3, first) = connect_device(&server, &k, json!({"deviceToken": "x".repeat(43)}));
    let err = rejection(first);
    assert_eq!(
        err["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "{err}"
    );
    assert_eq!(
        err["message"],
        "unauthorized: device token mismatch (rotate/reissue device token)"
    );
}

#[test]
fn operator_approval_across_shards() {
    let server = Server::opts().config(NO_SILENT).start();
    // Several watchers so that shards other than the device's see the events too.
    let mut watchers: Vec<Client> = (0..4).map(|_| admin(&server)).collect();
    let k = key(12);
    let (_ws, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    let err = rejection(first);
    assert_eq!(err["code"], "NOT_PAIRED");
    let request_id = err["details"]["requestId"].as_str().unwrap().to_owned();
    for w in watchers.iter_mut() {
        let ev = w.wait_event_where("device.pair.requested", READ_TIMEOUT, |e| {
            e["payload"]["requestId"] == request_id.as_str()
        });
        assert_eq!(ev["payload"]["role"], "operator");
        assert!(ev["payload"].get("publicKey").is_some());
    }
    // A retry reuses the pending request.
    let (_ws, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    assert_eq!(
        rejection(first)["details"]["requestId"],
        request_id.as_str()
    );

    let list = watchers[0].call("device.pair.list", None);
    assert_eq!(list["pending"][0]["requestId"], request_id.as_str());
    assert_eq!(list["paired"], json!([]));

    let approved = watchers[1].call(
        "device.pair.approve",
        Some(json!({"requestId": request_id})),
    );
    assert_eq!(approved["requestId"], request_id.as_str());
    assert_eq!(approved["device"]["roles"], json!(["operator"]));
    assert!(
        approved["device"].get("approvedScopes").is_none(),
        "redacted"
    );
    for w in watchers.iter_mut() {
        let ev = w.wait_event_where("device.pair.resolved", READ_TIMEOUT, |e| {
            e["payload"]["requestId"] == request_id.as_str()
        });
        assert_eq!(ev["payload"]["decision"], "approved");
    }
    // The device now connects and gets a token; the listing redacts it.
    let (_ws, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    let token = hello(first)["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = watchers[2].call("device.pair.list", None);
    assert_eq!(list["pending"], json!([]));
    assert_eq!(list["paired"][0]["tokens"][0]["role"], "operator");
    assert!(
        !list.to_string().contains(&token),
        "tokens are never listed"
    );

    // Unknown request ids get the original's error.
    let e = watchers[3].call_err("device.pair.approve", Some(json!({"requestId": "nope"})));
    assert_eq!(
        (e["code"].as_str(), e["message"].as_str()),
        (Some("INVALID_REQUEST"), Some("unknown requestId"))
    );
}

#[test]
fn rejection_resolves_the_request() {
    let server = Server::opts().config(NO_SILENT).start();
    let mut w = admin(&server);
    let (_ws, first) = connect_device(&server, &key(13), json!({"token": common::TOKEN}));
    let request_id = rejection(first)["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w.call("device.pair.reject", Some(json!({"requestId": request_id})));
    assert_eq!(r["requestId"], request_id.as_str());
    let ev = w.wait_event_where("device.pair.resolved", READ_TIMEOUT, |e| {
        e["payload"]["requestId"] == request_id.as_str()
    });
    assert_eq!(ev["payload"]["decision"], "rejected");
    assert_eq!(w.call("device.pair.list", None)["pending"], json!([]));
}

#[test]
fn approval_needs_the_scopes_it_grants() {
    let server = Server::opts().config(NO_SILENT).start();
    // A pairing-only operator (local cli keeps its requested scopes).
    let mut pairer = Client::connect_with(
        &server,
        &common::params_for("cli", "cli", &["operator.pairing"]),
    );
    let (_ws, first) = connect_device(&server, &key(14), json!({"token": common::TOKEN}));
    let request_id = rejection(first)["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = pairer.call_err(
        "device.pair.approve",
        Some(json!({"requestId": request_id})),
    );
    assert_eq!(e["message"], "missing scope: operator.admin", "{e}");
}

#[test]
fn revocation_and_removal_close_live_connections() {
    let server = Server::start();
    let mut w = admin(&server);
    let k = key(15);
    let (mut dev, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    let h = hello(first);
    let token = h["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let device_id = common::device_id(&k.verifying_key().to_bytes());
    let r = w.call(
        "device.token.revoke",
        Some(json!({"deviceId": device_id, "role": "operator"})),
    );
    assert!(r["revokedAtMs"].is_u64(), "{r}");
    assert_eq!(
        common::expect_close(&mut dev, READ_TIMEOUT),
        (4001, "device removed".to_owned())
    );
    // The revoked token no longer works.
    let (_ws, first) = connect_device(&server, &k, json!({"deviceToken": token}));
    assert_eq!(
        rejection(first)["details"]["code"],
        "AUTH_DEVICE_TOKEN_MISMATCH"
    );

    // Reconnecting with the shared token re-issues a token; removal closes that connection.
    let (mut dev, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    let new_token = hello(first)["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, token);
    let r = w.call("device.pair.remove", Some(json!({"deviceId": device_id})));
    assert_eq!(r["deviceId"], device_id.as_str());
    assert_eq!(
        common::expect_close(&mut dev, READ_TIMEOUT),
        (4001, "device removed".to_owned())
    );
    assert_eq!(w.call("device.pair.list", None)["paired"], json!([]));
}

/// A device authenticated only by its device token rotates that token itself: the new token
/// reaches it in the answer first, then it is closed 4001 (its old token is void), and it
/// reconnects with the new one — as on the original (`auth.md`: "so token-only clients can
/// persist their replacement before reconnecting"). It was closed before the answer, locked
/// out.
#[test]
fn a_device_rotating_its_own_token_gets_the_new_one_before_the_close() {
    let server = Server::start();
    let k = key(17);
    let (_first_ws, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
    let mut token = hello(first)["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let device_id = common::device_id(&k.verifying_key().to_bytes());
    for round in 0..3 {
        let (mut ws, first) = connect_device(&server, &k, json!({"deviceToken": token}));
        assert_eq!(hello(first)["auth"]["method"], "device-token");
        common::send_json(
            &mut ws,
            &json!({"type": "req", "id": "rot", "method": "device.token.rotate",
                    "params": {"deviceId": device_id, "role": "operator"}}),
        );
        let (frames, end) = common::recv_until_close(&mut ws, READ_TIMEOUT);
        let res = frames
            .iter()
            .find(|f| f["type"] == "res" && f["id"] == "rot")
            .unwrap_or_else(|| panic!("round {round}: no answer before {end:?}: {frames:?}"));
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["payload"]["tokenDelivery"], "in-band", "{res}");
        let new_token = res["payload"]["token"].as_str().expect("token").to_owned();
        assert_ne!(new_token, token);
        assert!(
            matches!(end, Incoming::Close(4001, ref r) if r == "device removed"),
            "{end:?}"
        );
        // The old token is void; the new one opens.
        let (_ws, first) = connect_device(&server, &k, json!({"deviceToken": token}));
        assert_eq!(
            rejection(first)["details"]["code"],
            "AUTH_DEVICE_TOKEN_MISMATCH"
        );
        token = new_token;
    }
}

#[test]
fn pairing_survives_kill_9() {
    let dir = TempDir::new("persist");
    let k = key(16);
    let token = {
        let mut server = Server::opts().state_dir(dir.path()).start();
        let (_ws, first) = connect_device(&server, &k, json!({"token": common::TOKEN}));
        let token = hello(first)["auth"]["deviceToken"]
            .as_str()
            .unwrap()
            .to_owned();
        server.kill9();
        token
    };
    let server = Server::opts().state_dir(dir.path()).start();
    let (_ws, first) = connect_device(&server, &k, json!({"deviceToken": token}));
    let h = hello(first);
    assert_eq!(h["auth"]["method"], "device-token");
    assert_eq!(h["auth"]["deviceToken"], token.as_str());
    let mut w = admin(&server);
    let list = w.call("device.pair.list", None);
    assert_eq!(
        list["paired"][0]["deviceId"],
        common::device_id(&k.verifying_key().to_bytes()).as_str()
    );
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn corrupt_state_database_stops_startup() {
    let dir = TempDir::new("corrupt");
    std::fs::write(
        dir.path().join("ringgate.sqlite"),
        b"this is not a sqlite database, not at all",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["run", "--port", "0", "--token", "T", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ringgate.sqlite"), "{err}");
    // The file is left as it was.
    assert_eq!(
        std::fs::read(dir.path().join("ringgate.sqlite")).unwrap(),
        b"this is not a sqlite database, not at all"
    );
}
