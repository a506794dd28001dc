//! The original's HTTP APIs on the gateway port: the OpenAI-compatible chat completions and
//! models (opt-in, under `gateway.http.endpoints`), `/tools/invoke` and the session routes.
//!
//! * the official `openai` npm client (pinned, `make test` installs it) pointed at ringgate:
//!   the model list, a streamed completion from the echo agent, one without streaming, and a
//!   wrong key;
//! * the original's answers byte for byte where it has them: disabled endpoints, methods,
//!   auth, scopes, tools, sessions;
//! * hostile requests: oversize and malformed bodies, forwarded headers, chunked bodies,
//!   a caller that goes away mid-stream (its run is aborted).

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use common::{http_raw, Client, Server, TOKEN};
use serde_json::{json, Value};

const ENABLED: &str = r#"{gateway: {http: {endpoints: {chatCompletions: {enabled: true}, responses: {enabled: true}}}}}"#;

fn post(path: &str, auth: Option<&str>, body: &str) -> String {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn get(path: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
}

/// The pinned `openai` package and a Node new enough for it, or why the test cannot run.
fn openai_client() -> Result<(PathBuf, String), String> {
    let dir = std::env::var_os("RINGGATE_OPENAI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/openai-client"));
    if !dir.join("node_modules/openai/package.json").is_file() {
        return Err(format!(
            "no openai package in {} (run make test)",
            dir.display()
        ));
    }
    // The package needs Node 22+: the OpenClaw client's bundled Node has it.
    let node = std::env::var_os("OPENCLAW_CLIENT_DIR")
        .map(|d| PathBuf::from(d).join("bin/node"))
        .filter(|n| n.is_file())
        .map(|n| n.display().to_string())
        .unwrap_or_else(|| "node".into());
    Ok((dir, node))
}

#[test]
fn the_official_openai_client_streams_a_completion_from_the_echo_agent() {
    let (dir, node) = match openai_client() {
        Ok(c) => c,
        Err(why) if std::env::var("RINGGATE_REQUIRE_CONFORMANCE").is_ok_and(|v| v == "1") => {
            panic!("RINGGATE_REQUIRE_CONFORMANCE=1 but {why}")
        }
        Err(why) => {
            println!("skipping: {why}");
            return;
        }
    };
    let server = Server::opts().config(ENABLED).start();
    // ESM resolves `openai` from the script's directory.
    let script = dir.join("client.mjs");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai/client.mjs"),
        &script,
    )
    .unwrap();
    let base = format!("http://{}/v1", server.addr);
    let out = Command::new(&node)
        .arg(&script)
        .arg(&base)
        .arg(TOKEN)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "no report ({e}); stdout:\n{stdout}\nstderr:\n{}\nserver:\n{}",
                String::from_utf8_lossy(&out.stderr),
                server.stderr()
            )
        });
    let fail =
        |what: &str| -> ! { panic!("{what}\nreport: {report:#}\nserver:\n{}", server.stderr()) };
    if !report["errors"].as_array().unwrap().is_empty() {
        fail("the client failed");
    }
    if report["models"] != json!(["openclaw", "openclaw/default", "openclaw/main"]) {
        fail("the model list");
    }
    if report["model"]["id"] != "openclaw/main" || report["model"]["owned_by"] != "openclaw" {
        fail("the model detail");
    }
    if report["streamed"] != "echo: hello from the openai client" || report["finish"] != "stop" {
        fail("the streamed completion");
    }
    // Role chunk, at least one content chunk, finish chunk, usage chunk.
    if report["chunks"].as_u64().unwrap_or(0) < 4 || report["usage"]["total_tokens"].is_null() {
        fail("the stream's chunks");
    }
    let whole = &report["whole"];
    let id = whole["id"].as_str().unwrap_or_default();
    if !id.starts_with("chatcmpl_")
        || whole["object"] != "chat.completion"
        || whole["model"] != "openclaw"
        || whole["choices"][0]["message"]["content"] != "echo: be brief\n\nonce more"
        || whole["choices"][0]["finish_reason"] != "stop"
    {
        fail("the completion without streaming");
    }
    // Responses: the resource, and the streamed events in the original's order.
    let r = &report["response"];
    if r["object"] != "response"
        || r["status"] != "completed"
        || !r["id"].as_str().unwrap_or_default().starts_with("resp_")
        || r["output"][0]["content"][0]["text"] != "echo: answer plainly\n\nwhat do responses say"
        || r["output"][0]["phase"] != "final_answer"
    {
        fail("the response resource");
    }
    if report["responseStreamed"] != "echo: stream a response"
        || report["responseCompleted"]["output"][0]["content"][0]["text"]
            != "echo: stream a response"
    {
        fail("the streamed response");
    }
    let kinds: Vec<&str> = report["responseEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|k| *k != "response.output_text.delta")
        .collect();
    if kinds
        != [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    {
        fail("the response events");
    }
    let wrong = &report["wrongKey"];
    if wrong["status"] != 401
        || wrong["name"] != "AuthenticationError"
        || wrong["error"] != json!({"message": "Unauthorized", "type": "unauthorized"})
    {
        fail("a wrong key is an AuthenticationError (401)");
    }
    // The `user` named a session the turn went into, readable over HTTP and over RPC.
    let h = http_raw(
        server.addr,
        &get(
            "/sessions/agent%3Amain%3Aopenai-user%3Asdk-user/history",
            Some(TOKEN),
        ),
    );
    assert_eq!(h.status, 200, "{h:?}");
    let body: Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(body["sessionKey"], "agent:main:openai-user:sdk-user");
    let texts = body["messages"].to_string();
    assert!(
        texts.contains("hello from the openai client") && texts.contains("echo: hello"),
        "{body}"
    );
    assert_eq!(body["items"], body["messages"]);
    let mut c = Client::connect(&server);
    let rpc = c.call(
        "chat.history",
        Some(json!({"sessionKey": "agent:main:openai-user:sdk-user"})),
    );
    assert_eq!(rpc["messages"].as_array().unwrap().len(), 2, "{rpc}");
}

#[test]
fn the_originals_answers_for_disabled_endpoints_auth_tools_and_sessions() {
    let server = Server::start();
    let a = server.addr;
    // Off by default: plain 404, with or without credentials.
    for req in [
        post("/v1/chat/completions", Some(TOKEN), "{}"),
        get("/v1/models", None),
        post("/v1/responses", Some(TOKEN), "{}"),
    ] {
        let r = http_raw(a, &req);
        assert_eq!((r.status, r.body.as_str()), (404, "Not Found"), "{req}");
    }
    // /tools/invoke is always on: the method first, then auth, then the body.
    let r = http_raw(a, &get("/tools/invoke", Some(TOKEN)));
    assert_eq!(r.status, 405);
    assert!(r.head.contains("allow: post"), "{}", r.head);
    let r = http_raw(a, &post("/tools/invoke", None, "{}"));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        r#"{"error":{"message":"Unauthorized","type":"unauthorized"}}"#
    );
    let r = http_raw(a, &post("/tools/invoke", Some("wrong"), "{}"));
    assert_eq!(r.status, 401);
    let r = http_raw(a, &post("/tools/invoke", Some(TOKEN), "{}"));
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            r#"{"ok":false,"error":{"type":"invalid_request","message":"tools.invoke requires name"}}"#
        )
    );
    let r = http_raw(
        a,
        &post("/tools/invoke", Some(TOKEN), r#"{"tool":"exec","args":{}}"#),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            r#"{"ok":false,"error":{"type":"not_found","message":"Tool not available: exec"}}"#
        )
    );
    let r = http_raw(
        a,
        &post(
            "/tools/invoke",
            Some(TOKEN),
            r#"{"name":"x","agentId":"nope"}"#,
        ),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains(r#"Unknown agent id \"nope\""#),
        "{}",
        r.body
    );
    assert!(
        r.head.contains("x-content-type-options: nosniff"),
        "{}",
        r.head
    );
    // Sessions: a bad key before the method; unknown sessions; kill needs a trusted operator,
    // which a shared secret is not (the original's build answers it so).
    let r = http_raw(a, &get("/sessions/%ff/kill", Some(TOKEN)));
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            r#"{"error":{"message":"invalid session key","type":"invalid_request_error"}}"#
        )
    );
    let r = http_raw(a, &get("/sessions/nope/history", Some(TOKEN)));
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            r#"{"ok":false,"error":{"type":"not_found","message":"Session not found: nope"}}"#
        )
    );
    let r = http_raw(a, &get("/sessions/main/history?limit=-1", Some(TOKEN)));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http_raw(a, &post("/sessions/main/kill", Some(TOKEN), ""));
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            403,
            r#"{"ok":false,"error":{"type":"forbidden","message":"missing scope: operator.admin","details":{"code":"MISSING_SCOPE","missingScope":"operator.admin","requiredScopes":["operator.admin"]}}}"#
        )
    );
    // A turn over RPC, then its history over HTTP (short key form), paged.
    let mut c = Client::connect(&server);
    let run = c.call(
        "chat.send",
        Some(json!({"sessionKey": "main", "message": "paged", "idempotencyKey": "h1"})),
    );
    let run = run["runId"].as_str().unwrap().to_owned();
    c.wait_event_where("chat", Duration::from_secs(10), |e| {
        e["payload"]["runId"] == run.as_str() && e["payload"]["state"] == "final"
    });
    let r = http_raw(a, &get("/sessions/main/history?limit=1", Some(TOKEN)));
    assert_eq!(r.status, 200, "{}", r.body);
    let page: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(page["sessionKey"], "agent:main:main");
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["hasMore"], true);
    let next = page["nextCursor"].as_str().unwrap();
    let r = http_raw(
        a,
        &get(
            &format!("/sessions/main/history?limit=1&cursor={next}"),
            Some(TOKEN),
        ),
    );
    let older: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(older["messages"][0]["content"], "paged", "{older}");
}

#[test]
fn hostile_requests_get_precise_answers_and_the_gateway_serves_on() {
    let server = Server::opts().config(ENABLED).start();
    let a = server.addr;
    let completion = |body: &str| http_raw(a, &post("/v1/chat/completions", Some(TOKEN), body));
    // A declared body over 20 MiB is refused before it is read.
    let r = http_raw(
        a,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
            30 * 1024 * 1024
        ),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            413,
            r#"{"error":{"message":"Payload too large","type":"invalid_request_error"}}"#
        )
    );
    // Unauthenticated, the body is never read: 401 whatever it declares.
    let r = http_raw(
        a,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
    );
    assert_eq!(r.status, 401);
    let r = completion("{not json");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("invalid_request_error"), "{}", r.body);
    for (body, message) in [
        ("{}", "Missing user message in `messages`."),
        ("", "Missing user message in `messages`."),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":5}"#,
            "`temperature` must be between 0 and 2.",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"model":"gpt-4"}"#,
            "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"model":"openclaw/nope"}"#,
            "Unknown agent 'nope'.",
        ),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":-7}"#,
            "max_tokens: Too small: expected number to be >0",
        ),
        (
            r#"{"messages":"x"}"#,
            "messages: Invalid input: expected array, received string",
        ),
    ] {
        let r = completion(body);
        let want = json!({"error": {"message": message, "type": "invalid_request_error"}});
        assert_eq!(
            (r.status, r.body.clone()),
            (400, want.to_string()),
            "{body}"
        );
    }
    // A reserved session namespace is refused.
    let r = http_raw(
        a,
        &post(
            "/v1/chat/completions",
            Some(TOKEN),
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
        )
        .replace(
            "Host: x\r\n",
            "Host: x\r\nX-OpenClaw-Session-Key: agent:main:subagent:1\r\n",
        ),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Forwarded headers from a peer that is not a configured proxy.
    let r = http_raw(
        a,
        &get("/v1/models", Some(TOKEN))
            .replace("Host: x\r\n", "Host: x\r\nX-Forwarded-For: 1.2.3.4\r\n"),
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("proxy_attribution_required"), "{}", r.body);
    // A chunked body is not read.
    let r = http_raw(
        a,
        &format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    );
    assert_eq!(r.status, 411, "{}", r.body);
    // Loopback is never locked out, however many wrong keys it sends.
    for _ in 0..12 {
        assert_eq!(http_raw(a, &get("/v1/models", Some("wrong"))).status, 401);
    }
    assert_eq!(http_raw(a, &get("/v1/models", Some(TOKEN))).status, 200);

    // The stream on the wire: chunked server-sent events ending in [DONE].
    let r = completion(r#"{"stream":true,"messages":[{"role":"user","content":"wire"}]}"#);
    assert_eq!(r.status, 200);
    assert!(
        r.head.contains("content-type: text/event-stream"),
        "{}",
        r.head
    );
    assert!(r.head.contains("transfer-encoding: chunked"), "{}", r.head);
    let events: Vec<Value> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(r.body.contains("data: [DONE]"), "{}", r.body);
    assert_eq!(
        events[0]["choices"][0]["delta"],
        json!({"role": "assistant"})
    );
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: wire");
    assert_eq!(
        events.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(events.iter().all(|e| e["id"] == events[0]["id"]));

    // HTTP/1.0 has no chunks: the stream comes unframed and the connection closes after it.
    let r = http_raw(
        a,
        &post(
            "/v1/chat/completions",
            Some(TOKEN),
            r#"{"stream":true,"messages":[{"role":"user","content":"old"}]}"#,
        )
        .replace("HTTP/1.1", "HTTP/1.0"),
    );
    assert_eq!(r.status, 200);
    assert!(!r.head.contains("transfer-encoding"), "{}", r.head);
    assert!(r.body.starts_with("data: {"), "{}", r.body);
    assert!(r.body.ends_with("data: [DONE]\n\n"), "{}", r.body);

    // Two requests on one kept-alive connection.
    let mut s = TcpStream::connect(a).unwrap();
    let one =
        format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    s.write_all(format!("{one}{one}").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.matches("\"object\":\"list\"").count() < 2 && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
    assert!(common::Client::connect(&server).call("health", None)["ok"] == true);
}

#[test]
fn a_caller_that_goes_away_mid_stream_aborts_its_run() {
    let config = r#"{gateway: {http: {endpoints: {chatCompletions: {enabled: true}}}},
        ringgate: {agents: {main: {runtime: "echo", chunkDelayMs: 400}}}}"#;
    let server = Server::opts().config(config).start();
    let mut watcher = Client::connect(&server);
    let body = r#"{"stream":true,"user":"leaver","messages":[{"role":"user","content":"a long message that streams in several slow chunks"}]}"#;
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(post("/v1/chat/completions", Some(TOKEN), body).as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("\"content\"") {
        let n = s.read(&mut buf).expect("the stream starts");
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(s);
    let end = watcher.wait_event_where("chat", Duration::from_secs(30), |e| {
        let p = &e["payload"];
        p["sessionKey"] == "agent:main:openai-user:leaver"
            && ["final", "aborted", "error"].contains(&p["state"].as_str().unwrap_or(""))
    });
    assert_eq!(end["payload"]["state"], "aborted", "{end}");

    // Without streaming the caller's hang-up is noticed too (nothing is written until the end).
    let body = r#"{"user":"quitter","messages":[{"role":"user","content":"another long message that streams in several slow chunks"}]}"#;
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(post("/v1/chat/completions", Some(TOKEN), body).as_bytes())
        .unwrap();
    watcher.wait_event_where("chat", Duration::from_secs(10), |e| {
        e["payload"]["sessionKey"] == "agent:main:openai-user:quitter"
            && e["payload"]["state"] == "delta"
    });
    drop(s);
    let end = watcher.wait_event_where("chat", Duration::from_secs(30), |e| {
        let p = &e["payload"];
        p["sessionKey"] == "agent:main:openai-user:quitter"
            && ["final", "aborted", "error"].contains(&p["state"].as_str().unwrap_or(""))
    });
    assert_eq!(end["payload"]["state"], "aborted", "{end}");
}
