//! The operator methods besides config: `skills.*` from SKILL.md directories, `usage.*` from
//! recorded runs, `update.*` answering honestly, and unimplemented ones staying unknown.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn write_skill(dir: &std::path::Path, name: &str, front: &str) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("SKILL.md"),
        format!("---\n{front}\n---\n\n# {name}\n"),
    )
    .unwrap();
}

fn skill<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no skill {name} in {list}"))
}

#[test]
fn skills_are_listed_with_their_requirement_checks() {
    let state = TempDir::new("skills-state");
    let extra = TempDir::new("skills-extra");
    write_skill(
        &state.path().join("skills"),
        "needs-tools",
        r#"name: needs-tools
description: Needs a binary and a key.
metadata: {"openclaw": {"emoji": "🔧", "requires": {"bins": ["sh", "rg-no-such-binary-xyz"], "env": ["RG_TEST_SKILL_KEY"]}}}"#,
    );
    write_skill(
        extra.path(),
        "ready",
        "name: ready\ndescription: Only needs a shell.\nmetadata: {\"openclaw\": {\"requires\": {\"anyBins\": [\"rg-nope\", \"sh\"]}}}",
    );
    write_skill(extra.path(), "off", "name: off\ndescription: Switched off.");
    let server = Server::opts()
        .state_dir(state.path())
        .config(&format!(
            r#"{{ringgate: {{skills: {{dirs: ["{}"], disabled: ["off"]}}}}}}"#,
            extra.path().display()
        ))
        .start();
    let mut c = Client::connect(&server);
    let st = c.call("skills.status", Some(json!({"agentId": "main"})));
    assert_eq!(st["agentId"], "main");
    assert_eq!(
        st["managedSkillsDir"],
        state.path().join("skills").display().to_string()
    );
    let names: Vec<&str> = st["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["needs-tools", "off", "ready"]);

    let t = skill(&st, "needs-tools");
    assert_eq!(t["source"], "openclaw-managed");
    assert_eq!(t["emoji"], "🔧");
    assert_eq!(t["eligible"], false);
    assert_eq!(
        t["requirements"]["bins"],
        json!(["sh", "rg-no-such-binary-xyz"])
    );
    assert_eq!(t["missing"]["bins"], json!(["rg-no-such-binary-xyz"]));
    assert_eq!(t["missing"]["env"], json!(["RG_TEST_SKILL_KEY"]));
    let r = skill(&st, "ready");
    assert_eq!(
        (r["source"].as_str(), r["eligible"].as_bool()),
        (Some("openclaw-extra"), Some(true))
    );
    assert_eq!(r["missing"]["anyBins"], json!([]));
    let off = skill(&st, "off");
    assert_eq!(
        (off["disabled"].as_bool(), off["eligible"].as_bool()),
        (Some(true), Some(false))
    );

    // `skills.bins` is a node method (node hosts ask which binaries to expose).
    let e = c.call_err("skills.bins", Some(json!({})));
    assert_eq!(e["message"], "unauthorized role: operator");
    let mut node = Client::connect_node(&server, 7, &[], 0);
    let bins = node.call("skills.bins", Some(json!({})));
    assert_eq!(
        bins["bins"],
        json!(["rg-no-such-binary-xyz", "rg-nope", "sh"])
    );
    let e = c.call_err("skills.status", Some(json!({"agentId": "ghost"})));
    assert_eq!(e["message"], "unknown agent id \"ghost\"");
}

#[test]
fn usage_comes_from_recorded_runs_and_update_is_honest() {
    let server = Server::opts()
        .config("{ringgate: {agents: {main: {runtime: 'echo', chunkDelayMs: 0}}, pricing: {'ringgate/echo': {input: 1, output: 2}}}}")
        .start();
    let mut c = Client::connect(&server);
    let before = c.call("usage.cost", Some(json!({})));
    assert_eq!(before["totals"]["runs"], 0);
    assert_eq!(before["days"], 30);
    c.call(
        "chat.send",
        Some(json!({"sessionKey": "main", "message": "count me", "idempotencyKey": "u-1"})),
    );
    c.wait_event_where("chat", Duration::from_secs(10), |e| {
        e["payload"]["state"] == "final"
    });
    // The run record is written before `final`.
    let after = c.call("usage.cost", Some(json!({"days": 1})));
    assert_eq!(after["totals"]["runs"], 1, "{after}");
    assert_eq!(after["daily"].as_array().unwrap().len(), 1);
    assert_eq!(after["daily"][0]["date"], after["endDate"]);
    assert_eq!(after["byModel"][0]["model"], "ringgate/echo");
    assert_eq!(after["byModel"][0]["priced"], true);
    let other = c.call(
        "usage.cost",
        Some(json!({"agentScope": "all", "startDate": "2020-01-01", "endDate": "2020-01-31"})),
    );
    assert_eq!(other["totals"]["runs"], 0);
    let e = c.call_err("usage.cost", Some(json!({"startDate": "2026-02-31"})));
    assert_eq!(e["message"], "startDate must be YYYY-MM-DD");
    let e = c.call_err(
        "usage.cost",
        Some(json!({"agentScope": "all", "agentId": "main"})),
    );
    assert_eq!(
        e["message"],
        "agentScope=all cannot be combined with agentId"
    );
    // The Usage page's read: the session, its run and messages, priced.
    let u = c.call(
        "sessions.usage",
        Some(json!({"mode": "specific", "utcOffset": "UTC+0", "range": "7d", "limit": 1000})),
    );
    assert_eq!(u["sessions"][0]["key"], "agent:main:main", "{u}");
    let row = &u["sessions"][0]["usage"];
    assert_eq!(row["messageCounts"]["user"], 1, "{u}");
    assert_eq!(row["messageCounts"]["assistant"], 1);
    assert_eq!(row["modelUsage"][0]["count"], 1);
    assert_eq!(u["aggregates"]["sessionCount"], 1);
    assert_eq!(u["aggregates"]["byModel"][0]["provider"], "ringgate");
    // The same run counts the same way in usage.cost.
    for k in [
        "input",
        "output",
        "totalTokens",
        "totalCost",
        "missingCostEntries",
    ] {
        assert_eq!(u["totals"][k], after["totals"][k], "{k}: {u}");
    }
    // Before 1970 nothing is recorded: the range starts then, in YYYY-MM-DD.
    let old = c.call(
        "sessions.usage",
        Some(json!({"endDate": "0000-01-05", "range": "7d"})),
    );
    assert_eq!(
        (old["startDate"].as_str(), old["endDate"].as_str()),
        (Some("1970-01-01"), Some("1970-01-01"))
    );
    let e = c.call_err(
        "sessions.usage",
        Some(json!({"mode": "specific", "timeZone": "Europe/Paris"})),
    );
    assert!(
        e["message"].as_str().unwrap().contains("needs utcOffset"),
        "{e}"
    );
    let st = c.call("usage.status", Some(json!({})));
    // No provider quota windows (the Models page would show "NaN% left"); run figures apart.
    assert_eq!(st["providers"], json!([]));
    assert_eq!(st["runsByModel"][0]["displayName"], "ringgate/echo");
    assert_eq!(st["runsByModel"][0]["windows"][0]["runs"], 1);

    let up = c.call("update.status", Some(json!({})));
    assert_eq!(up["currentVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(up["selfUpdate"], false);
    let e = c.call_err("update.run", Some(json!({})));
    assert_eq!(e["code"], "UNAVAILABLE");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("does not update itself"),
        "{e}"
    );

    // Methods of these groups ringgate does not implement are not advertised and are unknown.
    let methods = c.hello["features"]["methods"].as_array().unwrap().clone();
    for m in [
        "update.hold",
        "skills.install",
        "channels.logout",
        "config.openFile",
    ] {
        assert!(!methods.contains(&json!(m)), "{m} advertised");
        let e = c.call_err(m, Some(json!({})));
        assert_eq!(e["message"], format!("unknown method: {m}"), "{e}");
    }
    for m in ["config.patch", "usage.cost", "skills.status", "update.run"] {
        assert!(methods.contains(&json!(m)), "{m} not advertised");
    }
}

/// Polls `health` until `done` holds (the storage thread sends session counts to the shards
/// at most once a second after a change).
fn health_until(c: &mut Client, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let h = c.call("health", None);
        if done(&h) {
            return h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health never got there: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `health`, `status` and the `hello-ok` health snapshot count real sessions, per configured
/// agent, and list the newest; a deleted session leaves the count.
#[test]
fn health_and_status_count_the_sessions_in_the_store() {
    let server = Server::opts()
        .config("{ringgate: {agents: {main: {runtime: 'echo', chunkDelayMs: 0}, ops: {runtime: 'echo', chunkDelayMs: 0}}}}")
        .start();
    let mut c = Client::connect(&server);
    assert_eq!(c.hello["snapshot"]["health"]["sessions"]["count"], 0);
    let agents = |h: &Value| h["agents"].as_array().unwrap().len();
    assert_eq!(agents(&c.call("health", None)), 2);
    for (key, id) in [("main", "s-1"), ("agent:ops:work", "s-2")] {
        c.call(
            "chat.send",
            Some(json!({"sessionKey": key, "message": "hi", "idempotencyKey": id})),
        );
        let w = c.call(
            "agent.wait",
            Some(json!({"runId": id, "timeoutMs": 10_000})),
        );
        assert_eq!(w["status"], "ok", "{w}");
    }
    let h = health_until(&mut c, |h| h["sessions"]["count"] == 2);
    assert_eq!(h["sessions"]["recent"][0]["key"], "agent:ops:work", "{h}");
    assert!(h["sessions"]["recent"][0]["age"].is_u64(), "{h}");
    assert!(h["sessions"]["path"]
        .as_str()
        .unwrap()
        .ends_with("ringgate.sqlite"));
    let main = &h["agents"][0];
    assert_eq!(
        (&main["agentId"], &main["isDefault"]),
        (&json!("main"), &json!(true))
    );
    assert_eq!(main["sessions"]["count"], 1);
    assert_eq!(main["sessions"]["recent"][0]["key"], "agent:main:main");
    assert_eq!(h["agents"][1]["sessions"]["count"], 1);
    let s = c.call("status", None);
    assert_eq!(s["sessions"]["count"], 2, "{s}");
    assert_eq!(
        s["sessions"]["byAgent"][1]["recent"][0]["key"],
        "agent:ops:work"
    );
    let row = &s["sessions"]["recent"][1];
    assert_eq!(row["agentId"], "main", "{s}");
    assert!(row["totalTokens"].as_u64().unwrap() > 0, "{row}");
    assert_eq!(row["configuredModel"], "ringgate/echo");
    let fresh = Client::connect(&server);
    assert_eq!(fresh.hello["snapshot"]["health"]["sessions"]["count"], 2);
    c.call("sessions.delete", Some(json!({"key": "agent:ops:work"})));
    let h = health_until(&mut c, |h| h["sessions"]["count"] == 1);
    assert_eq!(h["agents"][1]["sessions"]["count"], 0, "{h}");
}
