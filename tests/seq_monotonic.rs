//! Event `seq` (protocol §6.2): per connection, starting at 1, +1 for every event delivered
//! (ticks, presence), `connect.challenge` excluded.

mod common;

use std::time::{Duration, Instant};

use common::{params_for, Client, Incoming, Server};
use serde_json::{json, Value};

/// Collects every event arriving on `c` until `until`, sending a few `system-event`s on the way
/// (their responses are checked and dropped).
fn collect(c: &mut Client, until: Instant, system_events: usize) -> Vec<Value> {
    let mut events = std::mem::take(&mut c.events);
    let mut sent = 0;
    while Instant::now() < until {
        if sent < system_events {
            sent += 1;
            c.send_request(
                "system-event",
                Some(json!({"text": format!("seq test {sent}"), "host": "seq-host"})),
            );
        }
        match common::recv(&mut c.ws, Duration::from_millis(50)) {
            Incoming::Json(v) if v["type"] == "event" => events.push(v),
            Incoming::Json(v) if v["type"] == "res" => assert_eq!(v["ok"], true, "{v}"),
            Incoming::Timeout => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    events
}

fn assert_seq(events: &[Value]) {
    assert!(!events.is_empty());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64(),
            Some(i as u64 + 1),
            "event #{i} has the wrong seq: {e}\nall: {events:?}"
        );
    }
}

#[test]
fn seq_starts_at_1_and_increments_by_1_per_connection() {
    let server = Server::opts()
        .limits(json!({"tickIntervalMs": 100}))
        .start();
    let mut a = Client::connect(&server);
    let start = Instant::now();
    let mut events_a = Vec::new();
    let until = start + Duration::from_millis(1200);
    events_a.extend(collect(&mut a, start + Duration::from_millis(400), 3));
    // A second admin watcher joins later: its own seq also starts at 1.
    let mut b = Client::connect(&server);
    // A tracked (ui) client connecting and leaving produces presence events.
    let ui = {
        let mut p = params_for("openclaw-linux", "ui", &[]);
        p["client"]["instanceId"] = json!("seq-ui");
        Client::connect_with(&server, &p)
    };
    events_a.extend(collect(&mut a, start + Duration::from_millis(800), 3));
    ui.close();
    events_a.extend(collect(&mut a, until, 0));
    let events_b = collect(&mut b, Instant::now() + Duration::from_millis(400), 2);

    let names: Vec<&str> = events_a
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().filter(|n| **n == "tick").count() >= 5,
        "{names:?}"
    );
    assert!(
        names.iter().filter(|n| **n == "presence").count() >= 6,
        "{names:?}"
    );
    assert!(!names.contains(&"connect.challenge"));
    assert_seq(&events_a);
    assert_seq(&events_b);
    // Presence events carry stateVersion; ticks do not.
    for e in &events_a {
        if e["event"] == "presence" {
            assert!(e["stateVersion"]["presence"].is_u64(), "{e}");
        } else {
            assert!(e.get("stateVersion").is_none(), "{e}");
        }
    }
}
