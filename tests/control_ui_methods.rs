//! The methods behind the Control UI's chat page, over the wire: `chat.startup` (the page's
//! first read), `chat.history {cursor}` deltas and resets, session rows in the original's
//! shape, `sessions.branches.list`, `sessions.patch` with the UI's params, and the owner's UI
//! preferences, persisted across a restart.

mod common;

use std::time::Duration;

use common::{Client, Server, TempDir};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(10);
const FAST: &str = "{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 0 } } } }";

fn turn(c: &mut Client, key: &str, text: &str, id: &str) {
    let ack = c.call(
        "chat.send",
        Some(json!({"sessionKey": key, "message": text, "idempotencyKey": id})),
    );
    assert_eq!(ack["status"], "started", "{ack}");
    let w = c.call(
        "agent.wait",
        Some(json!({"runId": id, "timeoutMs": 10_000})),
    );
    assert_eq!(w["status"], "ok", "{w}");
}

#[test]
fn startup_then_deltas_follow_the_transcript() {
    let server = Server::opts().config(FAST).start();
    let mut c = Client::connect(&server);
    turn(&mut c, "main", "first", "t-1");
    let s = c.call(
        "chat.startup",
        Some(json!({"sessionKey": "agent:main:main", "limit": 80, "maxBytes": 262144})),
    );
    assert!(s.get("kind").is_none(), "a snapshot has no kind: {s}");
    assert_eq!(s["totalMessages"], 2);
    assert_eq!(s["messages"].as_array().unwrap().len(), 2);
    assert_eq!(s["sessionInfo"]["status"], "done");
    assert_eq!(s["sessionInfo"]["lastRunId"], "t-1");
    assert_eq!(
        s["sessionInfo"]["activeLeafEntryId"],
        s["messages"][1]["__openclaw"]["id"]
    );
    assert_eq!(s["metadata"]["models"][0]["id"], "echo");
    for k in [
        "pendingInputs",
        "inputReceipts",
        "inputConsumptions",
        "defaults",
        "deltaCursor",
    ] {
        assert!(s.get(k).is_some(), "chat.startup lacks {k}: {s}");
    }
    // Nothing new: an empty delta with the same position.
    let cursor = s["deltaCursor"].as_str().unwrap().to_owned();
    let d = c.call(
        "chat.history",
        Some(json!({"sessionKey": "main", "cursor": cursor})),
    );
    assert_eq!(d["kind"], "delta");
    assert_eq!(d["messages"], json!([]));
    assert!(d["sessionInfo"].is_object());
    // A new turn: the delta has exactly the two new messages, as session.message payloads.
    turn(&mut c, "main", "second", "t-2");
    let d = c.call(
        "chat.history",
        Some(json!({"sessionKey": "main", "cursor": cursor, "inputRunIds": ["t-2"]})),
    );
    let msgs = d["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{d}");
    assert_eq!(msgs[0]["message"]["content"], "second");
    assert_eq!(msgs[0]["messageSeq"], 3);
    assert_eq!(msgs[0]["message"]["__openclaw"]["seq"], 3);
    // A delta entry carries the same record metadata as the full history read.
    let full = c.call("chat.history", Some(json!({"sessionKey": "main"})));
    assert_eq!(
        msgs[0]["message"]["__openclaw"], full["messages"][2]["__openclaw"],
        "{full}"
    );
    assert_eq!(msgs[0]["message"]["__openclaw"]["senderIsOwner"], true);
    assert!(msgs[1]["message"]["__openclaw"]["recordTimestampMs"].is_u64());
    assert_eq!(msgs[1]["message"]["content"][0]["text"], "echo: second");
    assert_eq!(msgs[1]["sessionKey"], "agent:main:main");
    assert_eq!(d["inputReceipts"], json!([]));
    // The next cursor starts after them.
    let next = d["deltaCursor"].as_str().unwrap();
    let d2 = c.call(
        "chat.history",
        Some(json!({"sessionKey": "main", "cursor": next})),
    );
    assert_eq!(d2["messages"], json!([]));
    // A reset transcript, or a cursor that is not ours, resets the client.
    c.call("sessions.reset", Some(json!({"key": "main"})));
    let r = c.call(
        "chat.history",
        Some(json!({"sessionKey": "main", "cursor": next})),
    );
    assert_eq!(r, json!({"kind": "reset"}));
    let r = c.call(
        "chat.history",
        Some(json!({"sessionKey": "main", "cursor": "garbage"})),
    );
    assert_eq!(r, json!({"kind": "reset"}));
}

#[test]
fn session_rows_branches_and_read_state() {
    let server = Server::opts().config(FAST).start();
    let mut c = Client::connect(&server);
    turn(&mut c, "work", "plan the trip", "b-1");
    turn(&mut c, "work", "and the budget", "b-2");
    let b = c.call(
        "sessions.branches.list",
        Some(json!({"sessionKey": "work"})),
    );
    let branch = &b["branches"][0];
    assert_eq!(branch["headline"], "plan the trip");
    assert_eq!(branch["messageCount"], 2, "user turns: {b}");
    assert_eq!(branch["active"], true);
    assert!(branch["leafEntryId"].is_string());
    let d = c.call("sessions.describe", Some(json!({"key": "work"})))["session"].clone();
    for (k, v) in [
        ("kind", json!("direct")),
        ("chatType", json!("direct")),
        ("visibility", json!("shared")),
        ("sharingRole", json!("admin")),
        ("isMain", json!(false)),
        ("status", json!("done")),
        ("derivedTitle", json!("plan the trip")),
        ("lastMessagePreview", json!("echo: and the budget")),
    ] {
        assert_eq!(d[k], v, "{k} in {d}");
    }
    assert!(d["runtimeMs"].is_u64() && d["owner"]["actor"]["type"] == "human");
    // The UI marks a session read with the original's params (closed schema included).
    let p = c.call(
        "sessions.patch",
        Some(
            json!({"key": "work", "agentId": "main", "expectedMarkedUnreadAt": null,
                    "unread": false}),
        ),
    );
    assert_eq!(p["entry"]["unread"], false, "{p}");
    assert!(p["entry"]["lastReadAt"].is_u64(), "{p}");
    // Children of a session: ringgate spawns none.
    let kids = c.call(
        "sessions.list",
        Some(json!({"spawnedBy": "agent:main:main", "limit": 10000})),
    );
    assert_eq!(kids["sessions"], json!([]));
    assert_eq!(kids["count"], 0);
}

#[test]
fn ui_preferences_persist_and_announce() {
    let dir = TempDir::new("ui-prefs");
    let start = || Server::opts().state_dir(dir.path()).start();
    let server = start();
    let mut a = Client::connect(&server);
    let mut watcher = Client::connect(&server);
    let empty = a.call("users.prefs.get", Some(json!({"keys": ["ui.theme"]})));
    assert_eq!(empty, json!({"status": "ok", "entries": {}}));
    let ok = a.call(
        "users.prefs.set",
        Some(json!({"entries": {"ui.theme": "knot", "ui.fontUi": {"size": 14}}})),
    );
    assert_eq!(ok, json!({"status": "ok"}));
    let ev = watcher.wait_event("users.prefs.changed", LONG);
    assert_eq!(ev["payload"]["profileId"], "gateway-owner");
    // A write based on a stale view is a conflict and changes nothing.
    let conflict = a.call(
        "users.prefs.set",
        Some(json!({"entries": {"ui.theme": "dash"}, "expectedEntries": {"ui.theme": "claw"}})),
    );
    assert_eq!(conflict, json!({"status": "conflict"}));
    let too_many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!(i))).collect();
    let e = a.call_err("users.prefs.set", Some(json!({"entries": too_many})));
    assert_eq!(e["code"], "INVALID_REQUEST");
    drop(server);
    let server = start();
    let mut b = Client::connect(&server);
    let got = b.call("users.prefs.get", Some(json!({})));
    assert_eq!(
        got["entries"],
        json!({"ui.fontUi": {"size": 14}, "ui.theme": "knot"}),
        "{got}"
    );
}

#[test]
fn host_facts_and_setup_state_are_real() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    let info = c.call("system.info", None);
    assert_eq!(info["platform"], "linux");
    assert_eq!(info["port"], server.addr.port());
    assert_eq!(info["pid"], server.pid());
    assert!(info["memoryTotalBytes"].as_u64().unwrap() > 0);
    assert!(info["cpuCount"].as_u64().unwrap() >= 1);
    let setup = c.call("openclaw.setup.detect", Some(json!({"agentId": "main"})));
    assert_eq!(setup["setupComplete"], true);
    let id = c.call("agent.identity.get", Some(json!({"agentId": "main"})));
    assert_eq!(id["agentId"], "main");
    let e = c.call_err("agent.identity.get", Some(json!({"agentId": "nope"})));
    assert_eq!(e["message"], "Unknown agent id \"nope\"");
    assert_eq!(
        c.hello["snapshot"]["sessionDefaults"]["modelConfigured"],
        true
    );
}
