//! Real agents: an `openclaw-worker` agent's turns run in the original's agent loop
//! (`openclaw worker`, the pinned npm package) on ringgate's worker channel, with a local
//! fake of the OpenAI streaming API as the model: it asks for the `read` tool first and
//! answers with what the tool returned second.
//!
//! * the tool-call turn end to end (events, transcript, what the model was sent);
//! * abort mid-turn, and a worker killed mid-turn;
//! * the channel itself, driven by this test as the worker with the credential ringgate
//!   minted (the launcher is a script that hands over its envelope): the closed method list,
//!   commit compare-and-swap and replay, live-event resync, model approval, fencing;
//! * forged credentials and operators on the worker path;
//! * the real TUI showing the worker's reply.
//!
//! The tests that need the real worker skip without `OPENCLAW_CLIENT_DIR` unless
//! `RINGGATE_REQUIRE_CONFORMANCE=1` (as `make test` sets).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{
    expect_close,
    fake_model::{provider, Provider, FILE_TEXT},
    open_at, recv, send_json, Client, Incoming, Server, TempDir, Ws,
};
use serde_json::{json, Value};

const TURN: Duration = Duration::from_secs(60);
const MODEL: &str = "mock-model";

// ---------------------------------------------------------------------------------------------
// The gateway with a worker agent
// ---------------------------------------------------------------------------------------------

/// The pinned OpenClaw package, or `None` when the test should be skipped.
fn openclaw() -> Option<PathBuf> {
    let required = std::env::var("RINGGATE_REQUIRE_CONFORMANCE").is_ok_and(|v| v == "1");
    match std::env::var_os("OPENCLAW_CLIENT_DIR").filter(|d| !d.is_empty()) {
        Some(d) => {
            let bin = PathBuf::from(d).join("bin/openclaw");
            assert!(
                bin.is_file(),
                "no {} (run make openclaw-client)",
                bin.display()
            );
            Some(bin)
        }
        None if required => {
            panic!("RINGGATE_REQUIRE_CONFORMANCE=1 but OPENCLAW_CLIENT_DIR is not set")
        }
        None => {
            println!("skipping: OPENCLAW_CLIENT_DIR not set (run make test)");
            None
        }
    }
}

/// A workspace with the file the model asks for and an `AGENTS.md` the worker reads.
fn workspace() -> TempDir {
    let ws = TempDir::new("worker-ws");
    std::fs::write(ws.path().join("hello.txt"), format!("{FILE_TEXT}\n")).unwrap();
    std::fs::write(
        ws.path().join("AGENTS.md"),
        "AGENTS-MARKER-5: keep answers short.\n",
    )
    .unwrap();
    ws
}

fn start(command: &Path, p: &Provider, ws: &TempDir) -> Server {
    start_with(command, p, ws, 1)
}

/// With `prewarm` processes started ahead of the next turn (they are children of the gateway
/// too, waiting for an envelope).
fn start_with(command: &Path, p: &Provider, ws: &TempDir, prewarm: u64) -> Server {
    let config = json!({"ringgate": {"agents": {"main": {
        "runtime": "openclaw-worker",
        "baseUrl": format!("http://127.0.0.1:{}/v1", p.port),
        "model": MODEL,
        "workspace": ws.path(),
        "command": command,
        "systemPrompt": "GATEWAY-PROMPT-3",
        "startTimeoutMs": 60000,
        "prewarm": prewarm,
    }}}});
    Server::opts().config(&config.to_string()).start()
}

/// An operator that receives tool events.
fn operator(server: &Server) -> Client {
    let mut p = common::connect_params();
    p["caps"] = json!(["tool-events"]);
    Client::connect_with(server, &p)
}

fn send(c: &mut Client, message: &str, key: &str) -> String {
    let r = c.call(
        "chat.send",
        Some(json!({"sessionKey": "agent:main:main", "message": message, "idempotencyKey": key})),
    );
    assert_eq!(r["status"], "started", "{r}");
    r["runId"].as_str().unwrap().to_owned()
}

/// Waits for the run's terminal `chat` event (final, aborted or error).
fn terminal(c: &mut Client, run: &str) -> Value {
    c.wait_event_where("chat", TURN, |e| {
        let p = &e["payload"];
        p["runId"] == run
            && ["final", "aborted", "error"].contains(&p["state"].as_str().unwrap_or(""))
    })["payload"]
        .clone()
}

/// Child processes of the gateway (its workers).
fn children(server: &Server) -> Vec<i32> {
    let me = server.pid();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("PPid:"))
                        .and_then(|v| v.trim().parse::<i32>().ok())
                })
                == Some(me)
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Through the real worker
// ---------------------------------------------------------------------------------------------

#[test]
fn a_tool_call_turn_runs_through_the_real_worker() {
    let Some(oc) = openclaw() else { return };
    let p = provider();
    let ws = workspace();
    let server = start(&oc, &p, &ws);
    let mut c = operator(&server);
    let run = send(&mut c, "Read hello.txt please", "w-tool-1");
    let fin = terminal(&mut c, &run);
    assert_eq!(fin["state"], "final", "{fin}\n{}", server.stderr());
    let text = fin["message"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(text, format!("The file says: {FILE_TEXT}"), "{fin}");
    assert!(
        fin["messageId"].is_string(),
        "the final names its entry: {fin}"
    );

    // The tool's lifecycle reached the tool-events client, in order, between start and end.
    let tools: Vec<&Value> = c
        .events
        .iter()
        .filter(|e| e["event"] == "agent" && e["payload"]["runId"] == run.as_str())
        .filter(|e| e["payload"]["stream"] == "tool")
        .collect();
    let phases: Vec<&str> = tools
        .iter()
        .map(|e| e["payload"]["data"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["start", "result"], "{tools:#?}");
    assert_eq!(tools[0]["payload"]["data"]["name"], "read");
    assert_eq!(tools[0]["payload"]["data"]["args"]["path"], "hello.txt");
    assert!(tools[1]["payload"]["data"]["result"]
        .to_string()
        .contains(FILE_TEXT));

    // The transcript holds the call and its result, as the original's does.
    let h = c.call(
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    );
    let msgs = h["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "toolResult", "assistant"],
        "{h:#}"
    );
    assert_eq!(
        msgs[0]["content"], "Read hello.txt please",
        "the prompt is stored once"
    );
    assert_eq!(msgs[1]["content"][0]["type"], "toolCall");
    assert_eq!(msgs[1]["stopReason"], "toolUse");
    assert_eq!(msgs[2]["toolName"], "read");
    assert!(msgs[2]["content"].to_string().contains(FILE_TEXT));

    // The model got the original's agent: its tools, the gateway's prompt and the
    // workspace's AGENTS.md; and the tool's result on the second call.
    let bodies = p.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "two model calls");
    let tools: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"read"), "{tools:?}");
    assert!(
        !tools.contains(&"exec"),
        "exec is not allowed by default: {tools:?}"
    );
    let system = bodies[0]["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("GATEWAY-PROMPT-3"), "{system}");
    assert!(system.contains("AGENTS-MARKER-5"), "{system}");
    assert_eq!(bodies[0]["model"], MODEL);
    let last = bodies[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "tool");
    assert!(last["content"].as_str().unwrap().contains(FILE_TEXT));

    // A second turn hands the worker the conversation so far.
    let run2 = send(&mut c, "And again?", "w-tool-2");
    assert_eq!(terminal(&mut c, &run2)["state"], "final");
    let bodies = p.bodies.lock().unwrap().clone();
    let roles: Vec<&str> = bodies[2]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"],
        "{:#}",
        bodies[2]
    );
    // Both turns' workers exit (the prewarmed spare stays, waiting for the next turn).
    wait_until("the workers to exit", Duration::from_secs(30), || {
        server.stderr().matches("agent worker exited").count() == 2
    });
    assert_eq!(
        server.stderr().matches("prewarmed=true").count(),
        1,
        "the second turn took the spare"
    );
    assert!(children(&server).len() <= 1, "only the spare is left");
}

/// A worker started while a browser holds a kept-alive HTTP connection must not inherit that
/// socket: the gateway's idle close has to reach the browser. (A worker that inherited it kept
/// the connection open after the gateway closed it; the browser's next request went into a
/// socket nobody read, and the dashboard's reload hung.)
#[test]
fn a_worker_never_holds_a_clients_socket_open() {
    use std::io::{Read, Write};
    let Some(oc) = openclaw() else { return };
    let p = provider();
    let ws = workspace();
    // No spare: the worker is forked for the turn, while the connection below is open.
    let server = start_with(&oc, &p, &ws, 0);
    let mut kept = std::net::TcpStream::connect(server.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"ok\"") {
        let n = kept.read(&mut buf).expect("the probe's answer");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&got).contains("keep-alive"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut c = operator(&server);
    // A slow turn: the worker is still running when the gateway closes the idle connection.
    let run = send(&mut c, "slow: read hello.txt", "w-fd");
    wait_until("the model call", TURN, || {
        !p.bodies.lock().unwrap().is_empty()
    });
    // The gateway closes an idle kept-alive connection after 5 s: the client must see it.
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    match kept.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected bytes on an idle connection: {n}"),
        Err(e) => panic!(
            "the idle connection was not closed after {:?} ({e}): a worker holds the socket",
            started.elapsed()
        ),
    }
    c.call("chat.abort", Some(json!({"sessionKey": "agent:main:main"})));
    assert_eq!(terminal(&mut c, &run)["state"], "aborted");
}

#[test]
fn abort_mid_turn_stops_the_worker_and_a_killed_worker_fails_its_turn() {
    let Some(oc) = openclaw() else { return };
    let p = provider();
    let ws = workspace();
    // No spare, so the gateway's children are exactly the running turn's worker.
    let server = start_with(&oc, &p, &ws, 0);
    let mut c = operator(&server);

    let run = send(&mut c, "slow: read hello.txt", "w-abort");
    wait_until("the model call", TURN, || {
        !p.bodies.lock().unwrap().is_empty()
    });
    let r = c.call("chat.abort", Some(json!({"sessionKey": "agent:main:main"})));
    assert_eq!(r["aborted"], true, "{r}");
    assert_eq!(terminal(&mut c, &run)["state"], "aborted");
    wait_until(
        "the aborted worker to exit",
        Duration::from_secs(15),
        || children(&server).is_empty(),
    );

    let run = send(&mut c, "slow: read it again", "w-kill");
    wait_until("the second model call", TURN, || {
        p.bodies.lock().unwrap().len() >= 2
    });
    for pid in children(&server) {
        // SAFETY: a child of the gateway under test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let err = terminal(&mut c, &run);
    assert_eq!(err["state"], "error", "{err}");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("agent worker exited"),
        "{err}"
    );
    // The gateway is unharmed and the session usable.
    let h = c.call(
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    );
    assert!(h["messages"].as_array().unwrap().len() >= 2, "{h}");
}

#[test]
fn the_real_tui_shows_the_workers_reply() {
    let Some(oc) = openclaw() else { return };
    let Some(tmux) = which("tmux") else {
        println!("skipping: tmux is not on PATH");
        return;
    };
    let p = provider();
    let ws = workspace();
    let server = start(&oc, &p, &ws);
    let dir = TempDir::new("worker-tui");
    let sock = dir.path().join("tmux.sock");
    let tm = |args: &[&str]| {
        Command::new(&tmux)
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .expect("tmux")
    };
    let cmd = format!(
        "env -u OPENCLAW_GATEWAY_URL -u OPENCLAW_GATEWAY_TOKEN OPENCLAW_CLIENT_HOME={} NO_COLOR=1 {} tui --url {} --token {}; sleep 60",
        dir.path().display(),
        oc.display(),
        server.url(),
        common::TOKEN
    );
    let out = tm(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "160",
        "-y",
        "45",
        &cmd,
    ]);
    assert!(out.status.success(), "{out:?}");
    let screen =
        || String::from_utf8_lossy(&tm(&["capture-pane", "-p", "-t", "tui"]).stdout).into_owned();
    wait_until("the TUI to connect", Duration::from_secs(30), || {
        screen().contains("connected")
    });
    tm(&["send-keys", "-t", "tui", "Read hello.txt please", "Enter"]);
    let deadline = Instant::now() + TURN;
    let mut last = String::new();
    while Instant::now() < deadline {
        last = screen();
        if last.contains(&format!("The file says: {FILE_TEXT}")) {
            break;
        }
        thread::sleep(Duration::from_millis(300));
    }
    let _ = tm(&["kill-server"]);
    assert!(
        last.contains(&format!("The file says: {FILE_TEXT}")),
        "the worker's reply on the TUI\n--- screen ---\n{last}"
    );
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// The channel, with this test as the worker
// ---------------------------------------------------------------------------------------------

/// A launcher that hands its envelope to the test instead of running a worker.
fn capturing_launcher(dir: &TempDir) -> (PathBuf, PathBuf) {
    let out = dir.path().join("envelope.json");
    let script = dir.path().join("fake-openclaw");
    std::fs::write(
        &script,
        format!(
            // Per process ($$): the prewarmed spare runs this too, waiting on its stdin.
            "#!/bin/sh\ncat > {0}.$$ && mv {0}.$$ {0}\nsleep 60\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, out)
}

fn worker_connect(envelope: &Value, credential: &str) -> Value {
    let a = &envelope["admission"];
    json!({"type": "req", "id": "c1", "method": "connect", "params": {
    "minProtocol": 4, "maxProtocol": 4,
    "client": {"id": "openclaw-worker", "version": "2026.9.6", "platform": "linux", "mode": "worker"},
    "role": "worker",
    "admission": {
        "environmentId": a["environmentId"], "credential": credential,
        "ownerEpoch": a["ownerEpoch"], "rpcSetVersion": 1, "handshake": a["handshake"],
        "sessionId": a["sessionId"], "runId": envelope["assignment"]["runId"],
    }}})
}

fn read_json(ws: &mut Ws) -> Value {
    match recv(ws, Duration::from_secs(10)) {
        Incoming::Json(v) => v,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Sends a worker request and returns its response (inference events that arrive first are
/// collected into `events`).
fn rpc(ws: &mut Ws, id: &str, method: &str, params: Value, events: &mut Vec<Value>) -> Value {
    send_json(
        ws,
        &json!({"type": "req", "id": id, "method": method, "params": params}),
    );
    loop {
        let v = read_json(ws);
        if v["type"] == "res" && v["id"] == id {
            return v;
        }
        events.push(v);
    }
}

#[test]
fn the_worker_channel_admits_only_its_launch_and_keeps_the_transcript_consistent() {
    let p = provider();
    let ws_dir = workspace();
    let dir = TempDir::new("worker-fake");
    let (launcher, envelope_path) = capturing_launcher(&dir);
    let server = start(&launcher, &p, &ws_dir);
    let mut op = operator(&server);
    let run = send(&mut op, "Read hello.txt please", "w-chan");
    wait_until("the envelope", Duration::from_secs(10), || {
        envelope_path.exists()
    });
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(&envelope_path).unwrap()).unwrap();
    let a = &envelope["assignment"];
    assert_eq!(envelope["version"], 4);
    assert_eq!(a["runId"], run.as_str());
    assert_eq!(a["prompt"], "Read hello.txt please");
    assert_eq!(a["suppressPromptTranscript"], true);
    assert_eq!(a["workspaceDir"], ws_dir.path().to_str().unwrap());
    assert_eq!(
        a["toolAuthority"]["allowedToolNames"],
        json!(["read", "write", "edit", "apply_patch"])
    );
    assert_eq!(a["systemPrompt"], "GATEWAY-PROMPT-3");
    let url = envelope["connectionEndpoint"]["url"].as_str().unwrap();
    assert!(url.ends_with("/__openclaw__/worker"), "{url}");
    let leaf = a["transcript"]["baseLeafId"].as_str().unwrap().to_owned();
    let credential = envelope["admission"]["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    let epoch = envelope["admission"]["ownerEpoch"].as_u64().unwrap();

    // Admission: the exact hello the worker checks.
    let mut w = open_at(server.addr, "/__openclaw__/worker").unwrap();
    send_json(&mut w, &worker_connect(&envelope, &credential));
    let hello = read_json(&mut w);
    assert_eq!(hello["ok"], true, "{hello}");
    let keys: Vec<&str> = hello["payload"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "type",
            "environmentId",
            "sessionId",
            "ownerEpoch",
            "rpcSetVersion",
            "protocolFeatures",
            "credentialExpiresAtMs",
            "policy"
        ]
    );
    assert_eq!(hello["payload"]["ownerEpoch"], epoch);
    let mut ev = Vec::new();

    // A worker is not an operator.
    for m in ["chat.send", "health", "config.get", "worker.sessions.spawn"] {
        let r = rpc(&mut w, "m", m, json!({}), &mut ev);
        assert_eq!(
            r["error"]["details"]["reason"], "method-not-allowed",
            "{m}: {r}"
        );
    }
    let r = rpc(
        &mut w,
        "h1",
        "worker.heartbeat",
        json!({"sentAtMs": 1, "status": "ready"}),
        &mut ev,
    );
    assert_eq!(r["payload"]["status"], "ok", "{r}");
    assert_eq!(r["payload"]["ownerEpoch"], epoch);

    // Commits: compare-and-swap on the last entry; a replayed seq gets the same answer.
    let assistant = json!({"role": "assistant", "content": [{"type": "text", "text": "partial"}],
        "api": "openai-completions", "provider": "openai", "model": MODEL,
        "usage": {"input": 3, "output": 2}, "stopReason": "stop", "timestamp": 1});
    let commit = |seq: u64, base: &str| json!({"runEpoch": epoch, "seq": seq, "baseLeafId": base, "messages": [assistant.clone()]});
    let r = rpc(
        &mut w,
        "k0",
        "worker.transcript.commit",
        commit(1, "not-the-leaf"),
        &mut ev,
    );
    assert_eq!(r["error"]["details"]["reason"], "stale-base-leaf", "{r}");
    let r = rpc(
        &mut w,
        "k1",
        "worker.transcript.commit",
        commit(1, &leaf),
        &mut ev,
    );
    assert_eq!(r["ok"], true, "{r}");
    let entry = r["payload"]["newLeafId"].clone();
    assert_eq!(r["payload"]["entryIds"], json!([entry]));
    let again = rpc(
        &mut w,
        "k1b",
        "worker.transcript.commit",
        commit(1, &leaf),
        &mut ev,
    );
    assert_eq!(again["payload"], r["payload"], "replay answers the same");
    let r = rpc(
        &mut w,
        "k3",
        "worker.transcript.commit",
        commit(3, entry.as_str().unwrap()),
        &mut ev,
    );
    assert_eq!(r["error"]["details"]["reason"], "invalid-batch", "{r}");
    let h = op.call(
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    );
    assert_eq!(
        h["messages"].as_array().unwrap().len(),
        2,
        "written once: {h}"
    );

    // Live events: in order, a gap asks for a resync from the acked point.
    let live = |seq: u64, event: Value| json!({"runEpoch": epoch, "lastAckedSeq": seq - 1, "seq": seq, "runId": run, "event": event});
    let r = rpc(
        &mut w,
        "l2",
        "worker.live-event",
        live(
            2,
            json!({"kind": "lifecycle", "payload": {"phase": "start"}}),
        ),
        &mut ev,
    );
    assert_eq!(
        r["error"]["details"],
        json!({"reason": "resync-required", "ackedSeq": 0, "expectedSeq": 1}),
        "{r}"
    );
    let r = rpc(
        &mut w,
        "l1",
        "worker.live-event",
        live(
            1,
            json!({"kind": "assistant", "payload": {"text": "Look", "delta": "Look", "itemId": "a1"}}),
        ),
        &mut ev,
    );
    assert_eq!(r["payload"]["ackedSeq"], 1, "{r}");
    // (The committed message's text went out first; the live text replaces it.)
    let d = op.wait_event_where("chat", TURN, |e| {
        e["payload"]["runId"] == run.as_str()
            && e["payload"]["state"] == "delta"
            && e["payload"]["message"]["content"][0]["text"] == "Look"
    });
    assert_eq!(d["payload"]["deltaText"], "Look", "{d}");

    // Inference: only the agent's model; the provider's stream comes back as events and a
    // terminal carrying the whole message.
    let infer = |model: &str| {
        json!({"runEpoch": epoch, "sessionId": envelope["admission"]["sessionId"],
        "runId": run, "turnId": "t:1", "modelRef": {"provider": "openai", "model": model},
        "context": {"systemPrompt": "S", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}], "timestamp": 1}],
                    "tools": [{"name": "read", "description": "Read", "parameters": {"type": "object"}}]},
        "options": {}})
    };
    let r = rpc(
        &mut w,
        "i0",
        "worker.inference.start",
        infer("other-model"),
        &mut ev,
    );
    assert_eq!(r["error"]["details"]["reason"], "model-not-approved", "{r}");
    let r = rpc(
        &mut w,
        "i1",
        "worker.inference.start",
        infer(MODEL),
        &mut ev,
    );
    assert_eq!(r["payload"]["status"], "accepted", "{r}");
    let terminal_frame = loop {
        let v = read_json(&mut w);
        if v["event"] == "worker.inference.terminal" {
            break v;
        }
        ev.push(v);
    };
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| e["payload"]["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start", "toolcall_start", "toolcall_delta", "toolcall_end"],
        "{ev:#?}"
    );
    let seqs: Vec<u64> = ev
        .iter()
        .map(|e| e["payload"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let t = &terminal_frame["payload"];
    assert_eq!(t["seq"], 5);
    assert_eq!(t["runEpoch"], epoch);
    assert_eq!(t["outcome"]["type"], "done");
    assert_eq!(t["outcome"]["message"]["stopReason"], "toolUse");
    assert_eq!(
        t["outcome"]["message"]["content"][0]["arguments"],
        json!({"path": "hello.txt"})
    );
    let r = rpc(
        &mut w,
        "i2",
        "worker.inference.start",
        infer(MODEL),
        &mut ev,
    );
    assert_eq!(
        r["payload"]["status"], "replayed",
        "a reconnecting worker re-reads: {r}"
    );

    // Hostile values in every field a worker supplies: precise errors, nothing written, the
    // gateway unharmed.
    let bad_seqs = [
        json!(-1),
        json!(1.5),
        json!("2"),
        json!(u64::MAX),
        json!(1e300),
        Value::Null,
    ];
    for seq in bad_seqs {
        let mut p = commit(2, entry.as_str().unwrap());
        p["seq"] = seq.clone();
        let r = rpc(&mut w, "b1", "worker.transcript.commit", p, &mut ev);
        assert_eq!(
            r["error"]["details"]["reason"], "invalid-batch",
            "seq {seq}: {r}"
        );
        let mut l = live(2, json!({"kind": "tool", "payload": {}}));
        l["seq"] = seq.clone();
        let r = rpc(&mut w, "b2", "worker.live-event", l, &mut ev);
        assert_eq!(r["ok"], false, "live seq {seq}: {r}");
    }
    for messages in [
        json!([]),
        json!("x"),
        json!([1, 2]),
        json!(vec![assistant.clone(); 65]),
    ] {
        let mut p = commit(2, entry.as_str().unwrap());
        p["messages"] = messages;
        let r = rpc(&mut w, "b3", "worker.transcript.commit", p, &mut ev);
        assert_eq!(r["error"]["details"]["reason"], "invalid-batch", "{r}");
    }
    let mut p = commit(2, entry.as_str().unwrap());
    p["baseLeafId"] = json!(42);
    let r = rpc(&mut w, "b4", "worker.transcript.commit", p, &mut ev);
    assert_eq!(r["error"]["details"]["reason"], "invalid-batch", "{r}");
    let mut p = infer(MODEL);
    p["turnId"] = json!("t".repeat(300));
    let r = rpc(&mut w, "b5", "worker.inference.start", p, &mut ev);
    assert_eq!(r["error"]["details"]["reason"], "invalid-context", "{r}");
    let mut p = infer(MODEL);
    p["context"]["messages"] = json!({"role": "user"});
    let r = rpc(&mut w, "b6", "worker.inference.start", p, &mut ev);
    assert_eq!(r["error"]["details"]["reason"], "invalid-context", "{r}");
    for params in [json!(null), json!([1]), json!("x")] {
        send_json(
            &mut w,
            &json!({"type": "req", "id": "b7", "method": "worker.heartbeat", "params": params}),
        );
        let r = read_json(&mut w);
        assert_eq!(r["error"]["details"]["reason"], "invalid-frame", "{r}");
    }
    let h = op.call(
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    );
    assert_eq!(
        h["messages"].as_array().unwrap().len(),
        2,
        "nothing written: {h}"
    );

    // The finishing event ends the run; the worker is then fenced.
    let r = rpc(
        &mut w,
        "l3",
        "worker.live-event",
        live(
            2,
            json!({"kind": "lifecycle", "payload": {"phase": "finishing", "stopReason": "stop"}}),
        ),
        &mut ev,
    );
    assert_eq!(r["payload"]["ackedSeq"], 2, "{r}");
    let fin = terminal(&mut op, &run);
    assert_eq!(fin["state"], "final", "{fin}");
    assert_eq!(
        fin["messageId"], entry,
        "the final names the worker's last entry"
    );
    let r = rpc(
        &mut w,
        "h2",
        "worker.heartbeat",
        json!({"sentAtMs": 2, "status": "ready"}),
        &mut ev,
    );
    assert_eq!(
        r["error"]["details"]["reason"], "owner-epoch-mismatch",
        "{r}"
    );
    let r = rpc(
        &mut w,
        "k9",
        "worker.transcript.commit",
        commit(2, entry.as_str().unwrap()),
        &mut ev,
    );
    assert_eq!(r["error"]["details"]["reason"], "epoch-mismatch", "{r}");
}

#[test]
fn forged_credentials_and_operators_are_refused_on_the_worker_path() {
    let p = provider();
    let ws_dir = workspace();
    let dir = TempDir::new("worker-forged");
    let (launcher, envelope_path) = capturing_launcher(&dir);
    let server = start(&launcher, &p, &ws_dir);
    let mut op = operator(&server);
    send(&mut op, "hello", "w-forged");
    wait_until("the envelope", Duration::from_secs(10), || {
        envelope_path.exists()
    });
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(&envelope_path).unwrap()).unwrap();
    let real = envelope["admission"]["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    // A credential of the right shape but not minted here, one with a flipped signature
    // byte, and the real one presented for another epoch.
    let mut flipped = real.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut other_epoch = worker_connect(&envelope, &real);
    other_epoch["params"]["admission"]["ownerEpoch"] = json!(999);
    for (frame, reason) in [
        (
            worker_connect(&envelope, &"c".repeat(32)),
            "invalid-credential",
        ),
        (worker_connect(&envelope, &flipped), "invalid-credential"),
        (other_epoch, "environment-mismatch"),
    ] {
        let mut w = open_at(server.addr, "/__openclaw__/worker").unwrap();
        send_json(&mut w, &frame);
        let r = read_json(&mut w);
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["details"]["reason"], reason, "{r}");
        let (code, why) = expect_close(&mut w, Duration::from_secs(5));
        assert_eq!((code, why.as_str()), (1008, reason));
    }
    // An operator connect on the worker path is not a worker.
    let mut w = open_at(server.addr, "/__openclaw__/worker").unwrap();
    send_json(
        &mut w,
        &json!({"type": "req", "id": "c", "method": "connect", "params": common::connect_params()}),
    );
    let r = read_json(&mut w);
    assert_eq!(r["error"]["details"]["reason"], "invalid-handshake", "{r}");
    assert_eq!(expect_close(&mut w, Duration::from_secs(5)).0, 1008);
    // A worker connect on the operator path is refused as before.
    let (mut ws, _) = common::open(&server);
    send_json(&mut ws, &worker_connect(&envelope, &real));
    assert_eq!(
        expect_close(&mut ws, Duration::from_secs(5)),
        (1008, "invalid-handshake".into())
    );
    // The gateway is unharmed.
    op.call("health", None);
}
