//! `config.*` over the wire: redacted snapshot, `baseHash` concurrency, live reload on every
//! shard, restart-only keys reported, secret rotation closing old-secret connections, SIGHUP.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

/// The secret lives in the file (no `--token` flag pins it).
const SECRET: &str = "file-secret-1";

fn file_config() -> String {
    format!(
        r#"{{ // operator notes stay
        gateway: {{ auth: {{ mode: "token", token: "{SECRET}" }} }} }}"#
    )
}

fn params(token: &str) -> Value {
    let mut p = connect_params();
    p["auth"]["token"] = json!(token);
    p
}

fn patch(c: &mut Client, raw: &str, base: &Value) -> Value {
    c.call("config.patch", Some(json!({"raw": raw, "baseHash": base})))
}

#[test]
fn writes_need_the_current_hash_and_reload_every_shard() {
    let server = Server::opts()
        .without_token_flag()
        .config(&file_config())
        .start();
    let mut a = Client::connect_to_shard(&server, &params(SECRET), 0);
    let mut b = Client::connect_to_shard(&server, &params(SECRET), 1);

    let got = a.call("config.get", Some(json!({})));
    assert_eq!(got["exists"], true);
    assert_eq!(got["valid"], true);
    assert_eq!(
        got["parsed"]["gateway"]["auth"]["token"],
        "__OPENCLAW_REDACTED__"
    );
    let raw = got["raw"].as_str().unwrap();
    assert!(
        raw.contains("operator notes stay") && !raw.contains(SECRET),
        "{raw}"
    );
    assert_eq!(
        got["config"]["ringgate"]["limits"]["maxPayload"],
        25 * 1024 * 1024
    );
    let hash = got["hash"].clone();
    assert_eq!(got["appliedConfigHash"], hash);
    assert_eq!(a.hello["snapshot"]["appliedConfigHash"], hash);

    let raw_patch = "{ringgate: {limits: {maxPayload: 70000}}}";
    let e = a.call_err("config.patch", Some(json!({"raw": raw_patch})));
    assert_eq!(e["code"], "INVALID_REQUEST");
    assert_eq!(
        e["message"],
        "config base hash required; re-run config.get and retry"
    );
    let e = a.call_err(
        "config.patch",
        Some(json!({"raw": raw_patch, "baseHash": "sha256:old"})),
    );
    assert_eq!(
        e["message"],
        "config changed since last load; re-run config.get and retry"
    );
    let e = a.call_err(
        "config.set",
        Some(json!({"raw": "{gateway: {prot: 1}}", "baseHash": hash})),
    );
    assert_eq!(
        e["message"],
        "invalid config: unknown config key `gateway.prot`"
    );
    let e = a.call_err(
        "config.patch",
        Some(json!({"raw": "[1]", "baseHash": hash})),
    );
    assert_eq!(e["message"], "config.patch raw must be an object");

    let r = patch(&mut a, raw_patch, &hash);
    assert_eq!(r["ok"], true);
    assert_eq!(r["changedPaths"], json!(["ringgate.limits.maxPayload"]));
    assert_eq!(r["requiresRestart"], false);
    assert_ne!(r["hash"], hash);
    // Every shard announces the change and applies it: new connections on either shard are
    // told the new limit, and a frame over it is refused there.
    for c in [&mut a, &mut b] {
        let ev = c.wait_event_where("config.changed", WAIT, |e| {
            e["payload"]["hash"] == r["hash"]
        });
        assert!(ev["payload"]["path"]
            .as_str()
            .unwrap()
            .ends_with("config.json5"));
    }
    for shard in 0..2 {
        let mut c = Client::connect_to_shard(&server, &params(SECRET), shard);
        assert_eq!(c.hello["policy"]["maxPayload"], 70000, "shard {shard}");
        assert_eq!(c.hello["snapshot"]["appliedConfigHash"], r["hash"]);
        c.send_text(&format!(
            r#"{{"type":"req","id":"big","method":"health","params":{{"pad":"{}"}}}}"#,
            "x".repeat(80_000)
        ));
        assert_eq!(c.expect_close(WAIT).0, 1009, "shard {shard}");
    }
    // The comment survives only in files ringgate did not rewrite; the value is on disk.
    let got = a.call("config.get", Some(json!({})));
    assert_eq!(got["hash"], r["hash"]);
    assert_eq!(got["parsed"]["ringgate"]["limits"]["maxPayload"], 70000);
    assert_eq!(got["appliedConfigHash"], r["hash"]);

    // Writing the same value again changes nothing.
    let n = patch(&mut a, raw_patch, &r["hash"]);
    assert_eq!(n["noop"], true);

    // A start-only key is written, reported as needing a restart, and not applied.
    let r2 = patch(&mut a, "{gateway: {port: 1}}", &r["hash"]);
    assert_eq!(r2["requiresRestart"], true);
    assert_eq!(r2["restartPaths"], json!(["gateway.port"]));
    let c = Client::connect_to_shard(&server, &params(SECRET), 1);
    assert_eq!(c.hello["policy"]["maxPayload"], 70000);

    // Schema answers.
    let s = a.call("config.schema", Some(json!({})));
    assert_eq!(s["schema"]["properties"]["gateway"]["type"], "object");
    assert_eq!(s["uiHints"]["gateway.auth.token"]["sensitive"], true);
    let l = a.call(
        "config.schema.lookup",
        Some(json!({"path": "ringgate.limits"})),
    );
    assert!(l["children"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["key"] == "maxPayload"));
    let e = a.call_err("config.schema.lookup", Some(json!({"path": "nope.x"})));
    assert_eq!(e["message"], "config schema path not found");
}

#[test]
fn rotating_the_shared_secret_closes_old_secret_connections() {
    let server = Server::opts()
        .without_token_flag()
        .config(&file_config())
        .start();
    let mut a = Client::connect_to_shard(&server, &params(SECRET), 0);
    let mut b = Client::connect_to_shard(&server, &params(SECRET), 1);
    let hash = a.call("config.get", Some(json!({})))["hash"].clone();
    // The writer gets its answer, then every old-secret connection is closed 4001.
    let r = patch(
        &mut a,
        r#"{gateway: {auth: {token: "rotated-secret"}}}"#,
        &hash,
    );
    assert_eq!(r["changedPaths"], json!(["gateway.auth.token"]));
    assert_eq!(
        r["config"]["gateway"]["auth"]["token"],
        "__OPENCLAW_REDACTED__"
    );
    for c in [&mut a, &mut b] {
        let (code, reason) = c.expect_close(WAIT);
        assert_eq!((code, reason.as_str()), (4001, "gateway auth changed"));
    }
    // The old secret is refused on every shard; the new one is accepted.
    for _ in 0..4 {
        let (mut ws, _) = open(&server);
        let first = send_connect(&mut ws, &params(SECRET));
        let err = expect_rejection(&mut ws, first, 1008, "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)");
        assert_eq!(err["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    let p = params("rotated-secret");
    for shard in 0..2 {
        let mut c = Client::connect_to_shard(&server, &p, shard);
        c.call("health", None);
    }
}

#[test]
fn sighup_reloads_an_edited_file_and_keeps_a_broken_one_out() {
    let server = Server::opts()
        .without_token_flag()
        .config(&file_config())
        .start();
    let mut a = Client::connect_with(&server, &params(SECRET));
    let path = a.call("config.get", Some(json!({})))["path"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        &path,
        format!(r#"{{gateway: {{auth: {{token: "{SECRET}"}}}}, ringgate: {{limits: {{maxPayload: 90000}}}}}}"#),
    )
    .unwrap();
    unsafe { libc_kill(server.pid(), 1) };
    a.wait_event_where("config.changed", WAIT, |_| true);
    let c = Client::connect_with(&server, &params(SECRET));
    assert_eq!(c.hello["policy"]["maxPayload"], 90000);
    // A broken edit is refused; the running config stays.
    std::fs::write(&path, "{gateway: {prot: 1}}").unwrap();
    unsafe { libc_kill(server.pid(), 1) };
    std::thread::sleep(Duration::from_millis(500));
    let c = Client::connect_with(&server, &params(SECRET));
    assert_eq!(c.hello["policy"]["maxPayload"], 90000);
    let got = a.call("config.get", Some(json!({})));
    assert_eq!(got["valid"], false);
    assert!(
        got["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("gateway.prot"),
        "{got}"
    );
    assert!(
        server.stderr().contains("config reload refused"),
        "{}",
        server.stderr()
    );
    // A deleted file is not a request to fall back to the defaults either.
    std::fs::remove_file(&path).unwrap();
    unsafe { libc_kill(server.pid(), 1) };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.stderr().contains("is missing"),
        "{}",
        server.stderr()
    );
    let c = Client::connect_with(&server, &params(SECRET));
    assert_eq!(c.hello["policy"]["maxPayload"], 90000);
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// `chat.metadata.changed` follows a config change only when the chat page's model catalog
/// changed with it (a new agent model), on every shard — never for an unrelated edit.
#[test]
fn a_new_model_announces_chat_metadata_changed_and_other_edits_do_not() {
    let server = Server::opts()
        .without_token_flag()
        .config(&file_config())
        .start();
    let mut a = Client::connect_to_shard(&server, &params(SECRET), 0);
    let mut b = Client::connect_to_shard(&server, &params(SECRET), 1);
    assert!(a.hello["features"]["events"]
        .as_array()
        .unwrap()
        .contains(&json!("chat.metadata.changed")));
    let hash = a.call("config.get", Some(json!({})))["hash"].clone();
    let r = patch(&mut a, "{ringgate: {limits: {maxPayload: 70000}}}", &hash);
    a.wait_event_where("config.changed", WAIT, |e| {
        e["payload"]["hash"] == r["hash"]
    });
    // Both events are queued together: whatever came with config.changed is read by now.
    a.call("health", None);
    assert!(
        !a.events
            .iter()
            .any(|e| e["event"] == "chat.metadata.changed"),
        "{:?}",
        a.events
    );
    let r = patch(
        &mut a,
        "{ringgate: {agents: {main: {runtime: 'echo'}, ops: {runtime: 'openai', baseUrl: 'http://127.0.0.1:9/v1', model: 'gpt-x'}}}}",
        &r["hash"],
    );
    assert_eq!(r["ok"], true, "{r}");
    for c in [&mut a, &mut b] {
        let ev = c.wait_event("chat.metadata.changed", WAIT);
        assert_eq!(ev["payload"], json!({}));
        assert!(ev["seq"].is_u64(), "{ev}");
    }
    let m = a.call("chat.metadata", Some(json!({})));
    assert!(
        m["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-x"),
        "{m}"
    );
}
