//! Durability and back-pressure of chat: every acknowledged user turn and every reply whose
//! `final` was sent survives `kill -9`; a watcher that stops reading gets coalesced deltas
//! (fewer, whole-text frames) but always the final.

mod common;

use std::time::Duration;

use common::{connect_params, Client, Server, TempDir};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(15);

fn texts(h: &Value) -> Vec<String> {
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            v => v[0]["text"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let dir = TempDir::new("chat-kill9");
    let cfg =
        "{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 200, chunkChars: 1 } } } }";
    let mut server = Server::opts()
        .shards(2)
        .state_dir(dir.path())
        .config(cfg)
        .start();
    let mut c = Client::connect(&server);
    // A completed turn…
    c.call(
        "chat.send",
        Some(json!({"sessionKey": "main", "message": "first", "idempotencyKey": "d-1"})),
    );
    let mut fin = Vec::new();
    while fin.is_empty() {
        let e = c.wait_event_where("chat", LONG, |e| e["payload"]["runId"] == "d-1");
        if e["payload"]["state"] == "final" {
            fin.push(e);
        }
    }
    // …and one acknowledged while its slow reply is still streaming.
    let ack = c.call(
        "chat.send",
        Some(json!({"sessionKey": "main", "message": "second", "idempotencyKey": "d-2"})),
    );
    assert_eq!(ack["status"], "started");
    server.kill9();

    let server = Server::opts()
        .shards(2)
        .state_dir(dir.path())
        .config(cfg)
        .start();
    let mut c = Client::connect(&server);
    let h = c.call("chat.history", Some(json!({"sessionKey": "main"})));
    assert_eq!(texts(&h), ["first", "echo: first", "second"], "{h}");
    // The interrupted run is not reported as active after the restart.
    assert_eq!(h["sessionInfo"]["hasActiveRun"], false, "{h}");
    // The session continues.
    c.call(
        "chat.send",
        Some(json!({"sessionKey": "main", "message": "third", "idempotencyKey": "d-3"})),
    );
    loop {
        let e = c.wait_event_where("chat", LONG, |e| e["payload"]["runId"] == "d-3");
        if e["payload"]["state"] == "final" {
            break;
        }
    }
    let h = c.call("chat.history", Some(json!({"sessionKey": "main"})));
    assert_eq!(h["totalMessages"], 5, "{h}");
}

/// Idempotency keys of acknowledged turns survive a restart for their TTL: a client that
/// retries after the gateway came back gets the first answer, and the turn runs once. A run
/// cut off by `kill -9` ends as interrupted (`agent.wait` says so, and so does a retry),
/// instead of `timeout` forever. Before, the retry added a second user turn and the wait
/// never ended.
#[test]
fn retries_and_waits_after_a_restart_get_the_first_outcome() {
    let dir = TempDir::new("chat-restart");
    let cfg =
        "{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 300, chunkChars: 1 } } } }";
    let start = || {
        Server::opts()
            .shards(2)
            .state_dir(dir.path())
            .config(cfg)
            .start()
    };
    let mut server = start();
    let mut c = Client::connect(&server);
    let done = json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "r-done"});
    c.call("chat.send", Some(done.clone()));
    let w = c.call(
        "agent.wait",
        Some(json!({"runId": "r-done", "timeoutMs": 15_000})),
    );
    assert_eq!(w["status"], "ok", "{w}");
    let cut = json!({"sessionKey": "main", "message": "slow", "idempotencyKey": "r-cut"});
    assert_eq!(c.call("chat.send", Some(cut.clone()))["status"], "started");
    let agent = json!({"message": "via agent", "sessionKey": "other", "idempotencyKey": "r-agent"});
    let id = c.send_request("agent", Some(agent.clone()));
    assert_eq!(c.wait_response(&id, LONG)["payload"]["status"], "accepted");
    server.kill9();

    let server = start();
    let mut c = Client::connect(&server);
    // The finished turn: the retry gets its answer, nothing is appended.
    let again = c.call("chat.send", Some(done.clone()));
    assert_eq!(again, json!({"runId": "r-done", "status": "ok"}));
    // The same key with other content is a conflict, as before the restart.
    let mut other = done.clone();
    other["message"] = json!("something else");
    let e = c.call_err("chat.send", Some(other));
    assert_eq!(e["details"]["reason"], "chat-request-conflict", "{e}");
    // The interrupted turns end with a clear state, on any shard.
    for run in ["r-cut", "r-agent"] {
        let w = c.call(
            "agent.wait",
            Some(json!({"runId": run, "timeoutMs": 2_000})),
        );
        assert_eq!(w["status"], "error", "{run}: {w}");
        assert!(
            w["error"].as_str().unwrap().contains("interrupted"),
            "{run}: {w}"
        );
    }
    let retry = c.request("chat.send", Some(cut));
    assert_eq!(retry["ok"], false, "{retry}");
    assert!(
        retry["error"]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{retry}"
    );
    let h = c.call("chat.history", Some(json!({"sessionKey": "main"})));
    assert_eq!(
        texts(&h),
        ["hi", "echo: hi", "slow"],
        "each acknowledged turn once: {h}"
    );
    let h = c.call("chat.history", Some(json!({"sessionKey": "other"})));
    assert_eq!(texts(&h), ["via agent"], "{h}");
}

#[test]
fn a_slow_watcher_gets_coalesced_deltas_and_the_final() {
    // 60 chunks of 10,000 characters, 60 ms apart: each delta carries the whole text so far,
    // so a watcher that does not read falls far behind.
    let server = Server::opts()
        .shards(1)
        .config("{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 60, chunkChars: 10000 } } } }")
        .start();
    let mut sender = Client::connect(&server);
    let mut fast = Client::connect(&server);
    // The slow watcher's socket buffers are small, so its backlog builds up in the gateway.
    let stream = std::net::TcpStream::connect(server.addr).unwrap();
    let size: libc::c_int = 32 * 1024;
    // SAFETY: setsockopt on an open socket with a correctly sized int option.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let mut slow = Client::connect_on(stream, &server, &connect_params());
    let message = "x".repeat(600_000);
    sender.call(
        "chat.send",
        Some(json!({"sessionKey": "big", "message": message, "idempotencyKey": "big-1"})),
    );
    fn count(c: &mut Client) -> (usize, usize, Value) {
        let mut deltas = 0;
        let mut replaced = 0;
        let mut last_seq = 0u64;
        loop {
            let e = c.wait_event_where("chat", Duration::from_secs(30), |e| {
                e["payload"]["runId"] == "big-1"
            });
            let seq = e["seq"].as_u64().unwrap();
            assert!(seq > last_seq, "connection seq increases");
            last_seq = seq;
            match e["payload"]["state"].as_str().unwrap() {
                "delta" => {
                    deltas += 1;
                    if e["payload"]["replace"] == true {
                        replaced += 1;
                        // A replacement carries the whole text so far.
                        assert_eq!(
                            e["payload"]["deltaText"],
                            e["payload"]["message"]["content"][0]["text"]
                        );
                    }
                }
                "final" => return (deltas, replaced, e),
                "status" => {}
                other => panic!("unexpected state {other}"),
            }
        }
    }
    // The slow watcher reads nothing for the first 1.5 s of the run, then catches up.
    let slow_reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let r = count(&mut slow);
        (r, slow)
    });
    let (fast_deltas, _, fast_final) = count(&mut fast);
    let ((slow_deltas, slow_replaced, slow_final), mut slow) = slow_reader.join().unwrap();
    let want = format!("echo: {message}");
    for f in [&fast_final, &slow_final] {
        assert_eq!(
            f["payload"]["message"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .len(),
            want.len()
        );
    }
    assert!(
        fast_deltas >= 10,
        "fast watcher saw the paced stream ({fast_deltas})"
    );
    assert!(
        slow_deltas < fast_deltas,
        "slow watcher got fewer deltas ({slow_deltas} vs {fast_deltas})"
    );
    assert!(slow_replaced >= 1, "its catch-up delta replaces the text ({slow_deltas} deltas, {slow_replaced} replaced, fast {fast_deltas})");
    // Still connected and served.
    assert_eq!(slow.call("health", None)["ok"], true);
}
