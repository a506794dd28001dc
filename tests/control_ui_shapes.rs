//! Replays every call the real Control UI made against the original gateway (captured in
//! `tests/vectors/control-ui-original.jsonl`: first load, every page, one chat turn) against
//! ringgate, and checks each answer has the original's shape: the original's top-level keys,
//! the keys of its nested objects and the keys of its rows must all be in ringgate's answer.
//! It compares shapes, not values — ringgate's data differs (no cloud providers, its own
//! config) — so a shape regression in any method the dashboard uses fails `make test`.
//!
//! Where ringgate truly lacks the feature behind a field, the field is listed in
//! [`NOT_IN_RINGGATE`] with the reason; nothing else may be missing.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use common::{add_device, open_with_headers, params_for, send_connect, Client, Incoming, Server};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/control-ui-original.jsonl");

/// Key paths ringgate leaves out on purpose, with why. A path is `method:key.key` (`[]` for
/// rows); a trailing `*` covers everything below.
const NOT_IN_RINGGATE: &[(&str, &str)] = &[
    ("chat.history:inFlightRun", "present only while a run is in flight, as on the original (the capture asked mid-run)"),
    ("chat.startup:messages[].__openclaw.transport", "ringgate does not record which client sent a message"),
    ("chat.startup:messages[].__openclaw.senderIdentity", "no user profiles (see identity below)"),
    ("chat.startup:messages[].__openclaw.senderProfileAvatarUrl", "no user profiles (see identity below)"),
    ("config.get:config.agents", "ringgate's config file is its own: agents live under `ringgate.agents`"),
    ("config.get:config.messages", "ringgate's config has no messaging section"),
    ("config.get:resolved.agents", "as config.agents"),
    ("config.get:runtimeConfig.agents", "as config.agents"),
    ("config.get:runtimeConfig.messages", "as config.messages"),
    ("config.get:sourceConfig.agents", "as config.agents"),
    ("chat.send:serverTiming.loadSessionMs", "ringgate loads no session file before the ack: the durable append is its one step (receivedToAckMs)"),
    ("exec.approvals.get:file.socket", "ringgate has no exec-approvals socket: approvals travel over the gateway protocol only"),
    ("plugin.surface.refresh:pluginSurfaceUrls.canvas", "ringgate hosts no canvas"),
    ("*identities[].identity", "no user profiles: an identity makes the UI fetch an avatar that does not exist"),
    ("*owner.identity", "as above"),
    ("*createdActor.identity", "as above"),
    ("*owner.actor.identity", "as above"),
    ("sessions.list:people", "people lists user profiles; ringgate has one operator and no profiles"),
    ("sessions.list:peopleIncomplete", "as people"),
    ("sessions.list:peopleSessionCount", "as people"),
    ("sessions.patch:entry.*", "the original's session-store bookkeeping (compaction, delivery, restart recovery, skills snapshots) has no counterpart; the row fields the UI reads are compared through sessions.list/describe"),
    ("status:shutdownBudget", "the original's write-custody shutdown budget; ringgate drains on SIGTERM without one"),
    ("status:tasks", "ringgate runs no background tasks (subagents, ACP, CLI)"),
    ("status:taskAudit", "as tasks"),
    ("status:workerPools", "the original's Node worker pools; ringgate's threads are reported in eventLoop.cpuBreakdown"),
    ("system.info:nodeVersion", "ringgate is not a Node process"),
    ("*recent[].systemSent", "the original's flag for a session whose system prompt was sent; ringgate's runtimes keep no such state"),
    ("*recent[].abortedLastRun", "the sessions summary holds counts and rows, not run outcomes (sessions.list rows carry the last run's status)"),
    ("system.info:defaultAgentUtilityModel", "ringgate has no utility model"),
    ("system.info:processMemory.externalBytes", "a Node heap figure (optional in the original's schema)"),
    ("system.info:processMemory.arrayBuffersBytes", "a Node heap figure (optional in the original's schema)"),
    ("status:processMemory.externalBytes", "a Node heap figure (optional in the original's schema)"),
    ("status:processMemory.arrayBuffersBytes", "a Node heap figure (optional in the original's schema)"),
    ("*presence[].user", "no user profiles (see identity)"),
    ("*presence[].lastActivityAt", "ringgate does not track when a client was last active, only when it connected (onlineSince)"),
    ("system-presence:[].user", "no user profiles (see identity)"),
    ("system-presence:[].lastActivityAt", "as above"),
    ("chat.startup:messages[].customType", "ringgate records no custom transcript entries (the original's model-change notes)"),
    ("chat.startup:messages[].display", "as customType"),
    ("device.pair.list:paired[].lastSeenReason", "ringgate records when a device was last seen, not why"),
    ("device.pair.list:paired[].tokens[].rotatedAtMs", "present once the token was rotated, as on the original (the capture's UI had rotated it)"),
    ("device.pair.list:paired[].tokens[].lastUsedAtMs", "present once the token was used to connect, as on the original"),
    ("system-presence:[].ip", "ringgate does not probe the host's network addresses for its own entry"),
    ("connect:auth.recoveryScope", "ringgate has no device-recovery scopes"),
    ("connect:auth.recoveryMigrationAllowed", "as recoveryScope"),
    ("connect:snapshot.presence[].ip", "as system-presence"),
    ("connect:snapshot.updateSchedule.install.kind", "as update.status"),
    ("connect:pluginSurfaceUrls.canvas", "ringgate hosts no canvas"),
    ("update.status:schedule.install.kind", "ringgate is not installed by the OpenClaw updater: the kind is unknown, which the original reports by leaving it out"),
];

/// Object keys that are data (channel ids, provider ids, plugin ids …), not shape: the keys
/// of these objects are not compared, only that the object is there.
const DATA_KEYED: &[&str] = &[];

/// One UI call and the original's answer.
struct Call {
    phase: String,
    method: String,
    params: Option<Value>,
    /// `None` when the capture truncated the answer.
    answer: Option<Value>,
}

fn captured() -> (Vec<Call>, Value) {
    let mut pending: BTreeMap<(u64, String), (String, String, Option<Value>)> = BTreeMap::new();
    let mut calls = Vec::new();
    let mut hello = Value::Null;
    for line in VECTORS.lines() {
        let f: Value = serde_json::from_str(line).expect("vector line");
        let conn = f["conn"].as_u64().unwrap_or(0);
        let phase = f["phase"].as_str().unwrap_or_default().to_owned();
        let Some(data) = f["data"].as_str() else {
            continue;
        };
        let frame: Option<Value> = serde_json::from_str(data).ok();
        match (f["dir"].as_str(), frame) {
            (Some("c2s"), Some(m)) if m["type"] == "req" => {
                pending.insert(
                    (conn, m["id"].as_str().unwrap_or_default().to_owned()),
                    (
                        phase,
                        m["method"].as_str().unwrap_or_default().to_owned(),
                        m.get("params").cloned(),
                    ),
                );
            }
            (Some("s2c"), frame) => {
                // A truncated answer still names its id near the start.
                let id = frame
                    .as_ref()
                    .and_then(|m| m["id"].as_str().map(str::to_owned))
                    .or_else(|| {
                        let rest = data.split("\"id\":\"").nth(1)?;
                        Some(rest.split('"').next()?.to_owned())
                    });
                let Some(id) = id else { continue };
                let Some((phase, method, params)) = pending.remove(&(conn, id)) else {
                    continue;
                };
                let answer = frame
                    .filter(|m| m["ok"] == true)
                    .map(|m| m["payload"].clone());
                if method == "connect" {
                    if let Some(a) = answer {
                        hello = a;
                    }
                    continue;
                }
                calls.push(Call {
                    phase,
                    method,
                    params,
                    answer,
                });
            }
            _ => {}
        }
    }
    (calls, hello)
}

/// The payload of the first event of this name the original sent the UI.
fn captured_event(name: &str) -> Value {
    VECTORS
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|f| f["dir"] == "s2c")
        .filter_map(|f| serde_json::from_str::<Value>(f["data"].as_str()?).ok())
        .find(|m| m["type"] == "event" && m["event"] == name)
        .unwrap_or_else(|| panic!("the capture holds a {name} event"))
}

/// The UI's own connect params (caps and `modelCatalog`), from the capture.
fn captured_connect_params() -> Value {
    VECTORS
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|f| f["dir"] == "c2s")
        .filter_map(|f| serde_json::from_str::<Value>(f["data"].as_str()?).ok())
        .find(|m| m["method"] == "connect")
        .map(|m| m["params"].clone())
        .expect("the capture holds the UI's connect")
}

fn excused(path: &str) -> bool {
    NOT_IN_RINGGATE.iter().any(|(p, _)| {
        if let Some(suffix) = p.strip_prefix('*') {
            return path.ends_with(suffix);
        }
        match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *p,
        }
    })
}

/// Every key path of `orig` that `ours` lacks (rows compared by their first element).
fn gaps(orig: &Value, ours: &Value, path: &str, out: &mut BTreeSet<String>) {
    match (orig, ours) {
        (Value::Object(o), Value::Object(r)) => {
            let data_keyed = DATA_KEYED.iter().any(|d| path.ends_with(d));
            for (k, v) in o {
                if data_keyed {
                    break;
                }
                let p = if path.ends_with(':') {
                    format!("{path}{k}")
                } else {
                    format!("{path}.{k}")
                };
                match r.get(k) {
                    None => {
                        out.insert(p);
                    }
                    Some(mine) => gaps(v, mine, &p, out),
                }
            }
        }
        // Rows may differ in kind (the gateway's own presence entry and a client's): the keys
        // of all rows together are compared.
        (Value::Array(o), Value::Array(r)) => {
            if let (Some(a), Some(b)) = (merged(o), merged(r)) {
                gaps(&a, &b, &format!("{path}[]"), out);
            }
        }
        // An object where ringgate has an array (or the reverse) is a shape error; so is a
        // structure where ringgate has null or a scalar (except the original's empty object).
        // Scalars on the original's side are values, not shapes.
        (Value::Object(_), Value::Array(_)) | (Value::Array(_), Value::Object(_)) => {
            out.insert(format!("{path} (object vs array)"));
        }
        (Value::Object(m), _) if m.is_empty() && ours.is_null() => {}
        (Value::Object(_) | Value::Array(_), _) => {
            out.insert(format!("{path} (is {})", kind(ours)));
        }
        _ => {}
    }
}

/// One row holding every key of the array's rows (the first value of each); the first row
/// when they are not objects; `None` when empty.
fn merged(rows: &[Value]) -> Option<Value> {
    let first = rows.first()?;
    if !first.is_object() {
        return Some(first.clone());
    }
    let mut m = serde_json::Map::new();
    for r in rows.iter().filter_map(Value::as_object) {
        for (k, v) in r {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(Value::Object(m))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn every_ui_call_answers_in_the_originals_shape() {
    let (calls, original_hello) = captured();
    assert!(
        calls.len() > 100,
        "the capture holds the whole session: {}",
        calls.len()
    );
    let server = Server::opts()
        .config("{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 0 } } } }")
        .start();
    let mut c = Client::connect(&server);
    // The original's main session already had a turn when the UI was opened.
    let ack = c.call(
        "chat.send",
        Some(serde_json::json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "seed"})),
    );
    assert_eq!(ack["status"], "started");
    let w = c.call(
        "agent.wait",
        Some(serde_json::json!({"runId": "seed", "timeoutMs": 10_000})),
    );
    assert_eq!(w["status"], "ok");
    // The session counts in health and status reach the shards within a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.call("health", None)["sessions"]["count"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "health never counted the session"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut problems = BTreeSet::new();
    // The hello-ok the Control UI gets.
    let origin = format!("http://127.0.0.1:{}", server.addr.port());
    let (mut ws, challenge) = open_with_headers(&server, &[("Origin", &origin)]);
    let mut p = params_for(
        "openclaw-control-ui",
        "webchat",
        &[
            "operator.admin",
            "operator.read",
            "operator.write",
            "operator.approvals",
            "operator.pairing",
        ],
    );
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let nonce = challenge["payload"]["nonce"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let signed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // The challenge offers what the original's does, so the UI asks for its model catalog
    // at connect, with the caps and scope it sent the original.
    let original_challenge = captured_event("connect.challenge");
    assert_eq!(
        challenge["payload"]["capabilities"], original_challenge["payload"]["capabilities"],
        "{challenge}"
    );
    let ui = captured_connect_params();
    p["client"]["timeZone"] = serde_json::json!("UTC");
    p["caps"] = ui["caps"].clone();
    p["modelCatalog"] = ui["modelCatalog"].clone();
    add_device(&mut p, &key, &nonce, signed_at);
    let Incoming::Json(hello) = send_connect(&mut ws, &p) else {
        panic!("no hello-ok for the Control UI")
    };
    assert_eq!(hello["ok"], true, "{hello}");
    let mut g = BTreeSet::new();
    gaps(&original_hello, &hello["payload"], "connect:", &mut g);
    problems.extend(g.into_iter().filter(|p| !excused(p)));
    // Right after hello-ok: the catalog, unsequenced, for the scope the UI asked.
    let Incoming::Json(snapshot) = common::recv(&mut ws, Duration::from_secs(5)) else {
        panic!("no models.snapshot after hello-ok")
    };
    assert_eq!(snapshot["event"], "models.snapshot", "{snapshot}");
    assert!(snapshot.get("seq").is_none(), "{snapshot}");
    assert_eq!(snapshot["payload"]["target"], ui["modelCatalog"]);
    assert_eq!(snapshot["payload"]["scope"], ui["modelCatalog"]);
    assert_eq!(
        snapshot["payload"]["catalog"]["models"][0]["provider"], "ringgate",
        "the echo agent's model is in the catalog: {snapshot}"
    );
    let mut g = BTreeSet::new();
    gaps(
        &captured_event("models.snapshot")["payload"],
        &snapshot["payload"],
        "models.snapshot:",
        &mut g,
    );
    problems.extend(g);
    // The UI stays connected, as in the capture (it is in the presence list).
    let _ui = ws;

    let mut compared = BTreeSet::new();
    let mut unverifiable = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for call in &calls {
        let key = format!(
            "{} {}",
            call.method,
            call.params.clone().unwrap_or(Value::Null)
        );
        if !seen.insert(key) {
            continue;
        }
        let mut params = call.params.clone();
        // A captured history cursor is the original's; ringgate answers a foreign cursor with
        // `{kind:"reset"}` (as the original does). Ask with ringgate's own cursor instead.
        if let Some(p) = params.as_mut().filter(|p| p.get("cursor").is_some()) {
            if call.method == "chat.history" {
                let fresh = c.call(
                    "chat.history",
                    Some(serde_json::json!({"sessionKey": p["sessionKey"]})),
                );
                p["cursor"] = fresh["deltaCursor"].clone();
            }
        }
        let res = c.request(&call.method, params);
        if res["ok"] != true {
            let msg = res["error"]["message"].as_str().unwrap_or_default();
            problems.insert(format!("{} ({}): error {msg}", call.method, call.phase));
            continue;
        }
        let Some(answer) = &call.answer else {
            unverifiable.insert(call.method.clone());
            continue;
        };
        compared.insert(call.method.clone());
        let mut g = BTreeSet::new();
        gaps(
            answer,
            &res["payload"],
            &format!("{}:", call.method),
            &mut g,
        );
        problems.extend(g.into_iter().filter(|p| !excused(p)));
    }

    eprintln!(
        "compared {} methods; answers truncated in the capture (ok-only): {:?}",
        compared.len(),
        unverifiable
    );
    assert!(
        problems.is_empty(),
        "{} shape gaps against the original:\n{}",
        problems.len(),
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Only the Control UI gets the pushed catalog, and only when it declares the cap: another
/// client asking the same gets nothing before the answer to its next request. An agent that is
/// not configured falls back to the default agent, as on the original.
#[test]
fn only_a_control_ui_with_the_cap_gets_a_model_snapshot() {
    let server = Server::start();
    let cap = serde_json::json!(["model-catalog-snapshot"]);
    for (client, caps, scope) in [
        ("cli", cap.clone(), None),
        ("openclaw-control-ui", serde_json::json!([]), None),
        (
            "openclaw-control-ui",
            cap,
            Some(serde_json::json!({"agentId": "main"})),
        ),
    ] {
        let origin = format!("http://127.0.0.1:{}", server.addr.port());
        let (mut ws, challenge) = open_with_headers(&server, &[("Origin", &origin)]);
        let mut p = params_for(client, "webchat", &["operator.read"]);
        p["caps"] = caps;
        p["modelCatalog"] = serde_json::json!({"agentId": "nobody"});
        if client == "openclaw-control-ui" {
            let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
            let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_owned();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            add_device(&mut p, &key, &nonce, now);
        }
        let Incoming::Json(hello) = send_connect(&mut ws, &p) else {
            panic!("no hello-ok")
        };
        assert_eq!(hello["ok"], true, "{client}: {hello}");
        if let Some(scope) = scope {
            let Incoming::Json(m) = common::recv(&mut ws, Duration::from_secs(5)) else {
                panic!("{client}: connection ended")
            };
            assert_eq!(m["event"], "models.snapshot", "{m}");
            assert_eq!(m["payload"]["scope"], scope, "{m}");
            assert_eq!(m["payload"]["target"]["agentId"], "nobody", "{m}");
            continue;
        }
        common::send_json(
            &mut ws,
            &serde_json::json!({"type": "req", "id": "h", "method": "health"}),
        );
        loop {
            let Incoming::Json(m) = common::recv(&mut ws, Duration::from_secs(5)) else {
                panic!("{client}: connection ended")
            };
            assert_ne!(m["event"], "models.snapshot", "{client}: {m}");
            if m["id"] == "h" {
                break;
            }
        }
    }
}
