//! Cron: jobs added over the wire run on schedule and on demand (from any shard), agent turns
//! land in their session, failures are reported with the reason, and jobs plus their run
//! history survive a `kill -9`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn config() -> String {
    // `broken` points at a closed port: its turns fail the way a dead provider does.
    r#"{ringgate: {agents: {
        main: {runtime: "echo", chunkDelayMs: 0},
        broken: {runtime: "openai", baseUrl: "http://127.0.0.1:9/v1", model: "m", timeoutMs: 2000},
    }}}"#
        .into()
}

fn finished(c: &mut Client, job: &str) -> Value {
    c.wait_event_where("cron", WAIT, |e| {
        e["payload"]["jobId"] == job && e["payload"]["action"] == "finished"
    })["payload"]
        .clone()
}

#[test]
fn scheduled_and_manual_runs_with_history_that_survives_a_crash() {
    let state = TempDir::new("cron-state");
    let mut server = Server::opts()
        .state_dir(state.path())
        .config(&config())
        .start();
    let mut a = Client::connect_to_shard(&server, &connect_params(), 1);

    // Every second, a system event in the main session.
    let tick = a.call(
        "cron.add",
        Some(
            json!({"name": "tick", "schedule": {"kind": "every", "everyMs": 1000},
                    "sessionTarget": "main", "wakeMode": "now",
                    "payload": {"kind": "systemEvent", "text": "tick-from-cron"}}),
        ),
    );
    let tick_id = tick["id"].as_str().unwrap().to_owned();
    assert_eq!(tick["enabled"], true);
    assert!(tick["nextRunAtMs"].as_u64().is_some(), "{tick}");
    let added = a.wait_event_where("cron", WAIT, |e| e["payload"]["action"] == "added");
    assert_eq!(added["payload"]["jobId"], tick_id.as_str());
    let f = finished(&mut a, &tick_id);
    assert_eq!(f["status"], "ok", "{f}");
    let status = a.call("status", None);
    assert!(
        status["queuedSystemEvents"]
            .as_array()
            .unwrap()
            .contains(&json!("tick-from-cron")),
        "{status}"
    );

    // An isolated agent turn far in the future, run now by hand.
    let turn = a.call(
        "cron.add",
        Some(
            json!({"name": "digest", "schedule": {"kind": "cron", "expr": "0 3 * * *"},
                    "sessionTarget": "isolated",
                    "payload": {"kind": "agentTurn", "message": "summarize the night"}}),
        ),
    );
    let turn_id = turn["id"].as_str().unwrap().to_owned();
    let run = a.call("cron.run", Some(json!({"id": turn_id})));
    assert_eq!(
        (run["ok"].as_bool(), run["enqueued"].as_bool()),
        (Some(true), Some(true))
    );
    let f = finished(&mut a, &turn_id);
    assert_eq!(f["status"], "ok", "{f}");
    let h = a.call(
        "chat.history",
        Some(json!({"sessionKey": format!("cron:{turn_id}")})),
    );
    let texts: Vec<String> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("echo: summarize the night")),
        "{h}"
    );

    // A turn whose provider is down: the run fails and says why.
    let bad = a.call(
        "cron.add",
        Some(json!({"name": "doomed", "agentId": "broken", "schedule": {"kind": "every", "everyMs": 3_600_000},
                    "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "hi"}})),
    );
    let bad_id = bad["id"].as_str().unwrap().to_owned();
    a.call("cron.run", Some(json!({"id": bad_id})));
    let f = finished(&mut a, &bad_id);
    assert_eq!(f["status"], "error", "{f}");
    assert!(!f["error"].as_str().unwrap_or_default().is_empty(), "{f}");
    let list = a.call("cron.list", Some(json!({"includeDisabled": true})));
    let job = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == bad_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(job["lastRunStatus"], "error", "{job}");
    assert!(job["state"]["lastError"].as_str().is_some(), "{job}");

    // Refusals.
    let e = a.call_err(
        "cron.update",
        Some(json!({"id": "nope", "patch": {"enabled": false}})),
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Automation not found: nope."),
        "{e}"
    );
    let e = a.call_err(
        "cron.add",
        Some(
            json!({"name": "x", "schedule": {"kind": "cron", "expr": "61 * * * *"},
        "sessionTarget": "main", "payload": {"kind": "systemEvent", "text": "t"}}),
        ),
    );
    assert_eq!(e["code"], "INVALID_REQUEST");

    // Disable the ticker; its history stays.
    let upd = a.call(
        "cron.update",
        Some(json!({"id": tick_id, "patch": {"enabled": false}})),
    );
    assert_eq!(upd["enabled"], false);
    let runs = a.call("cron.runs", Some(json!({"id": tick_id})));
    let n = runs["total"].as_u64().unwrap();
    assert!(n >= 1, "{runs}");

    // kill -9: jobs and history are on disk.
    server.kill9();
    let server = Server::opts()
        .state_dir(state.path())
        .config(&config())
        .start();
    let mut b = Client::connect_to_shard(&server, &connect_params(), 1);
    let list = wait_loaded(&mut b);
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    for id in [&tick_id, &turn_id, &bad_id] {
        assert!(ids.contains(&id.as_str()), "{id} lost: {list}");
    }
    let runs = b.call("cron.runs", Some(json!({"id": tick_id})));
    assert!(runs["total"].as_u64().unwrap() >= n, "{runs}");
    let removed = b.call("cron.remove", Some(json!({"id": bad_id})));
    assert_eq!(removed["removed"], true);
    let st = b.call("cron.status", Some(json!({})));
    assert_eq!(st["jobs"], 2);
}

/// `cron.list` once the owner has loaded the jobs (it answers UNAVAILABLE for a moment after
/// start).
fn wait_loaded(c: &mut Client) -> Value {
    for _ in 0..50 {
        let r = c.request("cron.list", Some(json!({"includeDisabled": true})));
        if r["ok"] == true {
            return r["payload"].clone();
        }
        assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cron never loaded");
}
