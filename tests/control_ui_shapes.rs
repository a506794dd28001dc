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

use std::collections::{BTreeMap, BTreeSet};

use common::{open_with_headers, params_for, send_connect, Client, Incoming, Server};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/control-ui-original.jsonl");

/// Key paths ringgate leaves out on purpose, with why. A path is `method:key.key` (`[]` for
/// rows); a trailing `*` covers everything below.
const NOT_IN_RINGGATE: &[(&str, &str)] = &[];

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
                    hello = answer.clone().unwrap_or(Value::Null);
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

fn excused(path: &str) -> bool {
    NOT_IN_RINGGATE
        .iter()
        .any(|(p, _)| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *p,
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
        (Value::Array(o), Value::Array(r)) => {
            if let (Some(a), Some(b)) = (o.first(), r.first()) {
                gaps(a, b, &format!("{path}[]"), out);
            }
        }
        // A null or scalar on either side is a value, not a shape (an optional field the
        // original filled and ringgate leaves null is allowed); an object where ringgate has
        // an array (or the reverse) is a shape error.
        (Value::Object(_), Value::Array(_)) | (Value::Array(_), Value::Object(_)) => {
            out.insert(format!("{path} (object vs array)"));
        }
        (Value::Object(_) | Value::Array(_), Value::Null) | (Value::Object(_), _) => {
            if !ours.is_null() || !orig.as_object().is_some_and(|m| m.is_empty()) {
                out.insert(format!("{path} (is {})", kind(ours)));
            }
        }
        _ => {}
    }
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
    assert!(calls.len() > 150, "the capture holds the whole session");
    let server = Server::opts()
        .config("{ ringgate: { agents: { main: { runtime: 'echo', chunkDelayMs: 0 } } } }")
        .start();
    let mut c = Client::connect(&server);
    let mut problems = BTreeSet::new();
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
        let res = c.request(&call.method, call.params.clone());
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

    // The hello-ok the Control UI gets.
    let origin = format!("http://127.0.0.1:{}", server.addr.port());
    let (mut ws, _challenge) = open_with_headers(&server, &[("Origin", &origin)]);
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
    let Incoming::Json(hello) = send_connect(&mut ws, &p) else {
        panic!("no hello-ok for the Control UI")
    };
    let mut g = BTreeSet::new();
    gaps(&original_hello, &hello["payload"], "connect:", &mut g);
    problems.extend(g.into_iter().filter(|p| !excused(p)));

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
