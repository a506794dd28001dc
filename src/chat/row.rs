//! Session rows in the original's shape (`SessionRowSchema`), as `sessions.list`,
//! `sessions.describe`, `chat.history.sessionInfo` and the session events carry them. The
//! stored row ([`crate::store::sessions::row`]) has what ringgate records — times, tokens, the
//! last run, the newest message, patched fields — and this adds the model of the session's
//! agent and the fields the original always sends, with the values that are true of a
//! single-owner ringgate: one human owner (the gateway owner), shared visibility, no
//! participants, no automation, local placement.

use serde_json::{json, Map, Value};

/// The one human owner of a single-owner gateway (the original's id for it).
pub const OWNER_ID: &str = "gateway-owner";

/// `createdActor` / `owner.actor` of every session. No `identity` profile: ringgate keeps no
/// user profiles (the UI would fetch the profile's avatar, which does not exist).
pub fn owner_actor() -> Value {
    json!({"type": "human", "id": OWNER_ID, "label": "Owner"})
}

/// What the projection needs besides the stored row.
/// A stored session row in the original's shape, with the model of its agent (the default
/// agent's for a row of an agent no longer configured).
pub fn decorate(config: &crate::config::Config, row: Value, now_ms: u64) -> Value {
    let agent = row["agentId"]
        .as_str()
        .and_then(|a| config.agent(a))
        .unwrap_or(&config.agents[0]);
    let (provider, model) = agent.runtime.model();
    project(
        row,
        &RowEnv {
            provider,
            model,
            runtime: agent.runtime.name(),
            now_ms,
        },
    )
}

pub struct RowEnv<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub runtime: &'a str,
    pub now_ms: u64,
}

/// The `status` of a session from its last run's record.
fn run_status(stored: &str) -> &'static str {
    match stored {
        "running" => "running",
        "ok" => "done",
        "aborted" => "killed",
        _ => "failed",
    }
}

/// Projects a stored row into the original's row.
pub fn project(stored: Value, env: &RowEnv) -> Value {
    let Value::Object(mut m) = stored else {
        return stored;
    };
    let key = m
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let agent = m
        .get("agentId")
        .and_then(Value::as_str)
        .unwrap_or("main")
        .to_owned();
    let is_main = key == format!("agent:{agent}:main");
    let updated = m.get("updatedAt").cloned().unwrap_or(Value::Null);
    let created = m.get("createdAt").cloned().unwrap_or(updated.clone());
    let last_status = m
        .remove("lastRunStatus")
        .and_then(|v| v.as_str().map(str::to_owned));
    let mut put = |k: &str, v: Value| {
        m.entry(k.to_owned()).or_insert(v);
    };
    put("kind", json!("direct"));
    put("visibility", json!("shared"));
    put("permissionModePending", json!(false));
    put("createdVia", json!("operator"));
    put("createdActor", owner_actor());
    put("owner", json!({"actor": owner_actor()}));
    put("participants", json!([]));
    put("participantCount", json!(0));
    put("createdAt", created);
    put(
        "classification",
        json!(if is_main { "main" } else { "direct" }),
    );
    put("isMain", json!(is_main));
    put("isBackground", json!(false));
    put("chatType", json!("direct"));
    put("archived", json!(false));
    put("pinned", json!(false));
    put("unread", json!(false));
    put("lastInteractionAt", updated);
    put("systemSent", json!(true));
    put(
        "abortedLastRun",
        json!(last_status.as_deref() == Some("aborted")),
    );
    put("effectiveFastMode", json!(false));
    put("effectiveFastModeSource", json!("default"));
    put("totalTokensFresh", json!(true));
    put("hasAutomation", json!(false));
    put("effectiveResponseUsage", json!("off"));
    // A new message interrupts the running turn (what ringgate does).
    put("effectiveQueueMode", json!("interrupt"));
    put("modelProvider", json!(env.provider));
    put("model", json!(env.model));
    put("modelOverrideSource", Value::Null);
    put("runtimeSelectionLocked", json!(false));
    put(
        "agentRuntime",
        json!({"id": env.runtime, "cloudPlacementSupported": false,
               "devicePlacementSupported": false, "source": "config"}),
    );
    put("snapshotAt", json!(env.now_ms));
    put(
        "activitySummary",
        json!({"state": "unavailable", "canEnsure": false}),
    );
    put("hiddenFromInvolvingMe", json!(false));
    // Not yet read / no failed run / no fast mode: the keys the UI reads, empty.
    put("lastReadAt", Value::Null);
    put("lastRunError", Value::Null);
    put("fastAutoOnSeconds", Value::Null);
    // ringgate's runtimes take no thinking level.
    put("thinkingDefault", json!("off"));
    put("thinkingLevels", json!([]));
    put("thinkingOptions", json!([]));
    put("sharingRole", json!("admin"));
    put("hasActiveRun", json!(false));
    put("activeRunIds", json!([]));
    if let Some(s) = &last_status {
        m.insert("status".into(), json!(run_status(s)));
        let started = m.get("startedAt").and_then(Value::as_u64);
        let ended = m.get("endedAt").and_then(Value::as_u64);
        if let (Some(a), Some(b)) = (started, ended) {
            m.insert("runtimeMs".into(), json!(b.saturating_sub(a)));
        }
    }
    if m.get("hasActiveRun") == Some(&json!(true)) {
        m.insert("status".into(), json!("running"));
    }
    let placed = m.get("createdAt").cloned().unwrap_or(Value::Null);
    let touched = m.get("updatedAt").cloned().unwrap_or(Value::Null);
    m.entry("placement").or_insert(json!({
        "state": "local", "generation": 0, "createdAtMs": placed,
        "updatedAtMs": touched, "stateChangedAtMs": placed,
    }));
    Value::Object(m)
}

/// The row of a session that has none stored yet.
pub fn empty(key: &str, agent_id: &str, env: &RowEnv) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), json!(key));
    m.insert("agentId".into(), json!(agent_id));
    m.insert("updatedAt".into(), Value::Null);
    project(Value::Object(m), env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> RowEnv<'static> {
        RowEnv {
            provider: "ringgate",
            model: "echo",
            runtime: "echo",
            now_ms: 9,
        }
    }

    #[test]
    fn stored_rows_get_the_original_fields() {
        let stored = json!({"key": "agent:main:main", "agentId": "main", "sessionId": "s",
                            "createdAt": 1, "updatedAt": 5, "hasActiveRun": false,
                            "activeRunIds": [], "lastRunId": "r", "lastRunStatus": "ok",
                            "startedAt": 2, "endedAt": 4, "unread": true, "label": "L"});
        let r = project(stored, &env());
        assert_eq!(r["status"], "done");
        assert_eq!(r["runtimeMs"], 2);
        assert_eq!(r["isMain"], true);
        assert_eq!(r["classification"], "main");
        assert_eq!(r["owner"]["actor"]["id"], OWNER_ID);
        assert_eq!(r["unread"], true, "patched values win over defaults");
        assert_eq!(r["label"], "L");
        assert_eq!(r["model"], "echo");
        assert!(r.get("lastRunStatus").is_none(), "internal field dropped");
        let running = project(
            json!({"key": "agent:main:x", "agentId": "main", "hasActiveRun": true,
                   "lastRunStatus": "running"}),
            &env(),
        );
        assert_eq!(running["status"], "running");
        assert_eq!(running["classification"], "direct");
    }
}
