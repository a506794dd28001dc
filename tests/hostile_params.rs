//! Hostile params for every implemented method, generated from each method's params schema:
//! every property gets boundary values (huge, negative, fractional, wrong type, NUL, path
//! segments, oversized strings, deep nesting), one at a time, on top of otherwise plausible
//! params. Every request must get a well-formed answer (`ok`, or an error with a protocol
//! code), the connection must stay open, and afterwards every shard must still serve.
//! Deterministic and bounded: the same requests every run.
//!
//! The regressions the adversarial pass found are pinned here by name too: a `timeoutMs` of
//! 2⁶⁴−1 on `agent.wait`, `exec.approval.request` and `node.invoke` used to panic a shard.

mod common;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use common::{connect_params, recv, Client, Incoming, Server, READ_TIMEOUT};
use ringgate::proto::scopes::{authorize, Denied, Role, ScopeSet};
use serde_json::{json, Map, Value};

/// Echo answers at once in one chunk, so runs started by valid combinations end quickly.
const FAST_ECHO: &str =
    r#"{ringgate: {agents: {main: {runtime: "echo", chunkDelayMs: 0, chunkChars: 1048576}}}}"#;

/// Property names tried on methods that have no params schema (handled by hand).
const COMMON_PROPS: &[&str] = &[
    "id",
    "key",
    "sessionKey",
    "runId",
    "nodeId",
    "deviceId",
    "requestId",
    "jobId",
    "command",
    "limit",
    "offset",
    "timeoutMs",
    "everyMs",
    "schedule",
    "decision",
    "params",
    "payloadJSON",
    "enabled",
];

fn num(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON number")
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

/// The boundary values every property is tried with.
fn hostile_values() -> Vec<Value> {
    vec![
        num("18446744073709551615"),
        num("18446744073709551616"),
        num("1e19"),
        num("9007199254740992"),
        num("9007199254740991"),
        num("-1"),
        num("-9223372036854775808"),
        num("0"),
        num("0.5"),
        num("-0.0"),
        num("1e308"),
        json!(true),
        Value::Null,
        json!([]),
        json!({}),
        json!(""),
        json!("\u{0}"),
        json!("../../../../etc/passwd"),
        json!("agent:main:../../x"),
        json!("x".repeat(70_000)),
        json!(["\u{0}", -1, {}]),
        json!({"__proto__": {"polluted": true}, "constructor": {"prototype": {}}}),
        nested(100),
    ]
}

/// A plausible value of a schema (first enum value, a short string naming the method, 1,
/// ...). Strings differ per method so that ids never match something another method made
/// (an `agent.wait` for a run that exists answers at once and would not arm its timer).
fn filler(schema: &Value, tag: &str) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return e.first().cloned().unwrap_or(Value::Null);
    }
    if let Some(alts) = schema.get("anyOf").and_then(Value::as_array) {
        return alts.first().map(|a| filler(a, tag)).unwrap_or(Value::Null);
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.first().and_then(Value::as_str).unwrap_or("string"),
        _ => "string",
    };
    match ty {
        "integer" | "number" => json!(schema.get("minimum").and_then(Value::as_u64).unwrap_or(1)),
        "boolean" => json!(false),
        "array" => json!([]),
        "object" => {
            let mut m = Map::new();
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    m.insert(r.into(), filler(&schema["properties"][r], tag));
                }
            }
            Value::Object(m)
        }
        _ => json!(format!("hostile-{tag}")),
    }
}

/// Every params object tried for one method.
fn cases(method: &str, schema: Option<&Value>) -> Vec<Value> {
    let (props, base): (Vec<String>, Map<String, Value>) = match schema {
        Some(s) => {
            let props = s["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let Value::Object(base) = filler(s, method) else {
                unreachable!()
            };
            (props, base)
        }
        None => (
            COMMON_PROPS.iter().map(|p| p.to_string()).collect(),
            Map::new(),
        ),
    };
    let mut out = vec![
        Value::Object(base.clone()),
        json!({}),
        json!(5),
        json!("params"),
        json!([]),
        json!({"unexpected": true}),
    ];
    for p in &props {
        for v in hostile_values() {
            let mut m = base.clone();
            m.insert(p.clone(), v);
            out.push(Value::Object(m));
        }
    }
    out
}

/// Methods whose answer may legitimately come much later (they wait for something).
fn may_wait(method: &str) -> bool {
    matches!(
        method,
        "agent.wait" | "exec.approval.waitDecision" | "exec.approval.request" | "agent"
    )
}

/// An admin client with the fields the hostile test needs.
fn admin(server: &Server) -> Client {
    let mut p = connect_params();
    p["scopes"] = json!(["operator.admin"]);
    Client::connect_with(server, &p)
}

/// Sends every request with at most `window` outstanding; checks every answer's shape.
/// Returns how many were sent.
fn run_all(c: &mut Client, reqs: &[(String, Value)]) -> usize {
    let window = 32;
    let mut waiting: HashMap<String, (String, Value)> = HashMap::new();
    let mut may_linger: HashSet<String> = HashSet::new();
    let mut next = 0;
    let mut last_progress = Instant::now();
    while next < reqs.len() || waiting.len() > may_linger.len() {
        while next < reqs.len() && waiting.len() - may_linger.len() < window {
            let (method, params) = &reqs[next];
            let id = format!("h{next}");
            c.send_json(&json!({"type": "req", "id": id, "method": method, "params": params}));
            if may_wait(method) {
                may_linger.insert(id.clone());
            }
            waiting.insert(id, (method.clone(), params.clone()));
            next += 1;
        }
        match recv(&mut c.ws, Duration::from_millis(200)) {
            Incoming::Json(v) if v["type"] == "event" => {}
            Incoming::Json(v) if v["type"] == "res" => {
                let id = v["id"].as_str().unwrap_or_default().to_owned();
                let (method, params) = waiting
                    .remove(&id)
                    .unwrap_or_else(|| panic!("answer to an unknown id: {v}"));
                check_answer(&method, &params, &v);
                if method == "agent" && v["payload"]["status"] == "accepted" {
                    // `agent` answers twice: accepted now, the final result later.
                    waiting.insert(id, (method, params));
                } else {
                    may_linger.remove(&id);
                }
                last_progress = Instant::now();
            }
            Incoming::Timeout => {
                assert!(
                    last_progress.elapsed() < Duration::from_secs(20),
                    "no answer for 20 s; waiting for {:?}",
                    waiting.values().take(5).collect::<Vec<_>>()
                );
            }
            other => panic!(
                "connection ended while requests were outstanding: {other:?}; last sent {:?}",
                reqs.get(next.saturating_sub(1))
            ),
        }
    }
    reqs.len()
}

fn check_answer(method: &str, params: &Value, v: &Value) {
    match v["ok"].as_bool() {
        Some(true) => {}
        Some(false) => {
            let code = v["error"]["code"].as_str().unwrap_or_default();
            assert!(
                ["INVALID_REQUEST", "UNAVAILABLE", "FORBIDDEN", "NOT_PAIRED"].contains(&code),
                "{method} {params}: unexpected error {v}"
            );
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{method}: error without a message: {v}"
            );
        }
        None => panic!("{method} {params}: malformed answer {v}"),
    }
}

/// Every shard still answers (a panicked shard would not).
fn every_shard_serves(server: &Server, shards: usize) {
    for shard in 0..shards {
        let mut c = Client::connect_to_shard(server, &connect_params(), shard);
        let h = c.call("health", None);
        assert_eq!(h["ok"], true, "shard {shard}: {h}");
        c.close();
    }
    let r = common::http_raw(server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200, "/healthz: {r:?}");
}

#[test]
fn every_method_survives_boundary_values_in_every_field() {
    let server = Server::opts().config(FAST_ECHO).start();
    let schemas: HashMap<&str, Value> = ringgate::proto::schema::method_schemas()
        .into_iter()
        .collect();
    let mut methods: Vec<&str> = ringgate::methods::all_methods().collect();
    methods.extend(ringgate::methods::nodes::HIDDEN);
    // Node methods are tried from a node, the others from an admin operator.
    let admin_scopes = ScopeSet::from_strs(["operator.admin"]);
    let (mut operator_reqs, mut node_reqs) = (Vec::new(), Vec::new());
    for m in &methods {
        let node_only = matches!(
            authorize(m, Role::Operator, &admin_scopes, None),
            Err(Denied::Role(_))
        );
        for params in cases(m, schemas.get(m)) {
            let r = (m.to_string(), params);
            if node_only {
                node_reqs.push(r);
            } else {
                operator_reqs.push(r);
            }
        }
    }
    let mut c = admin(&server);
    let mut sent = run_all(&mut c, &operator_reqs);
    let mut node = Client::connect_node(&server, 71, &["system.which"], 1);
    sent += run_all(&mut node, &node_reqs);
    assert!(sent > 5_000, "only {sent} requests generated");
    // The same connections still serve.
    assert_eq!(c.call("health", None)["ok"], true);
    assert_eq!(node.call("health", None)["ok"], true);
    every_shard_serves(&server, 2);
    eprintln!(
        "hostile params: {sent} requests over {} methods answered",
        methods.len()
    );
}

/// The three remote crashes of the adversarial pass, on both shards: each answers with a
/// precise error (or waits, clamped), and the gateway still serves.
#[test]
fn huge_timeouts_are_refused_or_clamped_never_a_crash() {
    let server = Server::start();
    for shard in 0..2 {
        let mut c = Client::connect_to_shard(&server, &connect_params(), shard);
        for (method, params) in [
            (
                "agent.wait",
                json!({"runId": "x", "timeoutMs": num("18446744073709551615")}),
            ),
            (
                "exec.approval.request",
                json!({"command": "ls", "timeoutMs": num("18446744073709551615")}),
            ),
            (
                "node.invoke",
                json!({"nodeId": "n", "command": "system.which", "idempotencyKey": "k",
                       "timeoutMs": num("18446744073709551615")}),
            ),
            (
                "exec.approval.request",
                json!({"command": "ls", "timeoutMs": -1}),
            ),
            ("agent.wait", json!({"runId": "x", "timeoutMs": 1.5})),
        ] {
            let e = c.call_err(method, Some(params.clone()));
            assert_eq!(e["code"], "INVALID_REQUEST", "{method} {params}: {e}");
            assert!(
                e["message"].as_str().unwrap().contains("timeoutMs"),
                "{method}: the error names the field: {e}"
            );
        }
        // The largest exact integer is accepted and clamped like the original's timers: the
        // approval expires in 2,147,000,000 ms, after its creation (never before it).
        let r = c.call(
            "exec.approval.request",
            Some(
                json!({"command": "ls", "timeoutMs": 9_007_199_254_740_991u64,
                        "twoPhase": true, "requireDeliveryRoute": false}),
            ),
        );
        let created = r["createdAtMs"].as_u64().unwrap();
        assert_eq!(
            r["expiresAtMs"].as_u64().unwrap(),
            created + 2_147_000_000,
            "{r}"
        );
        // A clamped agent.wait is armed (it would panic the shard if it were not clamped).
        let id = c.send_request(
            "agent.wait",
            Some(json!({"runId": "never", "timeoutMs": 9_007_199_254_740_991u64})),
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            c.call("health", None)["ok"],
            true,
            "shard {shard} after {id}"
        );
        c.close();
    }
    every_shard_serves(&server, 2);
}

/// Protocol versions past `u64` are a protocol mismatch (1002), not version 0.
#[test]
fn protocol_numbers_beyond_u64_are_a_mismatch() {
    let server = Server::start();
    for min in ["18446744073709551616", "1e19", "18446744073709551615"] {
        let (mut ws, _challenge) = common::open(&server);
        let mut p = connect_params();
        p["minProtocol"] = num(min);
        let first = common::send_connect(&mut ws, &p);
        let err = common::expect_rejection(&mut ws, first, 1002, "protocol mismatch");
        assert_eq!(err["details"]["code"], "PROTOCOL_MISMATCH", "{min}: {err}");
    }
    let _ = READ_TIMEOUT;
}

/// Session keys are client-chosen: one connection may subscribe to at most 1,024 sessions'
/// messages (a precise error past that, the connection stays open), and resubscribing or
/// unsubscribing still works at the limit.
#[test]
fn session_subscriptions_per_connection_are_bounded() {
    let server = Server::start();
    let mut c = admin(&server);
    let sub = |i: usize| Some(json!({"key": format!("agent:main:sub-{i}")}));
    for i in 0..ringgate::shard::dispatch::MAX_SESSION_SUBSCRIPTIONS {
        assert_eq!(
            c.call("sessions.messages.subscribe", sub(i))["subscribed"],
            true
        );
    }
    let e = c.call_err("sessions.messages.subscribe", sub(5000));
    assert_eq!(e["code"], "INVALID_REQUEST", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("too many session subscriptions"),
        "{e}"
    );
    // At the limit: an existing key is still fine, and freeing one makes room.
    assert_eq!(
        c.call("sessions.messages.subscribe", sub(7))["subscribed"],
        true
    );
    assert_eq!(
        c.call("sessions.messages.unsubscribe", sub(7))["subscribed"],
        false
    );
    assert_eq!(
        c.call("sessions.messages.subscribe", sub(5000))["subscribed"],
        true
    );
    assert_eq!(c.call("health", None)["ok"], true);
}
