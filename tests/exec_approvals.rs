//! Exec approvals (protocol §7.4): a request waits on the approvals owner; approval clients on
//! any shard see it and resolve it; the waiting request completes; expiry, the no-route rule,
//! already-resolved and unknown ids answer as the original; allow-always grants and the policy
//! file are durable, the policy with optimistic concurrency.

mod common;

use std::time::Duration;

use common::{connect_params, Client, Server, TempDir};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(10);

fn approver(server: &Server, shard: usize) -> Client {
    let mut p = connect_params();
    p["caps"] = json!(["exec-approvals"]);
    p["client"]["displayName"] = json!("approver");
    Client::connect_to_shard(server, &p, shard)
}

#[test]
fn request_resolved_from_another_shard() {
    let server = Server::opts().shards(2).start();
    let mut ui = approver(&server, 1);
    let mut req = Client::connect_to_shard(&server, &connect_params(), 0);
    let id = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "ap-1", "command": "rm -rf /tmp/x", "cwd": "/tmp", "twoPhase": true})),
    );
    let accepted = req.wait_response(&id, LONG);
    assert_eq!(accepted["payload"]["status"], "accepted", "{accepted}");
    assert_eq!(accepted["payload"]["deliveryRoute"], "approval-client");
    let ev = ui.wait_event("exec.approval.requested", LONG);
    assert_eq!(ev["payload"]["id"], "ap-1");
    assert_eq!(ev["payload"]["request"]["command"], "rm -rf /tmp/x");
    assert_eq!(ev["payload"]["approvalKind"], "exec");

    let list = ui.call("exec.approval.list", Some(json!({})));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let got = ui.call("exec.approval.get", Some(json!({"id": "ap-1"})));
    assert_eq!(got["commandText"], "rm -rf /tmp/x");
    let dup = req.call_err(
        "exec.approval.request",
        Some(json!({"id": "ap-1", "command": "ls"})),
    );
    assert_eq!(dup["message"], "approval id already pending");

    let bad = ui.call_err(
        "exec.approval.resolve",
        Some(json!({"id": "ap-1", "decision": "maybe"})),
    );
    assert_eq!(bad["message"], "invalid decision");
    let ok = ui.call(
        "exec.approval.resolve",
        Some(json!({"id": "ap-1", "decision": "allow-once"})),
    );
    assert_eq!(ok, json!({"ok": true}));
    let fin = req.wait_response(&id, LONG);
    assert_eq!(fin["payload"]["decision"], "allow-once", "{fin}");
    assert_eq!(fin["payload"]["id"], "ap-1");
    let resolved = ui.wait_event("exec.approval.resolved", LONG);
    assert_eq!(resolved["payload"]["decision"], "allow-once");
    assert_eq!(resolved["payload"]["resolvedBy"], "approver");
    // The requester (a plain cli) is not an approval client: it saw neither event.
    assert!(!req
        .events
        .iter()
        .any(|e| e["event"] == "exec.approval.requested"));

    // Already resolved: the same decision is fine, another is refused; waits answer at once.
    let same = ui.call(
        "exec.approval.resolve",
        Some(json!({"id": "ap-1", "decision": "allow-once"})),
    );
    assert_eq!(same, json!({"ok": true}));
    let other = ui.call_err(
        "exec.approval.resolve",
        Some(json!({"id": "ap-1", "decision": "deny"})),
    );
    assert_eq!(
        other["details"]["reason"], "APPROVAL_ALREADY_RESOLVED",
        "{other}"
    );
    let w = req.call("exec.approval.waitDecision", Some(json!({"id": "ap-1"})));
    assert_eq!(w["decision"], "allow-once");
    assert_eq!(w["terminalReason"], "user");
    // Unknown ids.
    let e = ui.call_err(
        "exec.approval.resolve",
        Some(json!({"id": "nope", "decision": "deny"})),
    );
    assert_eq!(e["message"], "unknown or expired approval id");
    assert_eq!(e["details"]["reason"], "APPROVAL_NOT_FOUND");
    let e = ui.call_err("exec.approval.waitDecision", Some(json!({"id": "nope"})));
    assert_eq!(e["message"], "approval expired or not found");
}

#[test]
fn expiry_and_no_route() {
    let server = Server::opts().shards(2).start();
    let mut req = Client::connect(&server);
    // Nobody can approve: it expires at once with decision null, even when two-phase.
    let r = req.call(
        "exec.approval.request",
        Some(json!({"command": "ls", "twoPhase": true})),
    );
    assert_eq!(r["decision"], Value::Null, "{r}");
    assert!(r["expiresAtMs"].as_u64().unwrap() > r["createdAtMs"].as_u64().unwrap());
    let e = req.call_err("exec.approval.request", Some(json!({"command": ""})));
    assert!(e["message"].as_str().unwrap().contains("/command"), "{e}");
    let e = req.call_err(
        "exec.approval.request",
        Some(json!({"command": "ls", "host": "node"})),
    );
    assert_eq!(e["message"], "nodeId is required for host=node");

    // With an approver connected, a short timeout expires the request.
    let mut ui = approver(&server, 0);
    let id = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "exp-1", "command": "ls", "timeoutMs": 300})),
    );
    // Once the approver has seen it, it waits for the decision too.
    ui.wait_event_where("exec.approval.requested", LONG, |e| {
        e["payload"]["id"] == "exp-1"
    });
    let waiter = ui.send_request("exec.approval.waitDecision", Some(json!({"id": "exp-1"})));
    let fin = req.wait_response(&id, LONG);
    assert_eq!(fin["payload"]["decision"], Value::Null, "{fin}");
    let w = ui.wait_response(&waiter, LONG);
    assert_eq!(w["payload"]["terminalReason"], "expired", "{w}");
    let ev = ui.wait_event_where("exec.approval.resolved", LONG, |e| {
        e["payload"]["id"] == "exp-1"
    });
    assert_eq!(ev["payload"]["resolvedBy"], Value::Null);
    let e = ui.call_err("exec.approval.get", Some(json!({"id": "exp-1"})));
    assert_eq!(e["details"]["reason"], "APPROVAL_NOT_FOUND");
}

#[test]
fn grants_and_policy_are_durable() {
    let dir = TempDir::new("approvals");
    let mut server = Server::opts().shards(2).state_dir(dir.path()).start();
    let mut ui = approver(&server, 0);
    let mut req = Client::connect(&server);
    let id = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "g-1", "command": "make test"})),
    );
    ui.wait_event("exec.approval.requested", LONG);
    ui.call(
        "exec.approval.resolve",
        Some(json!({"id": "g-1", "decision": "allow-always"})),
    );
    req.wait_response(&id, LONG);

    let p = ui.call("exec.approvals.get", Some(json!({})));
    let hash = p["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    let file = json!({"version": 1, "defaults": {"security": "allowlist"},
                      "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/ls"}]}}});
    let e = ui.call_err("exec.approvals.set", Some(json!({"file": file})));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("base hash required"),
        "{e}"
    );
    let e = ui.call_err(
        "exec.approvals.set",
        Some(json!({"file": file, "baseHash": "0".repeat(64)})),
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("changed since last load"),
        "{e}"
    );
    let set = ui.call(
        "exec.approvals.set",
        Some(json!({"file": file, "baseHash": hash})),
    );
    assert_ne!(set["hash"], hash.as_str());
    assert_eq!(set["resolvedDefaults"]["security"], "allowlist");
    assert!(set["file"]["agents"]["main"]["allowlist"][0]["id"].is_string());
    let e = ui.call_err(
        "exec.approvals.set",
        Some(json!({"file": file, "baseHash": hash})),
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("changed since last load"),
        "{e}"
    );
    // The grant was durable before the decision was announced.
    server.kill9();

    let server = Server::opts().shards(2).state_dir(dir.path()).start();
    let mut c = Client::connect(&server);
    let grants = c.call("exec.approval.grants.list", Some(json!({})));
    let g = &grants["grants"][0];
    assert_eq!(g["command"], "make test", "{grants}");
    assert_eq!(g["approvalId"], "g-1");
    let p = c.call("exec.approvals.get", Some(json!({})));
    assert_eq!(p["hash"], set["hash"]);
    let gid = g["grantId"].clone();
    assert_eq!(
        c.call("exec.approval.grants.revoke", Some(json!({"grantId": gid})))["outcome"],
        "revoked"
    );
    assert_eq!(
        c.call("exec.approval.grants.revoke", Some(json!({"grantId": gid})))["outcome"],
        "already-revoked"
    );
    assert_eq!(
        c.call("exec.approval.grants.revoke", Some(json!({"grantId": "x"})))["outcome"],
        "not-found"
    );
}

/// An approval id reused after its first request was resolved is a new request: the first
/// request's expiry timer must not expire it. (It did: the timer looked the id up, found the
/// new request and expired it early.)
#[test]
fn a_reused_id_is_not_expired_by_the_first_requests_timer() {
    let server = Server::opts().shards(2).start();
    let mut ui = approver(&server, 0);
    let mut req = Client::connect_to_shard(&server, &connect_params(), 1);
    let first = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "reuse", "command": "ls", "timeoutMs": 1_500, "twoPhase": true})),
    );
    assert_eq!(
        req.wait_response(&first, LONG)["payload"]["status"],
        "accepted"
    );
    ui.call(
        "exec.approval.resolve",
        Some(json!({"id": "reuse", "decision": "deny"})),
    );
    assert_eq!(
        req.wait_response(&first, LONG)["payload"]["decision"],
        "deny"
    );
    let second = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "reuse", "command": "ls -l", "timeoutMs": 60_000, "twoPhase": true})),
    );
    let accepted = req.wait_response(&second, LONG);
    assert_eq!(accepted["payload"]["status"], "accepted", "{accepted}");
    // Past the first request's deadline, the second is still pending.
    std::thread::sleep(Duration::from_millis(2_500));
    let list = ui.call("exec.approval.list", Some(json!({})));
    let pending: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == "reuse")
        .collect();
    assert_eq!(pending.len(), 1, "{list}");
    assert_eq!(pending[0]["request"]["command"], "ls -l");
    let ok = ui.call(
        "exec.approval.resolve",
        Some(json!({"id": "reuse", "decision": "allow-once"})),
    );
    assert_eq!(ok, json!({"ok": true}));
    let fin = req.wait_response(&second, LONG);
    assert_eq!(fin["payload"]["decision"], "allow-once", "{fin}");
}

/// Resolved and expired approvals are kept in `approval.history` (newest first, across a
/// restart), in the original's terminal shape; a requester's id is encoded in the link.
#[test]
fn resolved_approvals_are_in_the_history_and_survive_a_restart() {
    let dir = TempDir::new("approval-history");
    let start = || Server::opts().state_dir(dir.path()).start();
    let server = start();
    let mut ui = approver(&server, 0);
    let mut req = Client::connect_to_shard(&server, &connect_params(), 0);
    let odd = "a b/../c?d";
    let id = req.send_request(
        "exec.approval.request",
        Some(json!({"id": odd, "command": "ls", "sessionKey": "agent:main:main", "agentId": "main", "twoPhase": true})),
    );
    assert_eq!(
        req.wait_response(&id, LONG)["payload"]["status"],
        "accepted"
    );
    ui.wait_event("exec.approval.requested", LONG);
    ui.call(
        "exec.approval.resolve",
        Some(json!({"id": odd, "decision": "allow-once"})),
    );
    req.wait_response(&id, LONG);
    let short = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "late", "command": "id", "timeoutMs": 50, "twoPhase": true})),
    );
    req.wait_response(&short, LONG);
    let fin = req.wait_response(&short, LONG);
    assert_eq!(fin["payload"]["decision"], Value::Null, "{fin}");

    let check = |c: &mut Client| {
        let h = c.call("approval.history", Some(json!({"limit": 10})));
        let items = h["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{h}");
        assert_eq!(items[0]["id"], "late");
        assert_eq!(items[0]["status"], "expired");
        let a = &items[1];
        assert_eq!(a["status"], "allowed");
        assert_eq!(a["decision"], "allow-once");
        assert_eq!(a["urlPath"], "/approve/a%20b%2F..%2Fc%3Fd");
        assert_eq!(
            a["source"],
            json!({"agentId": "main", "sessionKey": "agent:main:main"})
        );
        assert!(a["resolvedAtMs"].as_u64() >= a["createdAtMs"].as_u64());
        let page = c.call("approval.history", Some(json!({"limit": 1})));
        assert_eq!(page["items"][0]["id"], "late");
        let next = c.call(
            "approval.history",
            Some(json!({"limit": 1, "cursor": page["nextCursor"]})),
        );
        assert_eq!(next["items"][0]["id"], odd);
        let bad = c.call_err("approval.history", Some(json!({"cursor": "h:-1"})));
        assert_eq!(bad["message"], "invalid approval.history cursor");
    };
    check(&mut ui);
    drop((ui, req));
    drop(server);
    let server = start();
    check(&mut approver(&server, 0));
}
