//! The `openai` agent runtime against a local fake of the OpenAI streaming API: deltas stream
//! back as `chat` events and the final; the conversation so far is sent as context; provider
//! failures (429, 500, context overflow, a hung provider) become `chat` `error` events with the
//! original's `errorKind`, and the run ends for `agent.wait`.

mod common;

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{fake_model::read_request, Client, Server};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(10);

/// A fake provider: the first path segment picks the behaviour. Request bodies are recorded.
struct Fake {
    port: u16,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
}

fn respond(s: &mut TcpStream, path: &str) {
    let json_err = |status: &str, body: Value| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.to_string().len()
        )
    };
    let out = match path.split('/').nth(1).unwrap_or("") {
        "ok" => {
            let mut b = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            for part in ["Hel", "lo ", "from ", "the model"] {
                let chunk = json!({"choices": [{"index": 0, "delta": {"content": part}}]});
                b.push_str(&format!("data: {chunk}\n\n"));
            }
            let fin = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            b.push_str(&format!("data: {fin}\n\n"));
            let usage =
                json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}});
            b.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
            b
        }
        "limit" => json_err(
            "429 Too Many Requests",
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        ),
        "boom" => json_err(
            "500 Internal Server Error",
            json!({"error": {"message": "internal failure"}}),
        ),
        "ctx" => json_err(
            "400 Bad Request",
            json!({"error": {"message": "This model's maximum context length is 10 tokens", "code": "context_length_exceeded"}}),
        ),
        _ => {
            // "hang": headers, then nothing.
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n");
            std::thread::sleep(Duration::from_secs(5));
            return;
        }
    };
    let _ = s.write_all(out.as_bytes());
}

impl Fake {
    fn start() -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let rec = bodies.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let rec = rec.clone();
                std::thread::spawn(move || {
                    if let Some((path, body)) = read_request(&mut s) {
                        rec.lock().unwrap().push((path.clone(), body));
                        respond(&mut s, &path);
                    }
                });
            }
        });
        Fake { port, bodies }
    }
}

fn server(fake: &Fake) -> Server {
    let agent = |name: &str, extra: &str| {
        format!(
            "{name}: {{ runtime: 'openai', baseUrl: 'http://127.0.0.1:{}/{name}/v1', model: 'fake-1', apiKey: 'sk-test'{extra} }}",
            fake.port
        )
    };
    let cfg = format!(
        "{{ ringgate: {{ agents: {{ main: {{ runtime: 'echo' }}, {}, {}, {}, {}, {} }} }} }}",
        agent("ok", ""),
        agent("limit", ""),
        agent("boom", ""),
        agent("ctx", ""),
        agent("hang", ", timeoutMs: 500"),
    );
    Server::opts().shards(2).config(&cfg).start()
}

fn run(c: &mut Client, agent: &str, message: &str, run_id: &str) -> Value {
    let ack = c.call(
        "chat.send",
        Some(json!({"sessionKey": format!("agent:{agent}:main"), "message": message, "idempotencyKey": run_id})),
    );
    assert_eq!(ack["status"], "started");
    loop {
        let e = c.wait_event_where("chat", LONG, |e| e["payload"]["runId"] == run_id);
        if !matches!(e["payload"]["state"].as_str(), Some("delta" | "status")) {
            return e["payload"].clone();
        }
    }
}

#[test]
fn streamed_reply_and_context() {
    let fake = Fake::start();
    let server = server(&fake);
    let mut c = Client::connect(&server);
    let fin = run(&mut c, "ok", "say hello", "o-1");
    assert_eq!(fin["state"], "final", "{fin}");
    assert_eq!(fin["message"]["content"][0]["text"], "Hello from the model");
    // Usage is recorded with the reply and on the session row.
    let h = c.call("chat.history", Some(json!({"sessionKey": "agent:ok:main"})));
    let reply = &h["messages"][1];
    assert_eq!(reply["usage"]["input"], 11, "{h}");
    assert_eq!(reply["usage"]["output"], 4);
    assert_eq!(reply["model"], "fake-1");
    assert_eq!(h["sessionInfo"]["inputTokens"], 11);
    assert_eq!(h["sessionInfo"]["outputTokens"], 4);
    let (path, body) = fake.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(path, "/ok/v1/chat/completions");
    assert_eq!(body["model"], "fake-1");
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "say hello"}])
    );
    // The second turn carries the conversation so far.
    run(&mut c, "ok", "again", "o-2");
    let (_, body) = fake.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "say hello"},
            {"role": "assistant", "content": "Hello from the model"},
            {"role": "user", "content": "again"},
        ])
    );
    let models = c.call("models.list", None);
    assert!(models["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "fake-1" && m["provider"] == "openai"));
}

#[test]
fn provider_failures_become_chat_errors() {
    let fake = Fake::start();
    let server = server(&fake);
    let mut c = Client::connect(&server);
    // As the original: only rate limits, timeouts, context overflow and refusals have an
    // errorKind; a server error is described by errorDetail.failoverReason alone.
    for (agent, kind, failover, status) in [
        ("limit", Some("rate_limit"), "rate_limit", Some(429)),
        ("boom", None, "server_error", Some(500)),
        ("ctx", Some("context_length"), "context_overflow", Some(400)),
        ("hang", Some("timeout"), "timeout", None),
    ] {
        let run_id = format!("f-{agent}");
        let e = run(&mut c, agent, "hi", &run_id);
        assert_eq!(e["state"], "error", "{agent}: {e}");
        assert_eq!(e["errorKind"].as_str(), kind, "{agent}: {e}");
        assert_eq!(e["errorDetail"]["failoverReason"], failover, "{agent}: {e}");
        assert!(e["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(e["errorDetail"]["provider"], "openai");
        assert_eq!(e["errorDetail"]["model"], "fake-1");
        if let Some(s) = status {
            assert_eq!(e["errorDetail"]["httpStatus"], s, "{agent}: {e}");
        }
        let w = c.call(
            "agent.wait",
            Some(json!({"runId": run_id, "timeoutMs": 2000})),
        );
        assert_eq!(w["status"], "error", "{w}");
        // A retry of the failed send answers ok:false with the run's payload and the error.
        let retry = c.request(
            "chat.send",
            Some(json!({"sessionKey": format!("agent:{agent}:main"), "message": "hi", "idempotencyKey": run_id})),
        );
        assert_eq!(retry["ok"], false, "{retry}");
        assert_eq!(retry["payload"]["status"], "error", "{retry}");
        assert_eq!(retry["error"]["code"], "UNAVAILABLE", "{retry}");
        // The user turn is kept; no reply row.
        let h = c.call(
            "chat.history",
            Some(json!({"sessionKey": format!("agent:{agent}:main")})),
        );
        assert_eq!(h["totalMessages"], 1, "{h}");
    }
    // `agent` reports the failure as its final, ok:false with UNAVAILABLE.
    let id = c.send_request(
        "agent",
        Some(json!({"message": "x", "idempotencyKey": "a-f", "agentId": "boom"})),
    );
    let accepted = c.wait_response(&id, LONG);
    assert_eq!(accepted["payload"]["status"], "accepted");
    let fin = c.wait_response(&id, LONG);
    assert_eq!(fin["ok"], false, "{fin}");
    assert_eq!(fin["error"]["code"], "UNAVAILABLE");
}
