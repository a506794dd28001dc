//! A successful handshake: the `connect.challenge` event and every field of `hello-ok`
//! (protocol §2.2, §2.6).

mod common;

use common::{Client, Server};
use serde_json::{json, Value};

fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    lens == [8, 4, 4, 4, 12]
        && parts.iter().all(|p| {
            p.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
        && parts[2].starts_with('4')
        && matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("string item"))
        .collect()
}

#[test]
fn challenge_has_uuid_nonce_integer_ts_and_no_seq() {
    let server = Server::start();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (_ws, ch) = common::open(&server);
    assert_eq!(ch["type"], "event");
    assert_eq!(ch["event"], "connect.challenge");
    assert!(
        ch.get("seq").is_none(),
        "challenge must not carry seq: {ch}"
    );
    assert!(ch.get("stateVersion").is_none(), "{ch}");
    let nonce = ch["payload"]["nonce"].as_str().expect("nonce string");
    assert!(is_uuid_v4(nonce), "nonce is not a uuid v4: {nonce}");
    let ts = &ch["payload"]["ts"];
    assert!(ts.is_u64(), "ts must be a non-negative integer: {ts}");
    let ts = ts.as_u64().unwrap();
    assert!(
        ts + 5_000 >= before && ts <= before + 60_000,
        "ts {ts} is not the server clock (test clock {before})"
    );

    // A second connection gets a fresh nonce.
    let (_ws2, ch2) = common::open(&server);
    assert_ne!(ch2["payload"]["nonce"], ch["payload"]["nonce"]);
}

#[test]
fn hello_ok_fields() {
    let server = Server::start();
    let c = Client::connect(&server);
    let h = &c.hello;
    assert_eq!(h["type"], "hello-ok");
    assert_eq!(h["protocol"], 4);

    let conn_id = h["server"]["connId"].as_str().expect("server.connId");
    // `s<shard>-<uuid v4>`: the original's uuid, prefixed with the shard holding it.
    let (shard, uuid) = conn_id.split_once('-').expect("s<N>-<uuid>");
    assert!(
        shard
            .strip_prefix('s')
            .is_some_and(|n| n.parse::<usize>().is_ok()),
        "connId: {conn_id}"
    );
    assert!(is_uuid_v4(uuid), "connId: {conn_id}");
    assert!(
        h["server"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "server.version: {h}"
    );

    let methods = strs(&h["features"]["methods"]);
    for m in [
        "health",
        "status",
        "system-presence",
        "system-event",
        "last-heartbeat",
        "wake",
    ] {
        assert!(
            methods.contains(&m),
            "features.methods lacks {m}: {methods:?}"
        );
    }
    let events = strs(&h["features"]["events"]);
    for e in ["presence", "tick", "health", "shutdown"] {
        assert!(events.contains(&e), "features.events lacks {e}: {events:?}");
    }

    let snap = &h["snapshot"];
    let presence = snap["presence"].as_array().expect("snapshot.presence");
    assert!(
        presence
            .iter()
            .any(|p| p["mode"] == "gateway" && p["reason"] == "self"),
        "no gateway self entry in {presence:?}"
    );
    for p in presence {
        assert!(p["ts"].is_u64(), "presence entry without ts: {p}");
    }
    assert!(snap["health"].is_object(), "snapshot.health: {snap}");
    assert!(snap["stateVersion"]["presence"].is_u64(), "{snap}");
    assert!(snap["stateVersion"]["health"].is_u64(), "{snap}");
    assert!(snap["uptimeMs"].is_u64(), "{snap}");
    let sd = &snap["sessionDefaults"];
    assert_eq!(sd["defaultAgentId"], "main", "{sd}");
    assert_eq!(sd["mainKey"], "main", "{sd}");
    assert_eq!(sd["mainSessionKey"], "agent:main:main", "{sd}");

    assert_eq!(
        h["auth"],
        json!({"method": "token", "role": "operator", "scopes": ["operator.admin"]})
    );
    assert_eq!(
        h["policy"],
        json!({"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000,
               "attachments": {"maxBytes": 0, "maxImageBytes": 0},
               "allowedSessionVisibilities": ["shared"],
               "hasMultipleSessionSharingIdentities": false})
    );
    // ringgate's own build; the UI it serves is configured, not bundled (no forced reload).
    assert!(
        h["server"]["buildId"]
            .as_str()
            .unwrap()
            .starts_with("ringgate-"),
        "{h}"
    );
    assert_eq!(h["server"]["controlUiBuildSource"], "configured");
    assert!(!h["server"]["bootId"].as_str().unwrap().is_empty());
    assert_eq!(snap["suspension"], json!({"phase": "accepting"}));
}

#[test]
fn each_connection_gets_its_own_conn_id() {
    let server = Server::start();
    let a = Client::connect(&server);
    let b = Client::connect(&server);
    assert_ne!(a.hello["server"]["connId"], b.hello["server"]["connId"]);
}
