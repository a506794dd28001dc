//! `kill -9` under chat load, then an audit: every `chat.send` the gateway acknowledged before
//! it died is in its session's transcript after the restart, exactly once; retrying any key
//! after the restart adds nothing; no acknowledged run is left "running". Eight clients send
//! concurrently into their own and one shared session; the kill lands while they are sending.

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use common::{Client, Server, TempDir};
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const CONFIG: &str =
    "{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 15, chunkChars: 3 } } } }";

/// Acknowledged sends: (session, idempotency key, message).
type Acks = Arc<Mutex<Vec<(String, String, String)>>>;

fn user_messages(h: &Value) -> Vec<String> {
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The response to `id`, or `None` when the connection ends first.
fn answer(c: &mut Client, id: &str) -> Option<Value> {
    loop {
        match common::recv(&mut c.ws, Duration::from_secs(5)) {
            common::Incoming::Json(v) if v["type"] == "res" && v["id"] == id => return Some(v),
            common::Incoming::Json(_) => {}
            _ => return None,
        }
    }
}

#[test]
fn every_acknowledged_turn_survives_kill_9_exactly_once() {
    let dir = TempDir::new("kill9-audit");
    let start = || {
        Server::opts()
            .shards(2)
            .state_dir(dir.path())
            .config(CONFIG)
            .start()
    };
    let mut server = start();
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for t in 0..CLIENTS {
        let (acks, stop, sent) = (acks.clone(), stop.clone(), sent.clone());
        let mut c = Client::connect(&server);
        workers.push(thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let session = if i % 3 == 0 {
                    "shared".to_owned()
                } else {
                    format!("own-{t}")
                };
                let key = format!("k-{t}-{i}");
                let message = format!("m {t} {i}");
                let id = c.send_request(
                    "chat.send",
                    Some(json!({"sessionKey": session, "message": message, "idempotencyKey": key})),
                );
                sent.fetch_add(1, Ordering::Relaxed);
                // The kill ends the connection: that send was not acknowledged.
                let Some(res) = answer(&mut c, &id) else {
                    return;
                };
                if res["ok"] == true {
                    acks.lock().unwrap().push((session, key, message));
                }
            }
        }));
    }
    // Let the load build up, then kill in the middle of it.
    let t0 = Instant::now();
    while (acks.lock().unwrap().len() < 300 || t0.elapsed() < Duration::from_millis(500))
        && t0.elapsed() < Duration::from_secs(20)
    {
        thread::sleep(Duration::from_millis(10));
    }
    server.kill9();
    stop.store(true, Ordering::Release);
    for w in workers {
        let _ = w.join();
    }
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 200, "only {} acknowledged sends", acks.len());

    let server = start();
    let mut c = Client::connect(&server);
    let mut by_session: HashMap<String, Vec<String>> = HashMap::new();
    for (session, _, message) in &acks {
        by_session
            .entry(session.clone())
            .or_default()
            .push(message.clone());
    }
    for (session, expected) in &by_session {
        let h = c.call(
            "chat.history",
            Some(json!({"sessionKey": session, "limit": 1000})),
        );
        let have = user_messages(&h);
        for m in expected {
            let n = have.iter().filter(|x| *x == m).count();
            assert_eq!(n, 1, "{session}: acknowledged {m:?} present {n} times");
        }
        assert!(h["sessionInfo"]["hasActiveRun"] == false, "{session}: {h}");
    }
    // Retrying every acknowledged key after the restart adds nothing.
    for (session, key, message) in acks.iter().step_by(7) {
        let r = c.request(
            "chat.send",
            Some(json!({"sessionKey": session, "message": message, "idempotencyKey": key})),
        );
        assert_ne!(r["payload"]["status"], "started", "{key} ran again: {r}");
    }
    for (session, expected) in &by_session {
        let h = c.call(
            "chat.history",
            Some(json!({"sessionKey": session, "limit": 1000})),
        );
        let have = user_messages(&h);
        for m in expected {
            assert_eq!(have.iter().filter(|x| *x == m).count(), 1, "{session}: {m}");
        }
    }
    eprintln!(
        "kill -9 audit: {} sent, {} acknowledged, all present once after restart",
        sent.load(Ordering::Relaxed),
        acks.len()
    );
}
