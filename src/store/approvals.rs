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

/// Resolved approvals, newest last (`approval.history`), kept to [`HISTORY_KEEP`] rows.
pub const MIGRATION_HISTORY: &str = "
CREATE TABLE approval_history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL,
  kind TEXT NOT NULL,
  resolved_at_ms INTEGER NOT NULL,
  snapshot TEXT NOT NULL
);";

/// How many resolved approvals are kept.
pub const HISTORY_KEEP: i64 = 1_000;

/// Records a resolved approval's snapshot (the original's terminal snapshot shape).
pub fn record_history(conn: &Connection, kind: &str, snapshot: &Value) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO approval_history (id, kind, resolved_at_ms, snapshot) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        snapshot["id"].as_str().unwrap_or_default(),
        kind,
        snapshot["resolvedAtMs"].as_i64().unwrap_or(0),
        snapshot.to_string()
    ])?;
    conn.prepare_cached(
        "DELETE FROM approval_history WHERE seq <= (SELECT MAX(seq) FROM approval_history) - ?1",
    )?
    .execute([HISTORY_KEEP])?;
    Ok(())
}

/// A newest-first page of resolved approvals: `cursor` is the `nextCursor` of the previous
/// page (an opaque position; a malformed one is the caller's error).
pub fn history(
    conn: &Connection,
    cursor: Option<&str>,
    limit: u64,
    kind: Option<&str>,
) -> rusqlite::Result<Result<Value, String>> {
    let before = match cursor {
        None => i64::MAX,
        Some(c) => match c.strip_prefix("h:").and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n > 0 => n,
            _ => return Ok(Err("invalid approval.history cursor".into())),
        },
    };
    let mut stmt = conn.prepare_cached(
        "SELECT seq, snapshot FROM approval_history WHERE seq < ?1 AND (?2 IS NULL OR kind = ?2)
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![before, kind, limit as i64 + 1], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut items = Vec::new();
    let mut next = None;
    for row in rows {
        let (seq, snap) = row?;
        if items.len() as u64 == limit {
            next = Some(format!("h:{}", seq + 1));
            break;
        }
        if let Ok(v) = serde_json::from_str::<Value>(&snap) {
            items.push(v);
        }
    }
    let mut out = json!({ "items": items });
    if let Some(n) = next {
        out["nextCursor"] = json!(n);
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn pages_newest_first_keeps_a_bounded_ledger_and_refuses_bad_cursors() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATION_HISTORY).unwrap();
        for i in 0..5 {
            let snap = json!({"id": format!("a{i}"), "status": "allowed", "resolvedAtMs": i});
            record_history(&c, if i == 2 { "plugin" } else { "exec" }, &snap).unwrap();
        }
        let p1 = history(&c, None, 2, None).unwrap().unwrap();
        let ids = |v: &Value| -> Vec<String> {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(&p1), ["a4", "a3"]);
        let p2 = history(&c, p1["nextCursor"].as_str(), 2, None)
            .unwrap()
            .unwrap();
        assert_eq!(ids(&p2), ["a2", "a1"]);
        let p3 = history(&c, p2["nextCursor"].as_str(), 2, None)
            .unwrap()
            .unwrap();
        assert_eq!(ids(&p3), ["a0"]);
        assert!(p3.get("nextCursor").is_none());
        let exec = history(&c, None, 10, Some("exec")).unwrap().unwrap();
        assert_eq!(ids(&exec), ["a4", "a3", "a1", "a0"]);
        assert!(history(&c, Some("nope"), 2, None).unwrap().is_err());
        for i in 0..HISTORY_KEEP + 10 {
            record_history(&c, "exec", &json!({"id": format!("b{i}")})).unwrap();
        }
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM approval_history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, HISTORY_KEEP);
    }
}
