//! How many sessions there are and which were active last: the `sessions` figures of `health`
//! (and its snapshot in `hello-ok`) and `status`. The storage thread keeps them in a
//! [`Tracker`] — read once at start, then kept up to date from the committed writes (a session
//! created, touched or deleted) — and sends every shard a [`Summary`] at most once per
//! [`MIN_INTERVAL_MS`] after a change, so a shard builds `health` from memory and never waits
//! on the database. No index is kept for this: an index on `updated_at_ms` would be rewritten
//! by every appended message and cost chat throughput (measured ~9%); a touched session's
//! figures come from the row its write already read back.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use serde_json::Value;

/// Sessions listed as recent, overall and per agent (the original's `recent` holds up to 10).
pub const RECENT: usize = 10;

/// Least time between two summaries under a stream of writes.
pub const MIN_INTERVAL_MS: u64 = 1000;

/// Lets `ORDER BY updated_at_ms` per agent read the newest rows without sorting the table.
pub const MIGRATION: &str =
    "CREATE INDEX sessions_agent_updated ON sessions (agent_id, updated_at_ms);";

/// One recently updated session.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    pub agent_id: String,
    pub key: String,
    pub session_id: String,
    pub updated_at_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Recent {
    /// From a session row as the store answers it (`sessions::row`).
    pub fn from_row(row: &Value) -> Option<Recent> {
        let n = |k: &str| row[k].as_i64().map_or(0, |v| v.max(0) as u64);
        Some(Recent {
            agent_id: row["agentId"].as_str()?.to_owned(),
            key: row["key"].as_str()?.to_owned(),
            session_id: row["sessionId"].as_str()?.to_owned(),
            updated_at_ms: n("updatedAt"),
            input_tokens: n("inputTokens"),
            output_tokens: n("outputTokens"),
        })
    }
}

/// Sessions per agent, with the most recently updated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Set once the storage thread has read the store (a shard reports `count` only then).
    pub loaded: bool,
    /// `(agent id, sessions)`, by agent id.
    pub by_agent: Vec<(String, u64)>,
    /// Newest first, at most [`RECENT`] per agent.
    pub recent: Vec<Recent>,
}

impl Summary {
    pub fn count(&self) -> u64 {
        self.by_agent.iter().map(|(_, n)| n).sum()
    }

    pub fn count_of(&self, agent: &str) -> u64 {
        self.by_agent
            .iter()
            .find(|(a, _)| a == agent)
            .map_or(0, |(_, n)| *n)
    }

    /// The newest sessions of one agent, or of all when `agent` is `None`.
    pub fn recent_of<'a>(&'a self, agent: Option<&'a str>) -> impl Iterator<Item = &'a Recent> {
        let mut all: Vec<&Recent> = self
            .recent
            .iter()
            .filter(|r| agent.is_none_or(|a| r.agent_id == a))
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.updated_at_ms));
        all.into_iter().take(RECENT)
    }
}

/// A committed change to the sessions table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A session of this agent was created.
    Created { agent: String },
    /// The session's row changed (a message, a patch, a reset): its figures after the write.
    Touched(Recent),
    /// The session was deleted.
    Deleted { agent: String, key: String },
}

/// The storage thread's running summary.
#[derive(Debug, Default)]
pub struct Tracker {
    by_agent: BTreeMap<String, u64>,
    /// Per agent, newest first, at most [`RECENT`].
    recent: BTreeMap<String, Vec<Recent>>,
    /// Agents whose recent list lost a row to a delete and may have more to show.
    refill: BTreeSet<String>,
    dirty: bool,
}

impl Tracker {
    /// Reads the whole summary (at start: a scan of the sessions table).
    pub fn load(conn: &Connection) -> rusqlite::Result<Tracker> {
        let mut t = Tracker::default();
        for (agent, n) in counts(conn)? {
            t.recent.insert(agent.clone(), newest(conn, &agent)?);
            t.by_agent.insert(agent, n);
        }
        Ok(t)
    }

    /// Changes since the last summary?
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Notes a committed change.
    pub fn note(&mut self, c: Change) {
        self.dirty = true;
        match c {
            Change::Created { agent } => *self.by_agent.entry(agent).or_default() += 1,
            Change::Touched(r) => {
                let list = self.recent.entry(r.agent_id.clone()).or_default();
                list.retain(|x| x.key != r.key);
                let at = list.partition_point(|x| x.updated_at_ms > r.updated_at_ms);
                list.insert(at, r);
                list.truncate(RECENT);
            }
            Change::Deleted { agent, key } => {
                if let Some(n) = self.by_agent.get_mut(&agent) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.by_agent.remove(&agent);
                    }
                }
                if let Some(list) = self.recent.get_mut(&agent) {
                    let before = list.len();
                    list.retain(|r| r.key != key);
                    if list.len() < before {
                        self.refill.insert(agent);
                    }
                }
            }
        }
    }

    /// Refills recent lists a delete shortened (a scan of that agent's sessions), then returns
    /// the summary.
    pub fn summary(&mut self, conn: &Connection) -> rusqlite::Result<Summary> {
        for agent in std::mem::take(&mut self.refill) {
            if self.by_agent.get(&agent).copied().unwrap_or(0) as usize
                > self.recent.get(&agent).map_or(0, Vec::len)
            {
                self.recent.insert(agent.clone(), newest(conn, &agent)?);
            }
        }
        self.recent
            .retain(|a, l| !l.is_empty() && self.by_agent.contains_key(a));
        self.dirty = false;
        Ok(Summary {
            loaded: true,
            by_agent: self.by_agent.iter().map(|(a, n)| (a.clone(), *n)).collect(),
            recent: self.recent.values().flatten().cloned().collect(),
        })
    }
}

fn recent_row(r: &rusqlite::Row) -> rusqlite::Result<Recent> {
    Ok(Recent {
        agent_id: r.get(0)?,
        key: r.get(1)?,
        session_id: r.get(2)?,
        updated_at_ms: r.get::<_, i64>(3)?.max(0) as u64,
        input_tokens: r.get::<_, i64>(4)?.max(0) as u64,
        output_tokens: r.get::<_, i64>(5)?.max(0) as u64,
    })
}

fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT agent_id, COUNT(*) FROM sessions GROUP BY agent_id")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    rows.collect()
}

/// The newest sessions of one agent (a scan: at start and after deletes only).
fn newest(conn: &Connection, agent: &str) -> rusqlite::Result<Vec<Recent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, key, session_id, updated_at_ms, input_tokens, output_tokens
         FROM sessions WHERE agent_id = ?1 ORDER BY updated_at_ms DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![agent, RECENT as i64], recent_row)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sessions::{self, Append, RunMark};

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            &[
                sessions::MIGRATION,
                sessions::MIGRATION_RUN_IDEMPOTENCY,
                sessions::MIGRATION_ROW_SUMMARY,
            ]
            .concat(),
        )
        .unwrap();
        conn
    }

    fn touch(conn: &Connection, agent: &str, key: &str, now: u64) -> Recent {
        let a = Append {
            key: key.into(),
            agent_id: agent.into(),
            message: Some(serde_json::json!({"role": "user", "content": "hi"})),
            run: RunMark::None,
            want_context: false,
            must_exist: false,
        };
        let sessions::AppendOutcome::Appended(x) = sessions::append(conn, &a, now).unwrap() else {
            panic!("appended")
        };
        Recent::from_row(&x.row).expect("a full row")
    }

    fn created(conn: &Connection, t: &mut Tracker, agent: &str, key: &str, now: u64) {
        let r = touch(conn, agent, key, now);
        t.note(Change::Created {
            agent: agent.into(),
        });
        t.note(Change::Touched(r));
    }

    #[test]
    fn counts_per_agent_and_the_newest_first_capped_per_agent() {
        let conn = db();
        let mut t = Tracker::load(&conn).unwrap();
        assert!(!t.dirty());
        assert_eq!(t.summary(&conn).unwrap().count(), 0);
        for i in 0..12u64 {
            created(
                &conn,
                &mut t,
                "main",
                &format!("agent:main:s{i}"),
                1_000 + i,
            );
        }
        created(&conn, &mut t, "ops", "agent:ops:main", 5_000);
        // Touching an old session makes it the newest.
        let r = touch(&conn, "main", "agent:main:s0", 6_000);
        t.note(Change::Touched(r));
        assert!(t.dirty());
        let s = t.summary(&conn).unwrap();
        assert!(!t.dirty());
        assert!(s.loaded);
        assert_eq!(s.count(), 13);
        assert_eq!(s.count_of("main"), 12);
        assert_eq!(s.count_of("ops"), 1);
        assert_eq!(s.count_of("nobody"), 0);
        let all: Vec<&str> = s.recent_of(None).map(|r| r.key.as_str()).collect();
        assert_eq!(all.len(), RECENT);
        assert_eq!(
            &all[..3],
            ["agent:main:s0", "agent:ops:main", "agent:main:s11"]
        );
        let ops: Vec<&str> = s.recent_of(Some("ops")).map(|r| r.key.as_str()).collect();
        assert_eq!(ops, ["agent:ops:main"]);
        assert_eq!(s.recent_of(Some("main")).count(), RECENT);
        // What the tracker kept equals a fresh read of the table.
        assert_eq!(s, Tracker::load(&conn).unwrap().summary(&conn).unwrap());
    }

    /// A delete drops the session from the counts and the recent list, which is refilled
    /// from the table when more sessions exist than it shows.
    #[test]
    fn a_delete_is_counted_and_the_recent_list_refilled() {
        let conn = db();
        let mut t = Tracker::load(&conn).unwrap();
        for i in 0..12u64 {
            created(
                &conn,
                &mut t,
                "main",
                &format!("agent:main:s{i}"),
                1_000 + i,
            );
        }
        created(&conn, &mut t, "ops", "agent:ops:x", 2_000);
        t.summary(&conn).unwrap();
        for (agent, key) in [("main", "agent:main:s11"), ("ops", "agent:ops:x")] {
            assert!(sessions::delete(&conn, key, true).unwrap());
            t.note(Change::Deleted {
                agent: agent.into(),
                key: key.into(),
            });
        }
        let s = t.summary(&conn).unwrap();
        assert_eq!((s.count(), s.count_of("ops")), (11, 0));
        let main: Vec<&str> = s.recent_of(Some("main")).map(|r| r.key.as_str()).collect();
        assert_eq!(main.len(), RECENT);
        assert_eq!(main[0], "agent:main:s10");
        assert_eq!(main[9], "agent:main:s1");
        assert_eq!(s, Tracker::load(&conn).unwrap().summary(&conn).unwrap());
    }
}
