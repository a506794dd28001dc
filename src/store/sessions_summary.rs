//! How many sessions there are and which were active last: the `sessions` figures of `health`
//! (and its snapshot in `hello-ok`) and `status`. The storage thread reads them after writes
//! that touch sessions — at most once per [`MIN_INTERVAL_MS`] — and sends every shard the
//! result, so a shard builds `health` from memory and never waits on the database.

use rusqlite::Connection;

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

/// Reads the summary.
pub fn read(conn: &Connection) -> rusqlite::Result<Summary> {
    let mut by_agent = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, COUNT(*) FROM sessions GROUP BY agent_id ORDER BY agent_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (agent, n) = row?;
        by_agent.push((agent, n.max(0) as u64));
    }
    let mut recent = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, key, session_id, updated_at_ms, input_tokens, output_tokens
         FROM sessions WHERE agent_id = ?1 ORDER BY updated_at_ms DESC LIMIT ?2",
    )?;
    for (agent, _) in &by_agent {
        let rows = stmt.query_map(rusqlite::params![agent, RECENT as i64], |r| {
            Ok(Recent {
                agent_id: r.get(0)?,
                key: r.get(1)?,
                session_id: r.get(2)?,
                updated_at_ms: r.get::<_, i64>(3)?.max(0) as u64,
                input_tokens: r.get::<_, i64>(4)?.max(0) as u64,
                output_tokens: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?;
        for row in rows {
            recent.push(row?);
        }
    }
    Ok(Summary {
        loaded: true,
        by_agent,
        recent,
    })
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
                MIGRATION,
            ]
            .concat(),
        )
        .unwrap();
        conn
    }

    fn touch(conn: &Connection, agent: &str, key: &str, now: u64) {
        let a = Append {
            key: key.into(),
            agent_id: agent.into(),
            message: Some(serde_json::json!({"role": "user", "content": "hi"})),
            run: RunMark::None,
            want_context: false,
            must_exist: false,
        };
        sessions::append(conn, &a, now).unwrap();
    }

    #[test]
    fn counts_per_agent_and_the_newest_first_capped_per_agent() {
        let conn = db();
        assert_eq!(read(&conn).unwrap().count(), 0);
        for i in 0..12u64 {
            touch(&conn, "main", &format!("agent:main:s{i}"), 1_000 + i);
        }
        touch(&conn, "ops", "agent:ops:main", 5_000);
        // Touching an old session makes it the newest.
        touch(&conn, "main", "agent:main:s0", 6_000);
        let s = read(&conn).unwrap();
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
    }
}
