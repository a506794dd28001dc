//! Session rows and transcripts in SQLite. Only the storage thread calls these, inside the
//! batch's transaction. A session's writes all come from its owner shard, so they arrive here
//! in the order the owner issued them.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use crate::agent::{ContextMessage, Usage};

/// How many earlier messages a turn gets as context.
pub const CONTEXT_MESSAGES: usize = 40;
/// Largest history page (`chat.history` `limit`).
pub const MAX_HISTORY_LIMIT: u64 = 1000;
/// Server cap on a history page's size (`maxChatHistoryMessagesBytes`).
pub const MAX_HISTORY_BYTES: usize = 6 * 1024 * 1024;

pub const MIGRATION: &str = "
CREATE TABLE sessions (
  key TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  active_run TEXT,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE messages (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  run_id TEXT,
  role TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
);
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  session_key TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at_ms INTEGER NOT NULL,
  ended_at_ms INTEGER,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  model TEXT,
  error TEXT
);";

/// Run records remember how a turn was asked for (its kind and the fingerprint of its
/// content), so a retried idempotency key is recognised after a restart too.
pub const MIGRATION_RUN_IDEMPOTENCY: &str = "
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE runs ADD COLUMN fingerprint INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_ended ON runs (ended_at_ms);
CREATE INDEX messages_run ON messages (run_id);
CREATE INDEX runs_session ON runs (session_key, started_at_ms);";

/// Fills the row summary from the stored transcript and runs, the way [`append`] keeps it
/// (text of string content or of the content blocks joined, trimmed, first 160 characters).
macro_rules! row_summary_backfill {
    () => {
        "
UPDATE sessions SET
  last_message_id = (SELECT id FROM messages m WHERE m.session_id = sessions.session_id ORDER BY seq DESC LIMIT 1),
  last_preview = (SELECT NULLIF(substr(trim(CASE json_type(body, '$.content')
                      WHEN 'text' THEN json_extract(body, '$.content')
                      WHEN 'array' THEN (SELECT group_concat(json_extract(b.value, '$.text'), '')
                                         FROM json_each(body, '$.content') b)
                      ELSE '' END, ' ' || char(9, 10, 13)), 1, 160), '')
                  FROM messages m WHERE m.session_id = sessions.session_id ORDER BY seq DESC LIMIT 1),
  title = (SELECT NULLIF(substr(trim(CASE json_type(body, '$.content')
                      WHEN 'text' THEN json_extract(body, '$.content')
                      WHEN 'array' THEN (SELECT group_concat(json_extract(b.value, '$.text'), '')
                                         FROM json_each(body, '$.content') b)
                      ELSE '' END, ' ' || char(9, 10, 13)), 1, 160), '')
           FROM messages m WHERE m.session_id = sessions.session_id AND role = 'user'
             AND trim(CASE json_type(body, '$.content')
                      WHEN 'text' THEN json_extract(body, '$.content')
                      WHEN 'array' THEN (SELECT group_concat(json_extract(b.value, '$.text'), '')
                                         FROM json_each(body, '$.content') b)
                      ELSE '' END, ' ' || char(9, 10, 13)) <> ''
           ORDER BY seq LIMIT 1),
  last_run_id = (SELECT run_id FROM runs r WHERE r.session_key = sessions.key ORDER BY started_at_ms DESC LIMIT 1);"
    };
}

/// What a session row shows of its transcript and runs, kept on the row as they change (so
/// reading a row never parses messages): the first user message (the title), the newest
/// message's id and text, the last run.
pub const MIGRATION_ROW_SUMMARY: &str = concat!(
    "ALTER TABLE sessions ADD COLUMN title TEXT;
ALTER TABLE sessions ADD COLUMN last_message_id TEXT;
ALTER TABLE sessions ADD COLUMN last_preview TEXT;
ALTER TABLE sessions ADD COLUMN last_run_id TEXT;",
    row_summary_backfill!()
);

/// How long ended runs are remembered across a restart: the idempotency TTL (a retried key
/// gets the first answer) and the run index of `agent.wait` both keep runs this long.
pub const RUN_MEMORY_MS: u64 = 5 * 60_000;

/// Why an interrupted run ended, as `agent.wait` and a retried `chat.send` report it.
pub const INTERRUPTED_ERROR: &str =
    "run interrupted: the gateway stopped before it finished; send the message again";

/// A run that ended recently, read at start-up.
#[derive(Debug, Clone)]
pub struct RecentRun {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    /// `chat`, `sessions` or `agent`.
    pub kind: String,
    pub fingerprint: u64,
    /// `ok`, `error`, `aborted` or `interrupted`.
    pub status: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub error: Option<String>,
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub session_id: String,
    /// The run's reply text (its assistant message), if it wrote one.
    pub reply: Option<String>,
}

/// How an append changes the session's run bookkeeping.
#[derive(Debug, Clone)]
pub enum RunMark {
    None,
    /// The user turn of a new run: the run becomes the session's active run.
    Start {
        run_id: String,
        /// `chat`, `sessions` or `agent`.
        kind: &'static str,
        /// Hash of what the request asked for (see `chat::fingerprint`).
        fingerprint: u64,
    },
    /// The run finished (`ok`, `error`, `aborted`); its usage is added to the session.
    End {
        run_id: String,
        status: &'static str,
        usage: Usage,
        model: String,
        error: Option<String>,
        started_at_ms: u64,
    },
}

/// Appends a message (if any) to a session's transcript, creating the session row on first use.
#[derive(Debug, Clone)]
pub struct Append {
    pub key: String,
    pub agent_id: String,
    pub message: Option<Value>,
    pub run: RunMark,
    /// Return the last messages as agent context.
    pub want_context: bool,
    /// Refuse (`session not found: <key>`) instead of creating the session.
    pub must_exist: bool,
}

/// What an append produced.
#[derive(Debug, Clone)]
pub struct Appended {
    pub session_id: String,
    /// The append created the session.
    pub created: bool,
    /// 1-based transcript position of the message.
    pub seq: Option<u64>,
    pub message_id: Option<String>,
    pub context: Vec<ContextMessage>,
    pub row: Value,
}

/// A `chat.history` read.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub key: String,
    pub limit: u64,
    /// Messages skipped from the newest end (paging backwards).
    pub offset: u64,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub row: Option<Value>,
    pub messages: Vec<Value>,
    pub total: u64,
    pub offset: u64,
    pub has_more: bool,
    /// The `offset` of the next older page (meaningful when `has_more`).
    pub next_offset: u64,
}

/// A `chat.history {cursor}` read: the messages after `after_seq` of transcript `session_id`.
#[derive(Debug, Clone)]
pub struct DeltaQuery {
    pub key: String,
    pub session_id: String,
    pub after_seq: u64,
    pub limit: u64,
    pub max_bytes: usize,
}

/// What a delta read found.
#[derive(Debug, Clone)]
pub enum DeltaPage {
    /// The cursor no longer matches the transcript (reset, deleted, or ahead of it): the
    /// client starts over with a fresh tail (`{kind:"reset"}`).
    Reset,
    Delta {
        row: Value,
        /// `(seq, id, message)`, oldest first.
        messages: Vec<(u64, String, Value)>,
        /// The seq the next cursor starts after.
        last_seq: u64,
    },
}

/// Reads the messages after a cursor (bounded by `limit` and `max_bytes`; at least one).
pub fn delta(conn: &Connection, q: &DeltaQuery) -> rusqlite::Result<DeltaPage> {
    let Some(row) = row(conn, &q.key)? else {
        return Ok(DeltaPage::Reset);
    };
    let max_seq = row["messageCount"].as_u64().unwrap_or(0);
    if row["sessionId"].as_str() != Some(q.session_id.as_str()) || q.after_seq > max_seq {
        return Ok(DeltaPage::Reset);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, body FROM messages WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut bytes = 0usize;
    let mut messages = Vec::new();
    let rows = stmt.query_map(
        params![q.session_id, q.after_seq as i64, q.limit.max(1) as i64],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        },
    )?;
    for r in rows {
        let (seq, id, body) = r?;
        bytes += body.len();
        if bytes > q.max_bytes && !messages.is_empty() {
            break;
        }
        let mut v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["__openclaw"] = crate::chat::payload::record_meta(&v, &id, seq, &q.session_id);
        messages.push((seq, id, v));
    }
    let last_seq = messages.last().map_or(q.after_seq, |m| m.0);
    Ok(DeltaPage::Delta {
        row,
        messages,
        last_seq,
    })
}

/// `sessions.branches.list`: a ringgate transcript is linear, so it has one branch — its
/// newest message (the leaf), the first user message as the headline, its user turns.
pub fn branches(conn: &Connection, key: &str) -> rusqlite::Result<Value> {
    let Some(row) = row(conn, key)? else {
        return Ok(json!({"branches": []}));
    };
    let Some(leaf) = row["activeLeafEntryId"].as_str() else {
        return Ok(json!({"branches": []}));
    };
    let turns: i64 = conn.query_row(
        "SELECT COUNT(*) FROM messages WHERE session_id = ?1 AND role = 'user'",
        [row["sessionId"].as_str().unwrap_or_default()],
        |r| r.get(0),
    )?;
    let updated = row["updatedAt"]
        .as_u64()
        .map(crate::cron::schedule::ms_to_iso);
    Ok(json!({"branches": [{
        "leafEntryId": leaf,
        "headline": row["derivedTitle"].as_str().unwrap_or_default(),
        "messageCount": turns,
        "updatedAt": updated,
        "active": true,
    }]}))
}

/// A `sessions.list` read.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: u64,
    pub offset: u64,
    pub agent_id: Option<String>,
    pub search: Option<String>,
    pub active_minutes: Option<u64>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs a statement of the append path through the statement cache (it runs for every turn).
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// Creates the session row if missing; returns its session id.
/// The session id of `key`, creating the session if needed; `true` when it was created.
fn ensure(
    conn: &Connection,
    key: &str,
    agent_id: &str,
    now: u64,
) -> rusqlite::Result<(String, bool)> {
    if let Some(id) = conn
        .prepare_cached("SELECT session_id FROM sessions WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, String>(0))
        .optional()?
    {
        return Ok((id, false));
    }
    let id = new_id();
    exec(
        conn,
        "INSERT INTO sessions (key, session_id, agent_id, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![key, id, agent_id, now as i64],
    )?;
    Ok((id, true))
}

/// What an append did.
#[derive(Debug)]
pub enum AppendOutcome {
    Appended(Appended),
    /// The session must exist and does not.
    NoSession,
    /// The run being started is already recorded within the idempotency TTL: nothing was
    /// written; the caller answers as for a retried key.
    DuplicateRun(Box<RecentRun>),
}

/// Appends a message and marks a run (see [`AppendOutcome`]).
pub fn append(conn: &Connection, a: &Append, now: u64) -> rusqlite::Result<AppendOutcome> {
    if a.must_exist && row(conn, &a.key)?.is_none() {
        return Ok(AppendOutcome::NoSession);
    }
    if let RunMark::Start { run_id, .. } = &a.run {
        if let Some(r) = remembered_run(conn, run_id, now)? {
            return Ok(AppendOutcome::DuplicateRun(Box::new(r)));
        }
    }
    let (session_id, created) = ensure(conn, &a.key, &a.agent_id, now)?;
    let mut seq = None;
    let mut message_id = None;
    if let Some(m) = &a.message {
        let next: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?1")?
            .query_row([&session_id], |r| r.get(0))?;
        let id = new_id();
        let run_id = match &a.run {
            RunMark::Start { run_id, .. } | RunMark::End { run_id, .. } => Some(run_id.as_str()),
            RunMark::None => None,
        };
        exec(
            conn,
            "INSERT INTO messages (session_id, seq, id, run_id, role, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                session_id,
                next,
                id,
                run_id,
                m["role"].as_str().unwrap_or("assistant"),
                m.to_string()
            ],
        )?;
        let user = m["role"] == "user";
        exec(
            conn,
            "UPDATE sessions SET last_message_id = ?2, last_preview = ?3,
               title = CASE WHEN title IS NULL AND ?4 THEN ?3 ELSE title END
             WHERE key = ?1",
            params![a.key, id, preview(m), user],
        )?;
        seq = Some(next as u64);
        message_id = Some(id);
    }
    match &a.run {
        RunMark::None => {
            exec(
                conn,
                "UPDATE sessions SET updated_at_ms = ?2 WHERE key = ?1",
                params![a.key, now as i64],
            )?;
        }
        RunMark::Start {
            run_id,
            kind,
            fingerprint,
        } => {
            exec(
                conn,
                "UPDATE sessions SET updated_at_ms = ?2, active_run = ?3, last_run_id = ?3 WHERE key = ?1",
                params![a.key, now as i64, run_id],
            )?;
            exec(
                conn,
                "INSERT OR REPLACE INTO runs (run_id, session_key, agent_id, status, started_at_ms, kind, fingerprint)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6)",
                params![run_id, a.key, a.agent_id, now as i64, kind, *fingerprint as i64],
            )?;
        }
        RunMark::End {
            run_id,
            status,
            usage,
            model,
            error,
            started_at_ms,
        } => {
            exec(
                conn,
                "UPDATE sessions SET updated_at_ms = ?2, input_tokens = input_tokens + ?3, output_tokens = output_tokens + ?4,
                 active_run = CASE WHEN active_run = ?5 THEN NULL ELSE active_run END WHERE key = ?1",
                params![a.key, now as i64, usage.input as i64, usage.output as i64, run_id],
            )?;
            // The row written at the start keeps its kind and fingerprint.
            exec(
                conn,
                "UPDATE runs SET status = ?2, ended_at_ms = ?3, input_tokens = ?4, output_tokens = ?5, model = ?6, error = ?7
                 WHERE run_id = ?1",
                params![run_id, status, now as i64, usage.input as i64, usage.output as i64, model, error],
            )?;
            exec(
                conn,
                "INSERT OR IGNORE INTO runs (run_id, session_key, agent_id, status, started_at_ms, ended_at_ms, input_tokens, output_tokens, model, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![run_id, a.key, a.agent_id, status, *started_at_ms as i64, now as i64,
                        usage.input as i64, usage.output as i64, model, error],
            )?;
        }
    }
    let context = if a.want_context {
        context(conn, &session_id)?
    } else {
        Vec::new()
    };
    let row = row(conn, &a.key)?.unwrap_or(Value::Null);
    Ok(AppendOutcome::Appended(Appended {
        session_id,
        created,
        seq,
        message_id,
        context,
        row,
    }))
}

/// A worker's `worker.transcript.commit`: messages appended only if the session's last entry
/// is still `base_leaf` (compare-and-swap; `None` means the transcript must be empty).
#[derive(Debug, Clone)]
pub struct Commit {
    pub key: String,
    pub run_id: String,
    pub base_leaf: Option<String>,
    pub messages: Vec<Value>,
}

/// What a commit produced.
#[derive(Debug, Clone)]
pub enum Committed {
    Done {
        session_id: String,
        /// The new entries' ids and 1-based positions, in order.
        entries: Vec<(String, u64)>,
        row: Value,
    },
    /// The session's last entry is not the commit's base (or the session is gone).
    StaleBase { leaf: Option<String> },
}

/// Applies a [`Commit`] (inside the caller's savepoint: all messages or none).
pub fn commit(conn: &Connection, c: &Commit, now: u64) -> rusqlite::Result<Committed> {
    let current: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT session_id, last_message_id FROM sessions WHERE key = ?1")?
        .query_row([&c.key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((session_id, leaf)) = current else {
        return Ok(Committed::StaleBase { leaf: None });
    };
    if leaf != c.base_leaf {
        return Ok(Committed::StaleBase { leaf });
    }
    let next: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?1")?
        .query_row([&session_id], |r| r.get(0))?;
    let mut entries = Vec::with_capacity(c.messages.len());
    for (m, seq) in c.messages.iter().zip(next..) {
        let id = new_id();
        exec(
            conn,
            "INSERT INTO messages (session_id, seq, id, run_id, role, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![session_id, seq, id, c.run_id, m["role"].as_str().unwrap_or("assistant"), m.to_string()],
        )?;
        exec(
            conn,
            "UPDATE sessions SET last_message_id = ?2,
               last_preview = COALESCE(?3, last_preview), updated_at_ms = ?4 WHERE key = ?1",
            params![c.key, id, preview(m), now as i64],
        )?;
        entries.push((id, seq as u64));
    }
    let row = row(conn, &c.key)?.unwrap_or(Value::Null);
    Ok(Committed::Done {
        session_id,
        entries,
        row,
    })
}

/// The text of a stored display message (its text content blocks, joined).
pub fn message_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn context(conn: &Connection, session_id: &str) -> rusqlite::Result<Vec<ContextMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT role, body FROM messages WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let mut out: Vec<ContextMessage> = stmt
        .query_map(params![session_id, CONTEXT_MESSAGES as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .filter_map(Result::ok)
        .filter_map(|(role, body)| {
            let role = match role.as_str() {
                "user" => "user",
                "assistant" => "assistant",
                "toolResult" => "toolResult",
                _ => return None,
            };
            let v: Value = serde_json::from_str(&body).ok()?;
            Some(ContextMessage {
                role,
                text: message_text(&v),
                body: v,
            })
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// The columns of a session row: the stored fields, the message count (the newest `seq`),
/// the summary kept on the row, and the last run.
const ROW_COLUMNS: &str = "s.key, s.session_id, s.agent_id, s.created_at_ms, s.updated_at_ms,
    s.active_run, s.input_tokens, s.output_tokens, s.meta,
    (SELECT COALESCE(MAX(seq), 0) FROM messages m WHERE m.session_id = s.session_id),
    lr.run_id, lr.status, lr.started_at_ms, lr.ended_at_ms, lr.error,
    s.last_message_id, s.last_preview, s.title";

/// The last run of each session (joined into [`ROW_COLUMNS`]).
const LAST_RUN_JOIN: &str = "LEFT JOIN runs lr ON lr.run_id = s.last_run_id";

/// Longest text kept for `lastMessagePreview` and `derivedTitle`.
const PREVIEW_CHARS: usize = 160;

/// The session row as clients see it, without model fields (the shard adds those).
pub fn row(conn: &Connection, key: &str) -> rusqlite::Result<Option<Value>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {ROW_COLUMNS} FROM sessions s {LAST_RUN_JOIN} WHERE s.key = ?1")
    });
    conn.prepare_cached(&SQL)?
        .query_row([key], row_json)
        .optional()
}

/// The first characters of a message's text (`None` when it has none).
fn preview(m: &Value) -> Option<String> {
    let text = message_text(m);
    let t = text.trim();
    (!t.is_empty()).then(|| t.chars().take(PREVIEW_CHARS).collect())
}

fn row_json(r: &rusqlite::Row) -> rusqlite::Result<Value> {
    let key: String = r.get(0)?;
    let active: Option<String> = r.get(5)?;
    let input: i64 = r.get(6)?;
    let output: i64 = r.get(7)?;
    let mut m = Map::new();
    m.insert("key".into(), json!(key));
    m.insert("sessionId".into(), json!(r.get::<_, String>(1)?));
    m.insert("agentId".into(), json!(r.get::<_, String>(2)?));
    m.insert("kind".into(), json!("direct"));
    m.insert("createdAt".into(), json!(r.get::<_, i64>(3)?));
    m.insert("updatedAt".into(), json!(r.get::<_, i64>(4)?));
    m.insert("hasActiveRun".into(), json!(active.is_some()));
    m.insert(
        "activeRunIds".into(),
        json!(active.into_iter().collect::<Vec<_>>()),
    );
    m.insert("inputTokens".into(), json!(input));
    m.insert("outputTokens".into(), json!(output));
    m.insert("totalTokens".into(), json!(input + output));
    m.insert("messageCount".into(), json!(r.get::<_, i64>(9)?));
    if let Some(run_id) = r.get::<_, Option<String>>(10)? {
        m.insert("lastRunId".into(), json!(run_id));
        m.insert("lastRunStatus".into(), json!(r.get::<_, String>(11)?));
        m.insert("startedAt".into(), json!(r.get::<_, i64>(12)?));
        m.insert("endedAt".into(), json!(r.get::<_, Option<i64>>(13)?));
        if let Some(e) = r.get::<_, Option<String>>(14)? {
            m.insert("lastRunError".into(), json!(e));
        }
    }
    m.insert(
        "activeLeafEntryId".into(),
        json!(r.get::<_, Option<String>>(15)?),
    );
    if let Some(p) = r.get::<_, Option<String>>(16)? {
        m.insert("lastMessagePreview".into(), json!(p));
    }
    if let Some(t) = r.get::<_, Option<String>>(17)? {
        m.insert("derivedTitle".into(), json!(t));
    }
    if let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(&r.get::<_, String>(8)?) {
        for (k, v) in meta {
            m.insert(k, v);
        }
    }
    Ok(Value::Object(m))
}

pub fn history(conn: &Connection, q: &HistoryQuery) -> rusqlite::Result<HistoryPage> {
    let Some(row) = row(conn, &q.key)? else {
        return Ok(HistoryPage {
            row: None,
            messages: Vec::new(),
            total: 0,
            offset: q.offset,
            has_more: false,
            next_offset: 0,
        });
    };
    let session_id = row["sessionId"].as_str().unwrap_or_default().to_owned();
    let total: u64 = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?1",
        [&session_id],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let end = total.saturating_sub(q.offset);
    let start = end.saturating_sub(q.limit);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, body FROM messages WHERE session_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq",
    )?;
    let mut messages: Vec<Value> = stmt
        .query_map(params![session_id, start as i64, end as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .filter_map(Result::ok)
        .filter_map(|(seq, id, body)| {
            let mut v: Value = serde_json::from_str(&body).ok()?;
            v["__openclaw"] = crate::chat::payload::record_meta(&v, &id, seq as u64, &session_id);
            Some(v)
        })
        .collect();
    // Keep the newest messages that fit the byte budget (always at least one).
    let mut bytes = 2usize;
    let mut keep = messages.len();
    for (i, m) in messages.iter().enumerate().rev() {
        bytes += m.to_string().len() + 1;
        if bytes > q.max_bytes && keep < messages.len() {
            break;
        }
        keep = i;
    }
    messages.drain(..keep);
    // The original's paging: `nextOffset` counts from the newest end past the oldest message
    // returned; there is more while it is below the total.
    let oldest = messages
        .first()
        .and_then(|m| m["__openclaw"]["seq"].as_u64())
        .unwrap_or(start + 1);
    let next_offset = (q.offset + 1).max(total.saturating_sub(oldest) + 1);
    Ok(HistoryPage {
        row: Some(row),
        total,
        offset: q.offset,
        has_more: !messages.is_empty() && next_offset < total,
        next_offset,
        messages,
    })
}

pub fn list(conn: &Connection, q: &ListQuery, now: u64) -> rusqlite::Result<(Vec<Value>, u64)> {
    let since = q
        .active_minutes
        .map(|m| now.saturating_sub(m.saturating_mul(60_000)) as i64)
        .unwrap_or(0);
    let search = q
        .search
        .as_ref()
        .map(|s| format!("%{}%", s.to_ascii_lowercase()));
    let filter = format!(
        "FROM sessions s {LAST_RUN_JOIN} WHERE (?1 IS NULL OR s.agent_id = ?1) AND s.updated_at_ms >= ?2
         AND (?3 IS NULL OR lower(s.key) LIKE ?3 OR lower(s.meta) LIKE ?3)"
    );
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) {filter}"),
        params![q.agent_id, since, search],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} {filter} ORDER BY s.updated_at_ms DESC, s.key LIMIT ?4 OFFSET ?5"
    ))?;
    let rows = stmt
        .query_map(
            params![q.agent_id, since, search, q.limit as i64, q.offset as i64],
            row_json,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total as u64))
}

/// Merges `patch` into the session's metadata (`null` clears a field); creates the row.
pub fn patch(
    conn: &Connection,
    key: &str,
    agent_id: &str,
    patch: &Map<String, Value>,
    now: u64,
) -> rusqlite::Result<Value> {
    ensure(conn, key, agent_id, now)?;
    let meta: String = conn.query_row("SELECT meta FROM sessions WHERE key = ?1", [key], |r| {
        r.get(0)
    })?;
    let mut meta: Map<String, Value> = serde_json::from_str(&meta).unwrap_or_default();
    for (k, v) in patch {
        if v.is_null() {
            meta.remove(k);
        } else {
            meta.insert(k.clone(), v.clone());
        }
    }
    conn.execute(
        "UPDATE sessions SET meta = ?2, updated_at_ms = ?3 WHERE key = ?1",
        params![key, Value::Object(meta).to_string(), now as i64],
    )?;
    Ok(row(conn, key)?.unwrap_or(Value::Null))
}

/// Starts a new transcript for the session (a new session id); the old messages are dropped.
pub fn reset(conn: &Connection, key: &str, agent_id: &str, now: u64) -> rusqlite::Result<Value> {
    let (old, _) = ensure(conn, key, agent_id, now)?;
    conn.execute("DELETE FROM messages WHERE session_id = ?1", [&old])?;
    conn.execute(
        "UPDATE sessions SET session_id = ?2, updated_at_ms = ?3, active_run = NULL, input_tokens = 0, output_tokens = 0,
           title = NULL, last_message_id = NULL, last_preview = NULL WHERE key = ?1",
        params![key, new_id(), now as i64],
    )?;
    Ok(row(conn, key)?.unwrap_or(Value::Null))
}

/// The agent of the session with this key, if it exists.
pub fn agent_of(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT agent_id FROM sessions WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// Deletes the session row (and its transcript when asked); false when there was none.
pub fn delete(conn: &Connection, key: &str, transcript: bool) -> rusqlite::Result<bool> {
    let Some(id) = conn
        .query_row(
            "SELECT session_id FROM sessions WHERE key = ?1",
            [key],
            |r| r.get::<_, String>(0),
        )
        .optional()?
    else {
        return Ok(false);
    };
    if transcript {
        conn.execute("DELETE FROM messages WHERE session_id = ?1", [&id])?;
    }
    conn.execute("DELETE FROM sessions WHERE key = ?1", [key])?;
    Ok(true)
}

/// After a stop no run is active: runs still marked running were cut off and end now as
/// `interrupted` (answerable for [`RUN_MEMORY_MS`] from now). Returns how many there were.
pub fn recover(conn: &Connection, now: u64) -> rusqlite::Result<usize> {
    let n = conn.execute(
        "UPDATE runs SET status = 'interrupted', ended_at_ms = ?1, error = ?2 WHERE status = 'running'",
        params![now as i64, INTERRUPTED_ERROR],
    )?;
    conn.execute(
        "UPDATE sessions SET active_run = NULL WHERE active_run IS NOT NULL",
        [],
    )?;
    Ok(n)
}

/// [`recover`] for one session: its owner host died, so the runs it had going were cut off.
/// Returns those runs (id, start time).
pub fn adopt(conn: &Connection, key: &str, now: u64) -> rusqlite::Result<Vec<(String, u64)>> {
    let cut: Vec<(String, u64)> = conn
        .prepare_cached(
            "SELECT run_id, started_at_ms FROM runs WHERE status = 'running' AND session_key = ?1",
        )?
        .query_map([key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute(
        "UPDATE runs SET status = 'interrupted', ended_at_ms = ?1, error = ?2 WHERE status = 'running' AND session_key = ?3",
        params![now as i64, INTERRUPTED_ERROR, key],
    )?;
    conn.execute(
        "UPDATE sessions SET active_run = NULL WHERE key = ?1 AND active_run IS NOT NULL",
        [key],
    )?;
    Ok(cut)
}

/// Runs that ended at or after `since_ms`, oldest first, with their reply text.
pub fn recent_runs(conn: &Connection, since_ms: u64) -> rusqlite::Result<Vec<RecentRun>> {
    let mut stmt = conn.prepare(&format!(
        "{RUN_RECORD} WHERE r.ended_at_ms >= ?1 ORDER BY r.ended_at_ms"
    ))?;
    let rows = stmt.query_map([since_ms as i64], run_record_row)?;
    rows.collect()
}

/// The run record of `run_id` if it started within the idempotency TTL or still runs: a
/// retried key whose cache entry was evicted (or lost to a restart) is still recognised, so
/// it never adds a second turn.
fn remembered_run(
    conn: &Connection,
    run_id: &str,
    now: u64,
) -> rusqlite::Result<Option<RecentRun>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{RUN_RECORD} WHERE r.run_id = ?1 AND (r.status = 'running' OR r.started_at_ms >= ?2)"
        )
    });
    conn.prepare_cached(&SQL)?
        .query_row(
            params![run_id, now.saturating_sub(RUN_MEMORY_MS) as i64],
            run_record_row,
        )
        .optional()
}

/// A run record with its session id and reply text (see [`run_record_row`]).
const RUN_RECORD: &str =
    "SELECT r.run_id, r.session_key, r.agent_id, r.kind, r.fingerprint, r.status,
        r.started_at_ms, r.ended_at_ms, r.error, r.model, r.input_tokens, r.output_tokens,
        COALESCE(s.session_id, ''),
        (SELECT m.body FROM messages m WHERE m.run_id = r.run_id AND m.role = 'assistant'
         ORDER BY m.seq DESC LIMIT 1)
    FROM runs r LEFT JOIN sessions s ON s.key = r.session_key";

fn run_record_row(r: &rusqlite::Row) -> rusqlite::Result<RecentRun> {
    let body: Option<String> = r.get(13)?;
    Ok(RecentRun {
        run_id: r.get(0)?,
        session_key: r.get(1)?,
        agent_id: r.get(2)?,
        kind: r.get(3)?,
        fingerprint: r.get::<_, i64>(4)? as u64,
        status: r.get(5)?,
        started_at_ms: r.get::<_, i64>(6)?.max(0) as u64,
        ended_at_ms: r.get::<_, Option<i64>>(7)?.unwrap_or(0).max(0) as u64,
        error: r.get(8)?,
        model: r.get(9)?,
        input_tokens: r.get::<_, i64>(10)?.max(0) as u64,
        output_tokens: r.get::<_, i64>(11)?.max(0) as u64,
        session_id: r.get(12)?,
        reply: body
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .map(|m| message_text(&m)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&[MIGRATION, MIGRATION_RUN_IDEMPOTENCY, MIGRATION_ROW_SUMMARY].concat())
            .unwrap();
        conn
    }

    fn say(conn: &Connection, key: &str, m: Value, run: RunMark, now: u64) {
        let a = Append {
            key: key.into(),
            agent_id: "main".into(),
            message: Some(m),
            run,
            want_context: false,
            must_exist: false,
        };
        assert!(matches!(
            append(conn, &a, now).unwrap(),
            AppendOutcome::Appended(_)
        ));
    }

    /// The summary kept on the row by appends is what the upgrade backfill computes from the
    /// transcript, so an upgraded database shows the same rows as one that never needed it.
    #[test]
    fn kept_row_summary_matches_the_upgrade_backfill() {
        let conn = db();
        let start = RunMark::Start {
            run_id: "r1".into(),
            kind: "chat",
            fingerprint: 1,
        };
        say(
            &conn,
            "a",
            json!({"role":"user","content":"   "}),
            RunMark::None,
            1,
        );
        say(
            &conn,
            "a",
            json!({"role":"user","content":[{"type":"text","text":" plan "},{"type":"text","text":"the trip"}]}),
            start,
            2,
        );
        say(
            &conn,
            "a",
            json!({"role":"assistant","content":[{"type":"text","text":"sure: ü".repeat(40)}]}),
            RunMark::None,
            3,
        );
        say(
            &conn,
            "b",
            json!({"role":"assistant","content":"hello"}),
            RunMark::None,
            4,
        );
        let kept = (
            row(&conn, "a").unwrap().unwrap(),
            row(&conn, "b").unwrap().unwrap(),
        );
        assert_eq!(kept.0["derivedTitle"], "plan the trip");
        assert_eq!(
            kept.0["lastMessagePreview"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            PREVIEW_CHARS
        );
        assert!(kept.1.get("derivedTitle").is_none(), "{:?}", kept.1);

        conn.execute_batch(
            "UPDATE sessions SET title = NULL, last_message_id = NULL, last_preview = NULL, last_run_id = NULL",
        )
        .unwrap();
        assert_ne!(row(&conn, "a").unwrap().unwrap(), kept.0);
        conn.execute_batch(row_summary_backfill!()).unwrap();
        assert_eq!(row(&conn, "a").unwrap().unwrap(), kept.0);
        assert_eq!(row(&conn, "b").unwrap().unwrap(), kept.1);
    }
}
