//! Sessions, chat and agent runs (protocol §7.1–7.3) through the echo agent: a sender and a
//! watcher on different shards both see the whole run in order; retries are deduplicated;
//! abort stops a run mid-stream; history pages; `agent` answers twice; `agent.wait` waits.

mod common;

use std::time::Duration;

use common::{connect_params, Client, Server};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(10);

fn server(delay_ms: u64, chunk: u64) -> Server {
    Server::opts()
        .shards(2)
        .config(&format!(
            "{{ ringgate: {{ agents: {{ main: {{ runtime: 'echo', chunkDelayMs: {delay_ms}, chunkChars: {chunk} }} }} }} }}"
        ))
        .start()
}

/// Collects `chat` events of a run up to and including its terminal one.
fn chat_events(c: &mut Client, run_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = c.wait_event_where("chat", LONG, |e| e["payload"]["runId"] == run_id);
        let state = e["payload"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.push(e);
        if matches!(state.as_str(), "final" | "aborted" | "error") {
            return out;
        }
    }
}

/// The text of a transcript message (user content is a string, assistant content blocks).
fn text_of(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        v => v[0]["text"].as_str().unwrap_or_default().to_owned(),
    }
}

fn send(c: &mut Client, key: &str, message: &str, run: &str) -> Value {
    c.call(
        "chat.send",
        Some(json!({"sessionKey": key, "message": message, "idempotencyKey": run})),
    )
}

#[test]
fn sender_and_watcher_on_different_shards_see_the_run_in_order() {
    let server = server(20, 3);
    let mut sender = Client::connect_to_shard(&server, &connect_params(), 0);
    let mut watcher = Client::connect_to_shard(&server, &connect_params(), 1);
    let mut subscriber = Client::connect_to_shard(&server, &connect_params(), 1);
    subscriber.call("sessions.subscribe", Some(json!({})));
    subscriber.call("sessions.messages.subscribe", Some(json!({"key": "main"})));

    let ack = send(&mut sender, "main", "hello there", "run-1");
    assert_eq!(ack["runId"], "run-1");
    assert_eq!(ack["status"], "started");
    assert_eq!(ack["messageSeq"], 1);

    for c in [&mut sender, &mut watcher] {
        let events = chat_events(c, "run-1");
        let last = events.last().unwrap();
        assert_eq!(last["payload"]["state"], "final", "{last}");
        assert_eq!(last["payload"]["sessionKey"], "agent:main:main");
        assert_eq!(
            last["payload"]["message"]["content"][0]["text"],
            "echo: hello there"
        );
        // Deltas: deltaText suffixes add up to the cumulative message; run seq increases;
        // connection seq increases.
        let mut text = String::new();
        let mut run_seq = 0;
        let mut conn_seq = 0;
        for e in &events {
            let p = &e["payload"];
            assert!(p["seq"].as_u64().unwrap() > run_seq, "run seq order: {e}");
            run_seq = p["seq"].as_u64().unwrap();
            assert!(e["seq"].as_u64().unwrap() > conn_seq, "conn seq order: {e}");
            conn_seq = e["seq"].as_u64().unwrap();
            if p["state"] == "delta" {
                text.push_str(p["deltaText"].as_str().unwrap());
                assert_eq!(p["message"]["content"][0]["text"], text.as_str());
            }
        }
        assert_eq!(text, "echo: hello there");
        assert!(events.len() >= 2, "at least one delta and the final");
        // The agent stream: lifecycle start … end.
        let start = c.wait_event_where("agent", LONG, |e| {
            e["payload"]["runId"] == "run-1" && e["payload"]["data"]["phase"] == "start"
        });
        assert_eq!(start["payload"]["stream"], "lifecycle");
        c.wait_event_where("agent", LONG, |e| {
            e["payload"]["runId"] == "run-1" && e["payload"]["data"]["phase"] == "end"
        });
    }
    // Subscribers see the transcript rows and session changes.
    let user = subscriber.wait_event_where("session.message", LONG, |e| {
        e["payload"]["message"]["role"] == "user"
    });
    assert_eq!(user["payload"]["sessionKey"], "agent:main:main");
    assert_eq!(user["payload"]["message"]["content"], "hello there");
    assert_eq!(user["payload"]["messageSeq"], 1);
    subscriber.wait_event_where("session.message", LONG, |e| {
        e["payload"]["message"]["role"] == "assistant"
    });
    let changed = subscriber.wait_event_where("sessions.changed", LONG, |e| {
        e["payload"]["reason"] == "send"
    });
    assert_eq!(changed["payload"]["sessionKey"], "agent:main:main");
    // The history, read from the other shard.
    let h = watcher.call("chat.history", Some(json!({"sessionKey": "main"})));
    let texts: Vec<String> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(texts, ["hello there", "echo: hello there"]);
    assert_eq!(h["messages"][0]["role"], "user");
    assert_eq!(h["messages"][1]["__openclaw"]["seq"], 2);
    assert_eq!(h["sessionInfo"]["key"], "agent:main:main");
    assert_eq!(h["totalMessages"], 2);
    // The session list shows it on both shards.
    for c in [&mut sender, &mut watcher] {
        let l = c.call("sessions.list", Some(json!({})));
        assert_eq!(l["count"], 1, "{l}");
        assert_eq!(l["sessions"][0]["key"], "agent:main:main");
        assert_eq!(l["sessions"][0]["hasActiveRun"], false);
    }
}

#[test]
fn retried_sends_are_deduplicated() {
    let server = server(30, 2);
    let mut a = Client::connect_to_shard(&server, &connect_params(), 0);
    let mut b = Client::connect_to_shard(&server, &connect_params(), 1);
    let first = send(&mut a, "dedupe", "same words", "k-1");
    assert_eq!(first["status"], "started");
    // A retry from another shard while the run streams.
    let retry = send(&mut b, "dedupe", "same words", "k-1");
    assert_eq!(retry, json!({"runId": "k-1", "status": "in_flight"}));
    // The same key for a different message is refused.
    let err = b.call_err(
        "chat.send",
        Some(json!({"sessionKey": "dedupe", "message": "other words", "idempotencyKey": "k-1"})),
    );
    assert_eq!(err["code"], "INVALID_REQUEST", "{err}");
    assert_eq!(err["details"]["reason"], "chat-request-conflict", "{err}");
    let events = chat_events(&mut a, "k-1");
    assert_eq!(events.last().unwrap()["payload"]["state"], "final");
    let after = send(&mut b, "dedupe", "same words", "k-1");
    assert_eq!(after, json!({"runId": "k-1", "status": "ok"}));
    // Only one user turn and one reply were recorded.
    let h = a.call("chat.history", Some(json!({"sessionKey": "dedupe"})));
    assert_eq!(h["totalMessages"], 2, "{h}");
}

/// A retried key is recognised from the run record even when more than the cache's 1,000
/// finished entries came after it and the gateway restarted (the restored cache keeps the
/// newest 1,000): it answers the first outcome and adds no turn. Found by the kill -9 audit
/// under load, where the first keys had been dropped before the retry.
#[test]
fn a_retry_past_the_cache_and_a_restart_adds_no_turn() {
    let dir = common::TempDir::new("evicted-retry");
    let start = || {
        Server::opts()
            .state_dir(dir.path())
            .config("{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 0, chunkChars: 64 } } } }")
            .start()
    };
    let server = start();
    let mut a = Client::connect(&server);
    a.keep_events = false;
    for i in 0..1_050 {
        let r = send(
            &mut a,
            &format!("s-{}", i % 50),
            &format!("m{i}"),
            &format!("k-{i}"),
        );
        assert_eq!(r["status"], "started", "{r}");
    }
    let w = a.call(
        "agent.wait",
        Some(json!({"runId": "k-1049", "timeoutMs": 10_000})),
    );
    assert_eq!(w["status"], "ok", "{w}");
    drop(a);
    drop(server);
    let server = start();
    let mut a = Client::connect(&server);
    let retry = send(&mut a, "s-0", "m0", "k-0");
    assert_ne!(retry["status"], "started", "{retry}");
    assert_eq!(retry["runId"], "k-0");
    let err = a.call_err(
        "chat.send",
        Some(json!({"sessionKey": "s-0", "message": "other", "idempotencyKey": "k-0"})),
    );
    assert_eq!(err["details"]["reason"], "chat-request-conflict", "{err}");
    let h = a.call(
        "chat.history",
        Some(json!({"sessionKey": "s-0", "limit": 1000})),
    );
    let firsts = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user" && m["content"] == "m0")
        .count();
    assert_eq!(firsts, 1, "{h}");
}

#[test]
fn abort_stops_a_run_mid_stream() {
    let server = server(100, 1);
    let mut a = Client::connect_to_shard(&server, &connect_params(), 0);
    let mut w = Client::connect_to_shard(&server, &connect_params(), 1);
    send(
        &mut a,
        "stop-me",
        "a fairly long message to echo back",
        "r-abort",
    );
    // Let a few chunks stream, then abort from the other shard.
    w.wait_event_where("chat", LONG, |e| e["payload"]["state"] == "delta");
    std::thread::sleep(Duration::from_millis(250));
    let r = w.call("chat.abort", Some(json!({"sessionKey": "stop-me"})));
    assert_eq!(
        r,
        json!({"ok": true, "aborted": true, "runIds": ["r-abort"]})
    );
    for c in [&mut a, &mut w] {
        let events = chat_events(c, "r-abort");
        let last = events.last().unwrap();
        assert_eq!(last["payload"]["state"], "aborted", "{last}");
        assert_eq!(last["payload"]["stopReason"], "rpc");
        let partial = last["payload"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            partial.len() < "echo: a fairly long message to echo back".len(),
            "stopped early: {partial}"
        );
        c.wait_event_where("agent", LONG, |e| {
            e["payload"]["data"]["phase"] == "end" && e["payload"]["data"]["aborted"] == true
        });
    }
    // Nothing more streams for the run.
    std::thread::sleep(Duration::from_millis(400));
    let _ = a.call("health", None);
    assert!(
        !a.events
            .iter()
            .any(|e| e["event"] == "chat" && e["payload"]["runId"] == "r-abort"),
        "no chat events after the abort"
    );
    // Nothing to abort now.
    let r = a.call("chat.abort", Some(json!({"sessionKey": "stop-me"})));
    assert_eq!(r["aborted"], false);
    let w2 = a.call(
        "agent.wait",
        Some(json!({"runId": "r-abort", "timeoutMs": 1000})),
    );
    assert_eq!(w2["status"], "timeout", "{w2}");
    assert_eq!(w2["stopReason"], "rpc");
    // A retry of the aborted send gets the cached abort.
    let again = send(
        &mut a,
        "stop-me",
        "a fairly long message to echo back",
        "r-abort",
    );
    assert_eq!(again["status"], "timeout", "{again}");
    assert_eq!(again["summary"], "aborted");
    // sessions.abort answers in its own shape.
    let r = a.call("sessions.abort", Some(json!({"key": "stop-me"})));
    assert_eq!(
        r,
        json!({"ok": true, "abortedRunId": null, "status": "no-active-run"})
    );
}

#[test]
fn history_pages_backwards() {
    let server = server(0, 64);
    let mut c = Client::connect(&server);
    for i in 0..5 {
        send(&mut c, "pages", &format!("m{i}"), &format!("p-{i}"));
        chat_events(&mut c, &format!("p-{i}"));
    }
    let page = c.call(
        "chat.history",
        Some(json!({"sessionKey": "pages", "limit": 4})),
    );
    let texts = |p: &Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(text_of)
            .collect()
    };
    assert_eq!(texts(&page), ["m3", "echo: m3", "m4", "echo: m4"]);
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["totalMessages"], 10);
    assert_eq!(page["nextOffset"], 4);
    let older = c.call(
        "chat.history",
        Some(json!({"sessionKey": "pages", "limit": 4, "offset": 4})),
    );
    assert_eq!(texts(&older), ["m1", "echo: m1", "m2", "echo: m2"]);
    assert_eq!(older["offset"], 4);
    assert_eq!(older["nextOffset"], 8);
    let oldest = c.call(
        "chat.history",
        Some(json!({"sessionKey": "pages", "limit": 4, "offset": 8})),
    );
    assert_eq!(texts(&oldest), ["m0", "echo: m0"]);
    assert_eq!(oldest["hasMore"], false);
    // A byte budget keeps the newest messages that fit.
    let small = c.call(
        "chat.history",
        Some(json!({"sessionKey": "pages", "maxBytes": 1024})),
    );
    let n = small["messages"].as_array().unwrap().len();
    assert!(n > 0 && n < 10, "{small}");
    assert_eq!(small["hasMore"], true);
    assert_eq!(texts(&small).last().unwrap(), "echo: m4");
    // Bad params get the schema's error.
    let err = c.call_err(
        "chat.history",
        Some(json!({"sessionKey": "pages", "limit": 0})),
    );
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert!(err["message"].as_str().unwrap().contains("/limit"), "{err}");
    let err = c.call_err(
        "chat.send",
        Some(json!({"sessionKey": "x", "message": "hi"})),
    );
    assert!(
        err["message"].as_str().unwrap().contains("idempotencyKey"),
        "{err}"
    );
}

#[test]
fn agent_answers_accepted_then_final_and_agent_wait_waits() {
    let server = server(20, 4);
    let mut c = Client::connect_to_shard(&server, &connect_params(), 0);
    let mut other = Client::connect_to_shard(&server, &connect_params(), 1);
    // agent.wait on the other shard before the run exists: it waits.
    let wait_id = other.send_request(
        "agent.wait",
        Some(json!({"runId": "ag-1", "timeoutMs": 8000})),
    );
    let id = c.send_request(
        "agent",
        Some(json!({"message": "hi", "idempotencyKey": "ag-1"})),
    );
    let accepted = c.wait_response(&id, LONG);
    assert_eq!(accepted["payload"]["status"], "accepted", "{accepted}");
    assert_eq!(accepted["payload"]["runId"], "ag-1");
    let fin = c.wait_response(&id, LONG);
    assert_eq!(fin["payload"]["status"], "ok", "{fin}");
    assert_eq!(fin["payload"]["result"]["payloads"][0]["text"], "echo: hi");
    let waited = other.wait_response(&wait_id, LONG);
    assert_eq!(waited["payload"]["status"], "ok", "{waited}");
    assert_eq!(waited["payload"]["runId"], "ag-1");
    // Unknown run: times out.
    let t = other.call(
        "agent.wait",
        Some(json!({"runId": "nope", "timeoutMs": 100})),
    );
    assert_eq!(t, json!({"runId": "nope", "status": "timeout"}));
    // A retry of a finished agent call gets the cached final.
    let again = c.call(
        "agent",
        Some(json!({"message": "hi", "idempotencyKey": "ag-1"})),
    );
    assert_eq!(again["status"], "ok");
}

#[test]
fn session_scoped_clients_get_only_subscribed_sessions() {
    let server = server(0, 64);
    let mut sender = Client::connect(&server);
    let mut p = connect_params();
    p["caps"] = json!(["session-scoped-events"]);
    let mut scoped = Client::connect_with(&server, &p);
    scoped.call("sessions.messages.subscribe", Some(json!({"key": "mine"})));
    send(&mut sender, "theirs", "x", "s-1");
    chat_events(&mut sender, "s-1");
    send(&mut sender, "mine", "y", "s-2");
    let events = chat_events(&mut scoped, "s-2");
    assert_eq!(events.last().unwrap()["payload"]["state"], "final");
    assert!(
        !scoped.events.iter().any(|e| e["payload"]["runId"] == "s-1"),
        "no events of an unsubscribed session"
    );
}

#[test]
fn sessions_patch_reset_delete() {
    let server = server(0, 64);
    let mut c = Client::connect(&server);
    send(&mut c, "work", "one", "w-1");
    chat_events(&mut c, "w-1");
    let p = c.call(
        "sessions.patch",
        Some(json!({"key": "work", "label": "Work"})),
    );
    assert_eq!(p["ok"], true);
    assert_eq!(p["entry"]["label"], "Work");
    let l = c.call("sessions.list", Some(json!({"search": "work"})));
    assert_eq!(l["sessions"][0]["label"], "Work");
    let before = l["sessions"][0]["sessionId"].clone();
    let r = c.call("sessions.reset", Some(json!({"key": "work"})));
    assert_ne!(r["entry"]["sessionId"], before);
    let h = c.call("chat.history", Some(json!({"sessionKey": "work"})));
    assert_eq!(h["totalMessages"], 0);
    let d = c.call("sessions.delete", Some(json!({"key": "work"})));
    assert_eq!(d["deleted"], true);
    let l = c.call("sessions.list", Some(json!({})));
    assert_eq!(l["count"], 0);
    let d = c.call("sessions.delete", Some(json!({"key": "work"})));
    assert_eq!(d["deleted"], false);
    // Unknown agents are refused with a clear error.
    let e = c.call_err(
        "chat.send",
        Some(json!({"sessionKey": "x", "agentId": "ghost", "message": "m", "idempotencyKey": "g"})),
    );
    assert_eq!(e["message"], "Unknown agent id \"ghost\"", "{e}");
    let e = c.call_err(
        "chat.send",
        Some(json!({"sessionKey": "agent:main:", "message": "m", "idempotencyKey": "g"})),
    );
    assert_eq!(e["message"], "malformed session key \"agent:main:\"", "{e}");
    let e = c.call_err("sessions.delete", Some(json!({"key": "main"})));
    assert_eq!(
        e["message"],
        "Cannot delete the main session (agent:main:main)."
    );
    // sessions.send does not create sessions.
    let e = c.call_err(
        "sessions.send",
        Some(json!({"key": "nowhere", "message": "m"})),
    );
    assert_eq!(e["message"], "session not found: agent:main:nowhere", "{e}");
    // sessions.describe.
    let d = c.call("sessions.describe", Some(json!({"key": "nowhere"})));
    assert_eq!(d, json!({"session": null}));
}
