//! Session writes for a cluster's replicated record.
//!
//! In a cluster (`ringgate.cluster`), the durable record of sessions is a JetStream stream,
//! not this host's SQLite: every committed write to the session tables is captured as the
//! rows it left (temporary triggers on this connection journal each inserted or updated row
//! in full, and the key of each deleted one), handed to the cluster link, and its caller's
//! result is held until the stream has stored it. Every other host applies those rows to its
//! own SQLite, which is then a cache that any host can read and a survivor can serve from
//! when the writer dies.
//!
//! Without a cluster nothing here runs: no triggers exist, ops are not captured and results
//! are delivered at commit as always.

use std::sync::Arc;

use rusqlite::{params_from_iter, types::Value as Sql, Connection};
use serde_json::Value;

use super::{oneshot::Oneshot, OpResult};

/// The tables a cluster shares: a session's state (rows, transcripts, run records) and the
/// cron jobs with their run log.
pub const TABLES: [&str; 5] = ["sessions", "messages", "runs", "cron_jobs", "cron_runs"];

/// The record key of cron writes (one subject for all of them: one host runs cron).
pub const CRON_KEY: &str = "cron";

/// The committed changes of one op to one session.
#[derive(Debug, Clone)]
pub struct SessionChange {
    /// The session's key (the record's subject is derived from it).
    pub key: String,
    /// The rows, as JSON: `[[table, deleted, {column: value}], …]` in write order.
    pub rows: Vec<u8>,
}

/// A batch's captured session changes, in commit order, and the results of the ops that made
/// them: delivered only once the record holds every change ([`Replica::complete`]).
pub struct Replica {
    pub changes: Vec<SessionChange>,
    held: Vec<(Arc<Oneshot<OpResult>>, OpResult)>,
}

impl Replica {
    pub(super) fn new() -> Replica {
        Replica {
            changes: Vec::new(),
            held: Vec::new(),
        }
    }

    pub(super) fn hold(&mut self, done: Arc<Oneshot<OpResult>>, r: OpResult) {
        self.held.push((done, r));
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The record holds every change: the callers get their results.
    pub fn complete(self) {
        for (done, r) in self.held {
            done.complete(r);
        }
    }

    /// The record could not take the changes: the callers hear that nothing was
    /// acknowledged (this host's cache has them; the record does not).
    pub fn fail(self, why: &str) {
        for (done, _) in self.held {
            done.complete(OpResult::Failed(why.to_owned()));
        }
    }
}

/// Where the storage thread hands a batch's session changes (the cluster link).
pub trait Replicate: Send + Sync {
    fn replicate(&self, r: Replica);
}

/// One session table's columns, read from the database when capture is installed.
#[derive(Debug, Clone)]
struct Table {
    name: &'static str,
    columns: Vec<String>,
    key: Vec<String>,
}

/// The capture installed on the storage thread's connection, and what applying needs.
#[derive(Debug, Clone)]
pub struct Capture {
    tables: Vec<Table>,
}

impl Capture {
    /// Creates the journal and its triggers (temporary: this connection only, gone at close).
    pub fn install(conn: &Connection) -> rusqlite::Result<Capture> {
        let mut tables = Vec::new();
        let mut sql = String::from(
            "CREATE TEMP TABLE IF NOT EXISTS replica_journal (n INTEGER PRIMARY KEY, tbl TEXT NOT NULL, del INTEGER NOT NULL, row TEXT NOT NULL);",
        );
        for name in TABLES {
            let mut stmt = conn.prepare(&format!("PRAGMA main.table_info({name})"))?;
            let cols: Vec<(String, i64)> = stmt
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let columns: Vec<String> = cols.iter().map(|(c, _)| c.clone()).collect();
            let mut key: Vec<(i64, String)> = cols
                .iter()
                .filter(|(_, pk)| *pk > 0)
                .map(|(c, pk)| (*pk, c.clone()))
                .collect();
            key.sort();
            let key: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
            let image = |of: &str, cols: &[String]| {
                let pairs: Vec<String> = cols
                    .iter()
                    .map(|c| format!("'{c}', {of}.\"{c}\""))
                    .collect();
                format!("json_object({})", pairs.join(", "))
            };
            let (new, old) = (image("NEW", &columns), image("OLD", &key));
            sql.push_str(&format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS replica_{name}_i AFTER INSERT ON main.{name} BEGIN INSERT INTO replica_journal (tbl, del, row) VALUES ('{name}', 0, {new}); END;
                 CREATE TEMP TRIGGER IF NOT EXISTS replica_{name}_u AFTER UPDATE ON main.{name} BEGIN INSERT INTO replica_journal (tbl, del, row) VALUES ('{name}', 0, {new}); END;
                 CREATE TEMP TRIGGER IF NOT EXISTS replica_{name}_d AFTER DELETE ON main.{name} BEGIN INSERT INTO replica_journal (tbl, del, row) VALUES ('{name}', 1, {old}); END;"
            ));
            tables.push(Table { name, columns, key });
        }
        conn.execute_batch(&sql)?;
        Ok(Capture { tables })
    }

    /// Forgets whatever the journal holds (before a captured op, and after applying another
    /// host's rows, which must not be sent back).
    pub fn clear(conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM replica_journal")?
            .execute([])?;
        Ok(())
    }

    /// What the journal holds (the rows of the op just run), as a change's JSON; empty when
    /// the op wrote nothing. The journal is left empty.
    pub fn take(conn: &Connection) -> rusqlite::Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut stmt =
                conn.prepare_cached("SELECT tbl, del, row FROM replica_journal ORDER BY n")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                out.push(if out.is_empty() { b'[' } else { b',' });
                let (tbl, del, row) = (
                    r.get_ref(0)?.as_str()?,
                    r.get::<_, i64>(1)?,
                    r.get_ref(2)?.as_str()?,
                );
                out.extend_from_slice(format!("[\"{tbl}\",{del},").as_bytes());
                out.extend_from_slice(row.as_bytes());
                out.push(b']');
            }
        }
        if !out.is_empty() {
            out.push(b']');
        }
        Self::clear(conn)?;
        Ok(out)
    }

    /// Applies another host's rows: an inserted or updated row replaces this cache's, a
    /// deleted one is removed. Only the session tables' known columns are written; anything
    /// else is refused as malformed.
    pub fn apply(&self, conn: &Connection, rows: &[u8]) -> Result<(), String> {
        let entries: Vec<(String, u8, serde_json::Map<String, Value>)> =
            serde_json::from_slice(rows).map_err(|e| format!("not a session change: {e}"))?;
        for (tbl, del, row) in entries {
            let t = self
                .tables
                .iter()
                .find(|t| t.name == tbl)
                .ok_or_else(|| format!("unknown table {tbl:?}"))?;
            let db = |e: rusqlite::Error| e.to_string();
            if del != 0 {
                let vals = t
                    .key
                    .iter()
                    .map(|c| {
                        row.get(c)
                            .map(sql)
                            .ok_or_else(|| format!("{tbl} row without {c}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let cond: Vec<String> = t.key.iter().map(|c| format!("\"{c}\" = ?")).collect();
                conn.prepare_cached(&format!(
                    "DELETE FROM main.{} WHERE {}",
                    t.name,
                    cond.join(" AND ")
                ))
                .and_then(|mut s| s.execute(params_from_iter(vals)))
                .map_err(db)?;
                continue;
            }
            let cols: Vec<&String> = t.columns.iter().filter(|c| row.contains_key(*c)).collect();
            if t.key.iter().any(|k| !row.contains_key(k)) {
                return Err(format!("{tbl} row without its key"));
            }
            let names: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
            let marks = vec!["?"; cols.len()].join(", ");
            let vals = cols.iter().map(|c| sql(&row[c.as_str()]));
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO main.{} ({}) VALUES ({marks})",
                t.name,
                names.join(", ")
            ))
            .and_then(|mut s| s.execute(params_from_iter(vals)))
            .map_err(db)?;
        }
        Ok(())
    }
}

impl Capture {
    /// The session keys whose row a change touches (none when it is malformed).
    pub fn keys(rows: &[u8]) -> Vec<String> {
        let Ok(entries) =
            serde_json::from_slice::<Vec<(String, u8, serde_json::Map<String, Value>)>>(rows)
        else {
            return Vec::new();
        };
        let mut keys: Vec<String> = Vec::new();
        for (tbl, _, row) in entries {
            if let (true, Some(k)) = (tbl == "sessions", row.get("key").and_then(Value::as_str)) {
                if !keys.iter().any(|x| x == k) {
                    keys.push(k.to_owned());
                }
            }
        }
        keys
    }
}

/// A JSON value as SQLite stores it (what `json_object` made of a column, back).
fn sql(v: &Value) -> Sql {
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (Connection, Capture) {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            &[
                super::super::sessions::MIGRATION,
                super::super::sessions::MIGRATION_RUN_IDEMPOTENCY,
                super::super::sessions::MIGRATION_ROW_SUMMARY,
                super::super::cron::MIGRATION,
            ]
            .concat(),
        )
        .unwrap();
        let cap = Capture::install(&c).unwrap();
        (c, cap)
    }

    fn capture(c: &Connection, sql: &str) -> Vec<u8> {
        Capture::clear(c).unwrap();
        c.execute_batch(sql).unwrap();
        Capture::take(c).unwrap()
    }

    fn count(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn captured_rows_replay_on_another_cache_and_name_their_session() {
        let ((a, _), (b, cap)) = (db(), db());
        let rows = capture(
            &a,
            "INSERT INTO sessions (key, session_id, agent_id, created_at_ms, updated_at_ms) VALUES ('agent:main:x', 's1', 'main', 1, 1);
             INSERT INTO messages (session_id, seq, id, role, body) VALUES ('s1', 1, 'm1', 'user', '{\"a\":1}');",
        );
        assert_eq!(Capture::keys(&rows), vec!["agent:main:x"]);
        cap.apply(&b, &rows).unwrap();
        Capture::clear(&b).unwrap();
        // Applying twice (a replay) changes nothing.
        cap.apply(&b, &rows).unwrap();
        assert_eq!(count(&b, "SELECT count(*) FROM messages"), 1);
        let body: String = b
            .query_row("SELECT body FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(body, "{\"a\":1}", "text stays text");
        // The record wins over a cache that drifted.
        b.execute_batch("UPDATE sessions SET updated_at_ms = 3")
            .unwrap();
        let rows = capture(
            &a,
            "UPDATE sessions SET updated_at_ms = 10 WHERE key = 'agent:main:x'",
        );
        cap.apply(&b, &rows).unwrap();
        assert_eq!(count(&b, "SELECT updated_at_ms FROM sessions"), 10);
        let rows = capture(&a, "DELETE FROM messages; DELETE FROM sessions;");
        assert_eq!(Capture::keys(&rows), vec!["agent:main:x"]);
        cap.apply(&b, &rows).unwrap();
        assert_eq!(count(&b, "SELECT count(*) FROM sessions"), 0);
        assert_eq!(count(&b, "SELECT count(*) FROM messages"), 0);
    }

    #[test]
    fn an_op_that_wrote_nothing_captures_nothing_and_garbage_is_refused() {
        let (a, cap) = db();
        assert!(capture(&a, "UPDATE sessions SET updated_at_ms = 1").is_empty());
        for junk in [
            &b"not json"[..],
            br#"[["devices",0,{"device_id":"x"}]]"#,
            br#"[["messages",1,{"seq":1}]]"#,
            br#"[["sessions",0,{"agent_id":"main"}]]"#,
            br#"{"a":1}"#,
        ] {
            assert!(
                cap.apply(&a, junk).is_err(),
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
    }
}
