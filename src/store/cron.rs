//! Cron jobs and their run log in SQLite: jobs as JSON blobs (the original's field names), run
//! log entries appended per job and trimmed to the newest [`RUNS_KEPT`].

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

pub const MIGRATION: &str = "
CREATE TABLE cron_jobs (id TEXT PRIMARY KEY, job TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);
CREATE TABLE cron_runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, ts INTEGER NOT NULL, entry TEXT NOT NULL);
CREATE INDEX cron_runs_job ON cron_runs (job_id, seq);";

/// Run log entries kept per job.
pub const RUNS_KEPT: i64 = 500;

/// Every job, oldest first.
pub fn load_jobs(c: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = c.prepare_cached("SELECT job FROM cron_jobs ORDER BY rowid")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let text = row?;
        match serde_json::from_str(&text) {
            Ok(v) => out.push(v),
            // A row this version cannot read is kept on disk and reported, not dropped.
            Err(e) => tracing::error!(error = %e, "unreadable cron job row skipped"),
        }
    }
    Ok(out)
}

pub fn save_job(c: &Connection, id: &str, job: &str, now: u64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO cron_jobs (id, job, updated_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET job = excluded.job, updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![id, job, now as i64])?;
    Ok(())
}

/// Removes a job and its run log; whether it existed.
pub fn delete_job(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("DELETE FROM cron_runs WHERE job_id = ?1")?
        .execute(params![id])?;
    Ok(c.prepare_cached("DELETE FROM cron_jobs WHERE id = ?1")?
        .execute(params![id])?
        > 0)
}

/// Appends a run log entry, trimming the job's log to the newest [`RUNS_KEPT`].
pub fn append_run(c: &Connection, job_id: &str, ts: u64, entry: &str) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO cron_runs (job_id, ts, entry) VALUES (?1, ?2, ?3)")?
        .execute(params![job_id, ts as i64, entry])?;
    let cutoff: Option<i64> = c
        .prepare_cached(
            "SELECT seq FROM cron_runs WHERE job_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
        )?
        .query_row(params![job_id, RUNS_KEPT], |r| r.get(0))
        .optional()?;
    if let Some(cut) = cutoff {
        c.prepare_cached("DELETE FROM cron_runs WHERE job_id = ?1 AND seq <= ?2")?
            .execute(params![job_id, cut])?;
    }
    Ok(())
}

/// The newest `limit` entries (of one job, or all), oldest first.
pub fn runs(c: &Connection, job_id: Option<&str>, limit: u64) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = c.prepare_cached(
        "SELECT entry FROM (SELECT seq, entry FROM cron_runs WHERE ?1 IS NULL OR job_id = ?1
         ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![job_id, limit as i64], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(v) = serde_json::from_str(&row?) {
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_runs_round_trip_and_trim() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATION).unwrap();
        save_job(&c, "a", r#"{"id":"a","v":1}"#, 1).unwrap();
        save_job(&c, "b", r#"{"id":"b"}"#, 1).unwrap();
        save_job(&c, "a", r#"{"id":"a","v":2}"#, 2).unwrap();
        let jobs = load_jobs(&c).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0]["v"], 2);
        for i in 0..(RUNS_KEPT + 5) {
            append_run(&c, "a", i as u64, &format!(r#"{{"n":{i}}}"#)).unwrap();
        }
        append_run(&c, "b", 0, r#"{"n":-1}"#).unwrap();
        let a = runs(&c, Some("a"), 10_000).unwrap();
        assert_eq!(a.len() as i64, RUNS_KEPT);
        assert_eq!(a[0]["n"], 5);
        assert_eq!(runs(&c, None, 2).unwrap().len(), 2);
        assert!(delete_job(&c, "a").unwrap());
        assert!(!delete_job(&c, "a").unwrap());
        assert!(runs(&c, Some("a"), 10).unwrap().is_empty());
    }
}
