//! Nodes (protocol §2.7, §3.4, §7.8): a node's capability surface waits for approval, then
//! `node.invoke` is routed from the caller's shard to the node's shard and the answer back; the
//! failure paths (node gone, caller gone, timeout, refused commands) answer as the original.

mod common;

use std::time::Duration;

use common::{connect_params, Client, Server};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(10);

fn server() -> Server {
    Server::opts().shards(2).start()
}

/// `node.pair.list` once the node's surface request is recorded (it is written to the store
/// right after the node's hello, so it may trail the connect by a moment).
fn pair_list_with_pending(op: &mut Client) -> Value {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let list = op.call("node.pair.list", Some(json!({})));
        if list["pending"].as_array().is_some_and(|p| !p.is_empty()) {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pending request: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Approves the node's pending surface; returns the node's id.
fn approve(op: &mut Client, node: &mut Client) -> String {
    let list = pair_list_with_pending(op);
    let pending = &list["pending"][0];
    assert_eq!(pending["clientId"], "node-host", "{list}");
    let id = pending["requestId"].as_str().unwrap().to_owned();
    let node_id = pending["nodeId"].as_str().unwrap().to_owned();
    let r = op.call("node.pair.approve", Some(json!({"requestId": id})));
    assert_eq!(r["requestId"], id.as_str());
    assert_eq!(r["node"]["nodeId"], node_id.as_str());
    // The node hears about it too, without a seq.
    let resolved = node.wait_event("node.pair.resolved", LONG);
    assert_eq!(resolved["payload"]["decision"], "approved");
    assert!(resolved.get("seq").is_none(), "{resolved}");
    node_id
}

/// Waits for the invoke request on the node; returns its payload.
fn next_invoke(node: &mut Client) -> Value {
    let ev = node.wait_event("node.invoke.request", LONG);
    assert!(
        ev.get("seq").is_none(),
        "node.invoke.request has no seq: {ev}"
    );
    ev["payload"].clone()
}

#[test]
fn invoke_routes_between_shards_after_approval() {
    let server = server();
    let mut node = Client::connect_node(&server, 41, &["system.which", "file.fetch"], 1);
    assert_eq!(node.hello["auth"]["role"], "node");
    let mut op = Client::connect_to_shard(&server, &connect_params(), 0);

    // Before approval: pending, and invokes are refused as the original does.
    pair_list_with_pending(&mut op);
    let list = op.call("node.list", Some(json!({})));
    let row = &list["nodes"][0];
    assert_eq!(row["approvalState"], "pending-approval", "{list}");
    assert_eq!(row["connected"], true);
    assert_eq!(row["commands"], json!([]));
    assert_eq!(
        row["pendingDeclaredCommands"],
        json!(["system.which"]),
        "file.* is withheld"
    );
    let node_id = row["nodeId"].as_str().unwrap().to_owned();
    let err = op.call_err(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "i0"})),
    );
    assert_eq!(err["details"]["code"], "PAIRING_CHANGED", "{err}");

    assert_eq!(approve(&mut op, &mut node), node_id);
    let d = op.call("node.describe", Some(json!({"nodeId": node_id})));
    assert_eq!(d["approvalState"], "approved");
    assert_eq!(d["commands"], json!(["system.which"]));
    assert_eq!(d["paired"], true);

    // The invoke crosses from shard 0 to the node on shard 1 and back.
    let id = op.send_request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which",
                    "params": {"bins": ["sh"]}, "idempotencyKey": "i1", "timeoutMs": 5000})),
    );
    let req = next_invoke(&mut node);
    assert_eq!(req["command"], "system.which");
    assert_eq!(req["paramsJSON"], r#"{"bins":["sh"]}"#);
    assert_eq!(req["idempotencyKey"], "i1");
    assert_eq!(req["nodeId"], node_id.as_str());
    let ack = node.call(
        "node.invoke.result",
        Some(json!({"id": req["id"], "nodeId": node_id, "ok": true,
                    "payloadJSON": r#"{"bins":{"sh":"/usr/bin/sh"}}"#})),
    );
    assert_eq!(ack, json!({"ok": true}));
    let res = op.wait_response(&id, LONG);
    assert_eq!(
        res["payload"],
        json!({"ok": true, "nodeId": node_id, "command": "system.which",
               "payload": {"bins": {"sh": "/usr/bin/sh"}},
               "payloadJSON": r#"{"bins":{"sh":"/usr/bin/sh"}}"#})
    );
    // A late or unknown result is ignored.
    let late = node.call(
        "node.invoke.result",
        Some(json!({"id": req["id"], "nodeId": node_id, "ok": true})),
    );
    assert_eq!(late, json!({"ok": true, "ignored": true}));

    // Node-reported failure.
    let id = op.send_request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "i2"})),
    );
    let req = next_invoke(&mut node);
    assert_eq!(req["paramsJSON"], Value::Null);
    node.call(
        "node.invoke.result",
        Some(json!({"id": req["id"], "nodeId": node_id, "ok": false,
                    "error": {"code": "INVALID_REQUEST", "message": "bins required"}})),
    );
    let res = op.wait_response(&id, LONG);
    assert_eq!(res["error"]["code"], "UNAVAILABLE");
    assert_eq!(res["error"]["message"], "INVALID_REQUEST: bins required");
    assert_eq!(res["error"]["details"]["nodeCommandDispatched"], true);

    // Refusals: undeclared/unapproved command, execApprovals, role.
    let err = op.call_err(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "file.fetch", "idempotencyKey": "i3"})),
    );
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(err["details"]["command"], "file.fetch", "{err}");
    let err = op.call_err(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.execApprovals.get", "idempotencyKey": "i4"})),
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("exec.approvals.node"),
        "{err}"
    );
    let err = op.call_err(
        "node.invoke.result",
        Some(json!({"id": "x", "nodeId": node_id, "ok": true})),
    );
    assert_eq!(err["message"], "unauthorized role: operator");
}

#[test]
fn node_disconnect_timeout_and_caller_disconnect() {
    let server = server();
    let mut node = Client::connect_node(&server, 42, &["system.which"], 0);
    let mut op = Client::connect_to_shard(&server, &connect_params(), 1);
    let node_id = approve(&mut op, &mut node);

    // Timeout: the caller gets TIMEOUT, the node a cancel.
    let id = op.send_request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "t1", "timeoutMs": 300})),
    );
    let req = next_invoke(&mut node);
    let res = op.wait_response(&id, LONG);
    assert_eq!(
        res["error"]["message"], "TIMEOUT: node invoke timed out",
        "{res}"
    );
    let cancel = node.wait_event("node.invoke.cancel", LONG);
    assert_eq!(
        cancel["payload"],
        json!({"invokeId": req["id"], "nodeId": node_id})
    );

    // The caller goes away mid-invoke: the node gets a cancel.
    let mut op2 = Client::connect_to_shard(&server, &connect_params(), 1);
    op2.send_request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "c1"})),
    );
    let req = next_invoke(&mut node);
    op2.close();
    let cancel = node.wait_event("node.invoke.cancel", LONG);
    assert_eq!(cancel["payload"]["invokeId"], req["id"]);

    // The node goes away mid-invoke: the caller gets DISCONNECTED.
    let id = op.send_request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "d1"})),
    );
    next_invoke(&mut node);
    node.close();
    let res = op.wait_response(&id, LONG);
    assert_eq!(
        res["error"]["details"]["nodeError"]["code"], "DISCONNECTED",
        "{res}"
    );

    // Once it is gone: NOT_CONNECTED, and node.list shows it disconnected but approved.
    std::thread::sleep(Duration::from_millis(200));
    let err = op.call_err(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "n1"})),
    );
    assert_eq!(err["details"]["code"], "NOT_CONNECTED", "{err}");
    assert_eq!(err["message"], "node not connected");
    let list = op.call("node.list", Some(json!({})));
    assert_eq!(list["nodes"][0]["connected"], false, "{list}");
    assert_eq!(list["nodes"][0]["approvalState"], "approved");
}

#[test]
fn approval_needs_the_surface_scopes_and_survives_restart() {
    let dir = common::TempDir::new("nodes-restart");
    let mut server = Server::opts().shards(2).state_dir(dir.path()).start();
    let mut node = Client::connect_node(&server, 43, &["system.which"], 0);
    // A pairing-only operator cannot approve a surface that needs admin.
    let mut p = connect_params();
    p["scopes"] = json!(["operator.pairing"]);
    let mut pairing_only = Client::connect_with(&server, &p);
    let list = pair_list_with_pending(&mut pairing_only);
    let req = list["pending"][0]["requestId"].clone();
    assert_eq!(
        list["pending"][0]["requiredApproveScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    let err = pairing_only.call_err("node.pair.approve", Some(json!({"requestId": req})));
    assert_eq!(err["code"], "FORBIDDEN");
    assert_eq!(err["details"]["missingScope"], "operator.admin", "{err}");
    let err = pairing_only.call_err("node.pair.approve", Some(json!({"requestId": "nope"})));
    assert_eq!(err["message"], "unknown requestId");
    let mut op = Client::connect(&server);
    let node_id = approve(&mut op, &mut node);
    node.close();
    server.kill9();

    let server = Server::opts().shards(2).state_dir(dir.path()).start();
    let mut op = Client::connect(&server);
    let list = op.call("node.pair.list", Some(json!({})));
    assert_eq!(list["paired"][0]["nodeId"], node_id.as_str(), "{list}");
    assert_eq!(list["pending"], json!([]));
    // The node reconnects: nothing to approve again; it can be invoked at once.
    let mut node = Client::connect_node(&server, 43, &["system.which"], 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        op.call("node.pair.list", Some(json!({})))["pending"],
        json!([])
    );
    let id = op.send_request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "idempotencyKey": "r1"})),
    );
    let req = next_invoke(&mut node);
    node.call(
        "node.invoke.result",
        Some(json!({"id": req["id"], "nodeId": node_id, "ok": true, "payload": {"x": 1}})),
    );
    let res = op.wait_response(&id, LONG);
    assert_eq!(res["payload"]["payload"], json!({"x": 1}), "{res}");
    // The node-host start-up calls are answered.
    let r = node.call(
        "node.event",
        Some(json!({"event": "node.host.stats", "payloadJSON": "{\"cpuCount\":2}"})),
    );
    assert_eq!(r["handled"], true);
    assert_eq!(
        node.call(
            "node.runnerInventory.update",
            Some(json!({"protocolFeatures": []}))
        )["nodeId"],
        node_id.as_str()
    );
    assert_eq!(
        node.call("node.skills.update", Some(json!({"skills": []})))["skills"],
        json!([])
    );
    let d = op.call("node.describe", Some(json!({"nodeId": node_id})));
    assert_eq!(d["hostStats"]["cpuCount"], 2, "{d}");
}
