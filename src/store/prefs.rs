//! Control UI user preferences (`users.prefs.get|set`): theme, fonts and the like, kept for the
//! gateway's one owner so every browser of it sees the same settings. At most
//! [`MAX_ENTRIES`] keys of at most 256 characters; values are any JSON up to [`MAX_VALUE`].

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

pub const MIGRATION: &str = "
CREATE TABLE user_prefs (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL
);";

/// Keys kept at most.
pub const MAX_ENTRIES: usize = 256;
/// Largest value kept (bytes of JSON).
pub const MAX_VALUE: usize = 64 * 1024;

/// `{status:"ok", entries}` for the asked keys (all when none are named).
pub fn get(conn: &Connection, keys: Option<&[String]>) -> rusqlite::Result<Value> {
    let mut entries = Map::new();
    match keys {
        Some(keys) => {
            let mut stmt = conn.prepare_cached("SELECT value FROM user_prefs WHERE key = ?1")?;
            for k in keys {
                if let Some(v) = stmt.query_row([k], |r| r.get::<_, String>(0)).optional()? {
                    entries.insert(k.clone(), serde_json::from_str(&v).unwrap_or(Value::Null));
                }
            }
        }
        None => {
            let mut stmt = conn.prepare_cached("SELECT key, value FROM user_prefs ORDER BY key")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for r in rows {
                let (k, v) = r?;
                entries.insert(k, serde_json::from_str(&v).unwrap_or(Value::Null));
            }
        }
    }
    Ok(json!({"status": "ok", "entries": entries}))
}

/// Writes `entries` (a `null` value deletes the key) unless `expected` names a current value
/// that differs (`{status:"conflict"}`). `Err(message)` for a caller's mistake.
pub fn set(
    conn: &Connection,
    entries: &Map<String, Value>,
    expected: Option<&Map<String, Value>>,
    now: u64,
) -> rusqlite::Result<Result<Value, String>> {
    if let Some(exp) = expected {
        let current = get(conn, Some(&exp.keys().cloned().collect::<Vec<_>>()))?;
        for (k, want) in exp {
            let have = current["entries"].get(k).unwrap_or(&Value::Null);
            if have != want {
                return Ok(Ok(json!({"status": "conflict"})));
            }
        }
    }
    for (k, v) in entries {
        let text = v.to_string();
        if text.len() > MAX_VALUE {
            return Ok(Err(format!(
                "preference {k} is larger than {MAX_VALUE} bytes"
            )));
        }
    }
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM user_prefs", [], |r| r.get(0))?;
    let mut added = 0usize;
    for k in entries.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k) {
        let exists = conn
            .query_row("SELECT 1 FROM user_prefs WHERE key = ?1", [k], |_| Ok(()))
            .optional()?
            .is_some();
        added += usize::from(!exists);
    }
    if count as usize + added > MAX_ENTRIES {
        return Ok(Err(format!("at most {MAX_ENTRIES} preferences are kept")));
    }
    for (k, v) in entries {
        if v.is_null() {
            conn.execute("DELETE FROM user_prefs WHERE key = ?1", [k])?;
        } else {
            conn.execute(
                "INSERT OR REPLACE INTO user_prefs (key, value, updated_at_ms) VALUES (?1, ?2, ?3)",
                params![k, v.to_string(), now as i64],
            )?;
        }
    }
    Ok(Ok(json!({"status": "ok"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATION).unwrap();
        c
    }

    #[test]
    fn set_get_conflict_and_delete() {
        let c = db();
        let e = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            set(&c, &e(json!({"ui.theme": "knot"})), None, 1)
                .unwrap()
                .unwrap()["status"],
            "ok"
        );
        assert_eq!(
            get(&c, Some(&["ui.theme".into()])).unwrap()["entries"],
            json!({"ui.theme": "knot"})
        );
        let stale = e(json!({"ui.theme": "claw"}));
        assert_eq!(
            set(&c, &e(json!({"ui.theme": "dash"})), Some(&stale), 2)
                .unwrap()
                .unwrap()["status"],
            "conflict"
        );
        set(&c, &e(json!({"ui.theme": null})), None, 3)
            .unwrap()
            .unwrap();
        assert_eq!(get(&c, None).unwrap()["entries"], json!({}));
        let big = e(json!({"k": "x".repeat(MAX_VALUE)}));
        assert!(set(&c, &big, None, 4).unwrap().is_err());
    }
}
