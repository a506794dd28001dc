//! Durable exec-approval state: `allow-always` grants and the approvals policy file
//! (`exec.approvals.get|set`, optimistic concurrency by content hash). Storage thread only.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const MIGRATION: &str = "
CREATE TABLE exec_grants (
  grant_id TEXT PRIMARY KEY,
  approval_id TEXT NOT NULL,
  request TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER
);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

const POLICY_KEY: &str = "exec_approvals_config";

pub fn add_grant(
    conn: &Connection,
    approval_id: &str,
    request: &Value,
    now: u64,
) -> rusqlite::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO exec_grants (grant_id, approval_id, request, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![id, approval_id, request.to_string(), now as i64],
    )?;
    Ok(id)
}

pub fn list_grants(conn: &Connection, limit: u64) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT grant_id, approval_id, request, created_at_ms FROM exec_grants
         WHERE revoked_at_ms IS NULL ORDER BY created_at_ms DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            let request: Value = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default();
            Ok(json!({
                "grantId": r.get::<_, String>(0)?,
                "approvalId": r.get::<_, String>(1)?,
                "command": request["command"],
                "agentId": request["agentId"],
                "host": request["host"],
                "nodeId": request["nodeId"],
                "createdAtMs": r.get::<_, i64>(3)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// `revoked`, `already-revoked` or `not-found`.
pub fn revoke_grant(conn: &Connection, grant_id: &str, now: u64) -> rusqlite::Result<&'static str> {
    let state: Option<Option<i64>> = conn
        .query_row(
            "SELECT revoked_at_ms FROM exec_grants WHERE grant_id = ?1",
            [grant_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match state {
        None => "not-found",
        Some(Some(_)) => "already-revoked",
        Some(None) => {
            conn.execute(
                "UPDATE exec_grants SET revoked_at_ms = ?2 WHERE grant_id = ?1",
                params![grant_id, now as i64],
            )?;
            "revoked"
        }
    })
}

fn hash(file: &Value) -> String {
    Sha256::digest(file.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn default_file() -> Value {
    json!({"version": 1, "defaults": {}, "agents": {}})
}

/// The policy snapshot `exec.approvals.get` answers.
fn snapshot(file: Value) -> Value {
    let mut resolved =
        json!({"security": "full", "ask": "off", "askFallback": "deny", "autoAllowSkills": false});
    if let Some(d) = file["defaults"].as_object() {
        for (k, v) in d {
            resolved[k] = v.clone();
        }
    }
    json!({
        "path": format!("ringgate.sqlite#{POLICY_KEY}"),
        "exists": true,
        "hash": hash(&file),
        "file": file,
        "resolvedDefaults": resolved,
    })
}

pub fn get_policy(conn: &Connection) -> rusqlite::Result<Value> {
    let file = conn
        .query_row("SELECT value FROM kv WHERE key = ?1", [POLICY_KEY], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(default_file);
    Ok(snapshot(file))
}

/// Replaces the policy if `base_hash` matches the current one. `Err(message)` for the
/// caller's mistakes (missing or stale hash).
pub fn set_policy(
    conn: &Connection,
    mut file: Value,
    base_hash: Option<&str>,
) -> rusqlite::Result<Result<Value, String>> {
    let current = get_policy(conn)?;
    let Some(base) = base_hash else {
        return Ok(Err(
            "exec approvals base hash required; re-run exec.approvals.get and retry".into(),
        ));
    };
    if current["hash"].as_str() != Some(base) {
        return Ok(Err(
            "exec approvals changed since last load; re-run exec.approvals.get and retry".into(),
        ));
    }
    // Every allowlist entry gets an id.
    if let Some(agents) = file["agents"].as_object_mut() {
        for agent in agents.values_mut() {
            if let Some(list) = agent["allowlist"].as_array_mut() {
                for e in list {
                    if e.is_object() && e.get("id").is_none() {
                        e["id"] = json!(uuid::Uuid::new_v4().to_string());
                    }
                }
            }
        }
    }
    conn.execute(
        "INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)",
        params![POLICY_KEY, file.to_string()],
    )?;
    Ok(Ok(snapshot(file)))
}
