//! Bad input of every kind, before and after `hello-ok`: random bytes, truncated and mutated
//! frames, wrong types, deep nesting, huge numbers. Every connection gets a precise answer or
//! a close with a code, and the server keeps serving. Deterministic (seeded) and bounded.

mod common;

use std::time::Duration;

use common::{open, recv, send_text, Client, Incoming, Server};
use serde_json::json;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a String {
        &items[(self.next() as usize) % items.len()]
    }
}

fn corpus(rng: &mut Rng) -> Vec<String> {
    let valid = json!({"type":"req","id":"7","method":"health","params":{}}).to_string();
    let connect =
        json!({"type":"req","id":"1","method":"connect","params":{"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"1","platform":"linux","mode":"cli"},"auth":{"token":"T"}}})
        .to_string();
    let mut v: Vec<String> = vec![
        String::new(),
        "null".into(),
        "[]".into(),
        "\"req\"".into(),
        "{".into(),
        "}".into(),
        "{\"type\":\"req\"}".into(),
        "{\"type\":\"req\",\"id\":7,\"method\":\"health\"}".into(),
        "{\"type\":\"req\",\"id\":\"1\",\"method\":[\"health\"]}".into(),
        "{\"type\":\"req\",\"id\":\"1\",\"method\":\"connect\",\"params\":\"x\"}".into(),
        "{\"type\":\"req\",\"id\":\"1\",\"method\":\"connect\",\"params\":{\"minProtocol\":1e400}}".into(),
        "{\"type\":\"req\",\"id\":\"1\",\"method\":\"wake\",\"params\":{\"mode\":\"now\",\"text\":123}}".into(),
        "{\"type\":\"req\",\"id\":\"1\",\"method\":\"system-event\",\"params\":{\"text\":\"x\",\"roles\":[1,2]}}".into(),
        "{\"type\":\"event\",\"event\":\"tick\"}".into(),
        "{\"type\":\"res\",\"id\":\"1\",\"ok\":true}".into(),
        "{\"type\":\"cancel\",\"id\":\"1\"}".into(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        format!("{{\"type\":\"req\",\"id\":\"1\",\"method\":\"health\",\"params\":{}}}", "{\"a\":".repeat(500) + "1" + &"}".repeat(500)),
        "\u{feff}{\"type\":\"req\"}".into(),
        "{\"type\":\"req\",\"id\":\"\\ud800\",\"method\":\"health\"}".into(),
        valid.clone(),
        connect.clone(),
    ];
    // Truncations and byte mutations of valid frames.
    for base in [&valid, &connect] {
        for cut in [1, 5, base.len() / 2, base.len() - 1] {
            v.push(base[..cut].to_owned());
        }
        for _ in 0..20 {
            let mut b = base.clone().into_bytes();
            let i = (rng.next() as usize) % b.len();
            b[i] = b"{}[]\":,0aZ\\"[(rng.next() as usize) % 11];
            if let Ok(s) = String::from_utf8(b) {
                v.push(s);
            }
        }
    }
    v
}

/// After a garbage frame, the connection answers, closes with a code, or stays silent (ignored
/// non-JSON after auth) — never hangs the server.
fn check_alive(server: &Server) {
    let mut c = Client::connect(server);
    assert_eq!(
        c.call("health", None)["ok"],
        true,
        "server stopped answering"
    );
}

#[test]
fn garbage_before_hello() {
    let server = Server::start();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let frames = corpus(&mut rng);
    for i in 0..frames.len() * 2 {
        let f = rng.pick(&frames).clone();
        let (mut ws, _) = open(&server);
        send_text(&mut ws, &f);
        match recv(&mut ws, Duration::from_secs(10)) {
            Incoming::Json(v) => assert!(v["type"] == "res" || v["type"] == "event", "#{i}: {v}"),
            Incoming::Close(code, _) => assert!(
                [1000, 1002, 1008, 1009].contains(&code),
                "#{i}: close {code} for {f:.80}"
            ),
            other => panic!("#{i}: unexpected {other:?} for {f:.80}"),
        }
    }
    check_alive(&server);
}

#[test]
fn garbage_after_hello() {
    let server = Server::start();
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let frames = corpus(&mut rng);
    let mut c = Client::connect(&server);
    for f in frames.iter() {
        c.send_text(f);
    }
    // Each garbage frame got its answer (or was ignored); the same connection still answers
    // a real request afterwards.
    c.send_json(&json!({"type": "req", "id": "final-check", "method": "health"}));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut answers = 0;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match recv(&mut c.ws, left) {
            Incoming::Json(v) if v["id"] == "final-check" => {
                assert_eq!(v["ok"], true, "{v}");
                break;
            }
            Incoming::Json(v) => {
                if v["type"] == "res" {
                    answers += 1;
                    assert!(v["ok"] == true || v["error"]["code"].is_string(), "{v}");
                }
            }
            other => panic!("connection ended after garbage: {other:?}"),
        }
    }
    assert!(answers > 0, "invalid frames got no error responses");
    check_alive(&server);
}
