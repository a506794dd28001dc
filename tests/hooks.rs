//! The original's inbound webhooks (`hooks.*`) on the gateway port:
//!
//! * the request pipeline as the original answers it: `?token=`, methods, both token headers,
//!   the empty sub-path, the body limit, bad JSON, and 20 wrong tokens locking an address (a
//!   right token still passes);
//! * `/wake` queues a system event (visible in `status`), `/agent` runs a turn in a `hook:`
//!   session with the untrusted-content boundary, waited for or not, idempotent across shards;
//! * mappings: a templated wake, an agent run delivered to a channel, the Gmail preset's
//!   fan-out, 204 for nothing to do;
//! * `timeoutSeconds` aborts a slow run and queues `Hook <name>: timed out`;
//! * hostile bodies get precise answers and the gateway serves on.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    sync::mpsc,
    thread,
    time::Duration,
};

use common::{http_raw, Client, HttpResponse, Server};
use serde_json::{json, Value};

const TOKEN: &str = "hook-secret-1";

fn hook(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    http_raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn authed(addr: SocketAddr, path: &str, body: &str) -> HttpResponse {
    hook(addr, path, &[("X-OpenClaw-Token", TOKEN)], body)
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

fn history(c: &mut Client, key: &str) -> Vec<Value> {
    let h = c.call(
        "chat.history",
        Some(json!({"sessionKey": key, "limit": 50})),
    );
    h["messages"].as_array().cloned().unwrap_or_default()
}

fn text_of(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        c => c[0]["text"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Waits until the session holds `n` messages (the echo agent's reply is written after the
/// run is admitted).
fn wait_messages(c: &mut Client, key: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let m = history(c, key);
        if m.len() >= n {
            return m;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("{key} never held {n} messages: {:?}", history(c, key));
}

fn queued_events(c: &mut Client) -> Vec<String> {
    let s = c.call("status", None);
    s["queuedSystemEvents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_request_pipeline_answers_as_the_original() {
    // Off by default: the path is nobody's.
    let off = Server::start();
    let r = authed(off.addr, "/hooks/wake", r#"{"text":"x"}"#);
    assert_eq!(r.status, 404, "{r:?}");
    drop(off);

    let config = format!(r#"{{hooks: {{enabled: true, token: "{TOKEN}", path: "in/"}}}}"#);
    let server = Server::opts().config(&config).shards(2).start();
    let a = server.addr;
    // The base path is normalised; the default one is not served.
    assert_eq!(authed(a, "/hooks/wake", r#"{"text":"x"}"#).status, 404);
    let r = hook(a, "/in/wake?token=abc", &[], "{}");
    assert_eq!(r.status, 400);
    assert_eq!(r.body, "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).");
    let r = http_raw(
        a,
        "GET /in/wake HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_str()), (405, "Method Not Allowed"));
    assert!(r.head.contains("allow: post"), "{}", r.head);
    let r = hook(a, "/in/wake", &[], r#"{"text":"x"}"#);
    assert_eq!((r.status, r.body.as_str()), (401, "Unauthorized"));
    assert!(r.head.contains("content-type: text/plain; charset=utf-8"));
    let r = hook(
        a,
        "/in/wake",
        &[("Authorization", "Bearer wrong")],
        r#"{"text":"x"}"#,
    );
    assert_eq!(r.status, 401);
    // Both token headers work; the bearer wins when both are sent.
    let r = hook(
        a,
        "/in/wake",
        &[("Authorization", &format!("bearer {TOKEN}"))],
        r#"{"text":"one"}"#,
    );
    assert_eq!(
        json_of(&r),
        json!({"ok": true, "mode": "now", "eventOutcome": "queued"})
    );
    let r = hook(
        a,
        "/in/wake",
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("X-OpenClaw-Token", "nope"),
        ],
        r#"{"text":"one"}"#,
    );
    assert_eq!(json_of(&r)["eventOutcome"], "coalesced");
    // The base itself (after auth), an empty body, the limit, bad JSON.
    let r = authed(a, "/in", "{}");
    assert_eq!((r.status, r.body.as_str()), (404, "Not Found"));
    let r = authed(a, "/in/wake", "");
    assert_eq!(
        (r.status, json_of(&r)),
        (400, json!({"ok": false, "error": "text required"}))
    );
    let r = http_raw(a, &format!("POST /in/wake HTTP/1.1\r\nHost: x\r\nX-OpenClaw-Token: {TOKEN}\r\nContent-Length: 262145\r\n\r\n"));
    assert_eq!(
        (r.status, json_of(&r)),
        (413, json!({"ok": false, "error": "payload too large"}))
    );
    let big = format!(r#"{{"text":"{}"}}"#, "y".repeat(262_100));
    assert_eq!(authed(a, "/in/wake", &big).status, 200);
    let r = authed(a, "/in/wake", r#"{"text": "#);
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["ok"], false);
    let mut c = Client::connect(&server);
    let events = queued_events(&mut c);
    assert!(events.iter().any(|e| e == "one"), "{events:?}");

    // 20 wrong tokens from one address lock it (loopback too) for a minute; the right
    // token still passes. Spread over both shards by separate connections: each shard tells
    // the other of its failures over the bus, so a request may overtake the latest one (at
    // most one per other shard).
    let mut failures = 0;
    let r = loop {
        let r = hook(a, "/in/wake", &[("X-OpenClaw-Token", "bad")], "{}");
        if r.status != 401 {
            break r;
        }
        failures += 1;
        assert!(failures <= 21, "not locked after {failures} failures");
    };
    assert!(failures >= 20, "locked after {failures} failures");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.body, "Too Many Requests");
    assert!(r.head.contains("retry-after: "), "{}", r.head);
    let r = authed(a, "/in/wake", r#"{"text":"still me"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    // The right token cleared the address.
    assert_eq!(
        hook(a, "/in/wake", &[("X-OpenClaw-Token", "bad")], "{}").status,
        401
    );
    assert!(c.call("health", None).is_object());
}

#[test]
fn agent_hooks_run_turns_in_hook_sessions() {
    let config = format!(
        r#"{{hooks: {{enabled: true, token: "{TOKEN}", allowRequestSessionKey: true,
            allowedSessionKeyPrefixes: ["hook:", "agent:"]}},
           ringgate: {{agents: {{main: {{runtime: "echo", chunkDelayMs: 5, chunkChars: 400}}, ops: {{runtime: "echo"}}}}}}}}"#
    );
    let server = Server::opts().config(&config).shards(2).start();
    let a = server.addr;
    let mut c = Client::connect(&server);
    // Waited for: the completion says how the run ended.
    let r = authed(
        a,
        "/hooks/agent",
        r#"{"message":"build 42 failed","name":"CI","waitForCompletion":true}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let body = json_of(&r);
    assert_eq!(
        body["completion"],
        json!({"status": "ok", "replyDisposition": "visible"})
    );
    let run = body["runId"].as_str().unwrap().to_owned();
    // Its isolated session holds the wrapped message and the reply.
    let key = format!("agent:main:hook:{run}");
    let msgs = wait_messages(&mut c, &key, 2);
    let prompt = text_of(&msgs[0]);
    assert!(
        prompt.contains(
            "SECURITY NOTICE: The following content is from an EXTERNAL, UNTRUSTED source"
        ),
        "{prompt}"
    );
    assert!(
        prompt.contains(
            "Source: Webhook\nTask: CI\n---\nbuild 42 failed\n<<<END_EXTERNAL_UNTRUSTED_CONTENT"
        ),
        "{prompt}"
    );
    assert!(text_of(&msgs[1]).starts_with("echo: "), "{:?}", msgs[1]);

    // Not waited for: answered at admission; the run goes on.
    let r = authed(
        a,
        "/hooks/agent",
        r#"{"message":"m2","agentId":"ops","sessionKey":"hook:ops-inbox"}"#,
    );
    let body = json_of(&r);
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    wait_messages(&mut c, "agent:ops:hook:ops-inbox", 2);

    // An idempotency key makes a retry the same run, whichever shard it lands on.
    let first = json_of(&hook(
        a,
        "/hooks/agent",
        &[("X-OpenClaw-Token", TOKEN), ("Idempotency-Key", "evt-1")],
        r#"{"message":"once"}"#,
    ));
    let mut again = Vec::new();
    for _ in 0..4 {
        let r = json_of(&hook(
            a,
            "/hooks/agent",
            &[("X-OpenClaw-Token", TOKEN), ("Idempotency-Key", "evt-1")],
            r#"{"message":"once"}"#,
        ));
        again.push(r["runId"].clone());
    }
    assert!(
        again.iter().all(|id| *id == first["runId"]),
        "{first} vs {again:?}"
    );
    let key = format!("agent:main:hook:{}", first["runId"].as_str().unwrap());
    let msgs = wait_messages(&mut c, &key, 2);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        history(&mut c, &key).len(),
        msgs.len(),
        "a replay ran the turn again"
    );

    // Runs into one session wait for each other instead of interrupting (the original's
    // per-session hook queue), whichever shard admits them.
    let posts: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                let body = format!(r#"{{"message":"turn {i}","sessionKey":"hook:shared","waitForCompletion":true}}"#);
                json_of(&authed(a, "/hooks/agent", &body))
            })
        })
        .collect();
    for p in posts {
        let r = p.join().unwrap();
        assert_eq!(r["completion"]["status"], "ok", "{r}");
    }
    let shared = history(&mut c, "agent:main:hook:shared");
    assert_eq!(shared.len(), 8, "{shared:?}");

    // The original's refusals.
    for (body, status, error) in [
        (json!({}), 400, "message required"),
        (
            json!({"message": "m", "agentId": "nobody"}),
            400,
            "unknown agentId \"nobody\"",
        ),
        (
            json!({"message": "m", "sessionKey": "other:1"}),
            400,
            "sessionKey must start with one of: hook:, agent:",
        ),
        (
            json!({"message": "m", "waitForCompletion": 1}),
            400,
            "waitForCompletion must be boolean",
        ),
        (
            json!({"message": "m", "sessionMode": "persistent"}),
            400,
            "sessionKey is required when sessionMode is persistent",
        ),
        (
            json!({"message": "m", "channel": "carrier-pigeon", "to": "x"}),
            400,
            "channel must be last",
        ),
    ] {
        let r = authed(a, "/hooks/agent", &body.to_string());
        assert_eq!(r.status, status, "{body}: {r:?}");
        let got = json_of(&r);
        assert_eq!(got["ok"], false);
        assert!(
            got["error"].as_str().unwrap().starts_with(error),
            "{body}: {got}"
        );
    }
}

/// A receiver for the webhook channel: the JSON body of each POST.
fn receiver() -> (String, mpsc::Receiver<Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/out", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

#[test]
fn mappings_wake_run_deliver_and_fan_out() {
    let (url, delivered) = receiver();
    let config = format!(
        r#"{{hooks: {{enabled: true, token: "{TOKEN}", presets: ["gmail"], allowRequestSessionKey: true,
            allowedSessionKeyPrefixes: ["hook:"],
            mappings: [
              {{match: {{path: "github", source: "gh"}}, action: "wake", textTemplate: "push to {{{{repository.name}}}} by {{{{headers.x-user}}}}"}},
              {{match: {{path: "deploy"}}, name: "Deploy", messageTemplate: "deployed {{{{env}}}}", channel: "webhook", to: "{{{{owner}}}}",
                sessionKey: "hook:deploys", allowUnsafeExternalContent: true}},
            ]}},
           ringgate: {{channels: {{webhook: {{url: "{url}", secret: "0123456789abcdef-hooks"}}}}}}}}"#
    );
    let server = Server::opts().config(&config).shards(2).start();
    let a = server.addr;
    let mut c = Client::connect(&server);

    let r = hook(
        a,
        "/hooks/github",
        &[("X-OpenClaw-Token", TOKEN), ("X-User", "ann")],
        r#"{"source":"gh","repository":{"name":"ringgate"}}"#,
    );
    assert_eq!(
        json_of(&r),
        json!({"ok": true, "mode": "now", "eventOutcome": "queued"})
    );
    assert!(queued_events(&mut c)
        .iter()
        .any(|e| e == "push to ringgate by ann"));
    // `match.source` decides too.
    assert_eq!(authed(a, "/hooks/github", r#"{"source":"gl"}"#).status, 404);

    // A mapped agent run: its reply is delivered to the channel recipient the template names.
    let r = authed(a, "/hooks/deploy", r#"{"env":"prod","owner":"ops-team"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let out = delivered
        .recv_timeout(Duration::from_secs(10))
        .expect("the reply was delivered");
    assert_eq!(out["to"], "ops-team");
    assert_eq!(out["text"], "echo: deployed prod");
    let msgs = wait_messages(&mut c, "agent:main:hook:deploys", 2);
    assert_eq!(text_of(&msgs[0]), "deployed prod");

    // The Gmail preset: one run per message, each in its own session.
    let mail = json!({"messages": [
        {"id": "m1", "from": "a@example.com", "subject": "Hi", "snippet": "s1", "body": "b1"},
        {"id": "m2", "from": "b@example.com", "subject": "Yo", "snippet": "s2", "body": "b2"},
    ]});
    let r = authed(a, "/hooks/gmail", &mail.to_string());
    let body = json_of(&r);
    assert_eq!(
        (r.status, body["dispatched"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    assert_eq!(body["runIds"].as_array().unwrap().len(), 2);
    let msgs = wait_messages(&mut c, "agent:main:hook:gmail:m2", 2);
    assert!(
        text_of(&msgs[0]).contains(
            "Source: Email\nTask: Gmail\n---\nNew email from b@example.com\nSubject: Yo\ns2\nb2"
        ),
        "{:?}",
        msgs[0]
    );
    // The same mail again is the same runs (a fan-out derives its own idempotency).
    let again = json_of(&authed(a, "/hooks/gmail", &mail.to_string()));
    assert_eq!(again["runIds"], body["runIds"]);
    // Nothing to do.
    let r = authed(a, "/hooks/gmail", r#"{"messages":[]}"#);
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let r = authed(a, "/hooks/unmapped", "{}");
    assert_eq!((r.status, r.body.as_str()), (404, "Not Found"));
}

#[test]
fn a_run_past_its_timeout_is_aborted_and_reported() {
    let config = format!(
        r#"{{hooks: {{enabled: true, token: "{TOKEN}"}},
           ringgate: {{agents: {{main: {{runtime: "echo", chunkDelayMs: 400, chunkChars: 1}}}}}}}}"#
    );
    let server = Server::opts().config(&config).start();
    let r = authed(
        server.addr,
        "/hooks/agent",
        r#"{"message":"a slow one","name":"Slow","timeoutSeconds":1,"waitForCompletion":true}"#,
    );
    let body = json_of(&r);
    assert_eq!(body["completion"]["status"], "error", "{body}");
    let mut c = Client::connect(&server);
    let events = queued_events(&mut c);
    assert!(
        events.iter().any(|e| e == "Hook Slow: timed out"),
        "{events:?}"
    );
    let key = format!("agent:main:hook:{}", body["runId"].as_str().unwrap());
    let h = c.call("chat.history", Some(json!({"sessionKey": key})));
    assert!(
        h["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{h}"
    );
}

#[test]
fn hostile_hook_requests_get_precise_answers() {
    let config = format!(
        r#"{{hooks: {{enabled: true, token: "{TOKEN}", allowedSessionKeyPrefixes: ["hook:"], allowRequestSessionKey: true,
            mappings: [{{match: {{path: "t"}}, messageTemplate: "{{{{a.b.c.d}}}}{{{{__proto__}}}}{{{{x[99999999999999999999]}}}}", sessionKey: "hook:{{{{k}}}}"}}]}}}}"#
    );
    let server = Server::opts().config(&config).start();
    let a = server.addr;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    for (path, body, status) in [
        ("/hooks/agent", deep.as_str(), 400),
        ("/hooks/agent", "[1,2,3]", 400),
        ("/hooks/agent", r#""just a string""#, 400),
        (
            "/hooks/agent",
            r#"{"message":"m","timeoutSeconds":1e308}"#,
            200,
        ),
        (
            "/hooks/agent",
            r#"{"message":"m","timeoutSeconds":-5}"#,
            200,
        ),
        ("/hooks/agent", r#"{"message":{"nested":true}}"#, 400),
        (
            "/hooks/agent",
            r#"{"message":"m","agentId":"../../etc"}"#,
            400,
        ),
        (
            "/hooks/agent",
            &format!(
                r#"{{"message":"m","sessionKey":"hook:{}"}}"#,
                "k".repeat(600)
            ),
            400,
        ),
        ("/hooks/wake", r#"{"text":"\u0000\ud800"}"#, 400),
        ("/hooks/t", r#"{"k":"x","a":{"b":{"c":{"d":"deep"}}}}"#, 200),
        ("/hooks/t", r#"{"k":"x"}"#, 400),
        ("/hooks/%2e%2e/agent", "{}", 404),
    ] {
        let r = authed(a, path, body);
        assert_eq!(
            r.status,
            status,
            "{path} {}: {r:?}",
            &body[..body.len().min(60)]
        );
    }
    // Chunked bodies are refused with a reason; the gateway serves on.
    let r = http_raw(a, &format!("POST /hooks/wake HTTP/1.1\r\nHost: x\r\nX-OpenClaw-Token: {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    assert_eq!(r.status, 411, "{r:?}");
    let mut c = Client::connect(&server);
    assert!(c.call("health", None).is_object());
}
