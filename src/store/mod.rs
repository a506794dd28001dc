//! The durable state store: one storage thread owns an embedded SQLite database (WAL,
//! `synchronous=FULL`) in the state dir and the authoritative pairing state. Shards send it
//! commands over a channel and get completions through a lock-free one-shot, so no shard ever
//! blocks on disk. Commands that arrive together are applied in one transaction (group commit);
//! a result is delivered only after its transaction committed, so an acknowledged change
//! survives `kill -9`. After each commit the thread sends the changes to every shard's
//! replica and broadcasts the pairing events.

pub mod approvals;
pub mod config;
pub mod cron;
pub mod oneshot;
pub mod prefs;
pub mod replica;
pub mod sessions;
pub mod sessions_summary;
pub mod usage;
pub mod usage_sessions;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crossbeam::channel::{self, Receiver};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use thiserror::Error;

use self::oneshot::Oneshot;
use crate::{
    pairing::{self, DeviceToken, PairedDevice, PendingRequest, PENDING_TTL_MS},
    proto::{frame::EventTemplate, scopes::ScopeSet},
    state::now_ms,
};

/// Schema migrations, applied in order above the stored `schema_version`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE devices (device_id TEXT PRIMARY KEY, row TEXT NOT NULL, updated_at_ms INTEGER NOT NULL);",
    sessions::MIGRATION,
    approvals::MIGRATION,
    cron::MIGRATION,
    sessions::MIGRATION_RUN_IDEMPOTENCY,
    prefs::MIGRATION,
    sessions::MIGRATION_ROW_SUMMARY,
    approvals::MIGRATION_HISTORY,
    "CREATE TABLE cluster_cursor (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);",
];

pub use crate::config::STORE_FILE;

/// Commands applied per transaction at most.
const MAX_BATCH: usize = 256;

/// A store that could not be opened: startup stops with this message.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The state dir cannot be created or written: fix permissions or choose another dir.
    #[error("state dir {path} is not usable: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The database is corrupt, locked or from a newer ringgate: it is left untouched.
    #[error("state database {path} cannot be opened: {message}")]
    Db { path: PathBuf, message: String },
}

/// A change to the paired-device replicas.
#[derive(Debug, Clone)]
pub enum DeviceDelta {
    Upsert(Arc<PairedDevice>),
    Removed(String),
}

/// Work for the storage thread.
#[derive(Debug)]
pub enum Op {
    /// A connect needs pairing: create or refresh a pending request; approve it at once when
    /// `silent` (local silent approval), issuing a token for `pending.role`.
    RequestPairing {
        pending: Box<PendingRequest>,
        silent: bool,
    },
    /// A paired-device change made on another host of the cluster (from the shared record):
    /// applied here and announced to this host's shards, never sent back to the cluster.
    DeviceSync(DeviceDelta),
    /// A paired device connects without a reusable token: mint one.
    EnsureToken {
        device_id: String,
        role: String,
        scopes: Vec<String>,
    },
    Approve {
        request_id: String,
        caller: ScopeSet,
        /// Set for non-admin device-token sessions: they may only act on their own device.
        own_device: Option<String>,
    },
    Reject {
        request_id: String,
        own_device: Option<String>,
    },
    Remove {
        device_id: String,
    },
    Rename {
        device_id: String,
        label: String,
    },
    Rotate {
        device_id: String,
        role: String,
        scopes: Option<Vec<String>>,
        /// The caller's scopes: a non-admin must hold every scope of the token it mints.
        caller: ScopeSet,
    },
    Revoke {
        device_id: String,
        role: String,
        caller: ScopeSet,
    },
    List,
    /// Append to a session's transcript (durable before the result).
    Append(Box<sessions::Append>),
    /// A worker's transcript commit: append only on the expected last entry.
    Commit(Box<sessions::Commit>),
    History(Box<sessions::HistoryQuery>),
    /// `chat.history {cursor}`: the messages after the cursor.
    HistoryDelta(Box<sessions::DeltaQuery>),
    /// `sessions.branches.list`.
    Branches {
        key: String,
    },
    ListSessions(Box<sessions::ListQuery>),
    PatchSession {
        key: String,
        agent_id: String,
        patch: serde_json::Map<String, Value>,
    },
    ResetSession {
        key: String,
        agent_id: String,
    },
    DeleteSession {
        key: String,
        transcript: bool,
    },
    /// This host takes over a session whose owner host died: the runs it had going were cut
    /// off and end as `interrupted` (like a restart's, for one session). Answers
    /// `{interrupted: [{runId, startedAt}], at}`.
    AdoptSession {
        key: String,
    },
    /// Another host's committed session change, number `seq` of the cluster's record: applied
    /// to this cache, and the record's position remembered in the same transaction.
    SessionSync {
        seq: u64,
        rows: Vec<u8>,
    },
    /// How far this cache has applied the cluster's record (`OpResult::Json(seq)`).
    SyncCursor,
    /// A node connected declaring this surface: record a pending request unless the approved
    /// surface already covers it.
    RequestNodeSurface(Box<crate::nodes::surface::PendingSurface>),
    /// Approve or reject a pending node surface request.
    ResolveNodeSurface {
        request_id: String,
        approve: bool,
    },
    /// Forget a node's approved and pending surfaces.
    RemoveNode {
        node_id: String,
    },
    RenameNode {
        node_id: String,
        display_name: String,
    },
    /// An `allow-always` decision, kept as a grant.
    AddGrant {
        approval_id: String,
        request: Value,
    },
    ListGrants {
        limit: u64,
    },
    RevokeGrant {
        grant_id: String,
    },
    GetPolicy,
    SetPolicy {
        file: Value,
        base_hash: Option<String>,
    },
    /// `skills.status` / `skills.bins` (directory scans stay off the shards).
    Skills {
        settings: Box<crate::skills::SkillsSettings>,
        agent_id: String,
        bins: bool,
    },
    /// Every cron job (the owner shard's start-up).
    CronLoad,
    /// Insert or replace a cron job (`job` is its JSON).
    CronSave {
        id: String,
        job: String,
    },
    CronDelete {
        id: String,
    },
    /// A finished run: the job's new state (`None` when the run deleted it) and the log entry.
    CronFinish {
        id: String,
        job: Option<String>,
        ts: u64,
        entry: String,
    },
    /// The newest run log entries, of one job or all.
    CronRuns {
        job_id: Option<String>,
        limit: u64,
    },
    /// `usage.status`.
    UsageStatus,
    /// `usage.cost`.
    UsageCost(Box<usage::CostQuery>),
    /// Record a resolved approval for `approval.history`.
    RecordApproval {
        kind: String,
        snapshot: Value,
    },
    /// `approval.history {cursor?, limit, kind?}`.
    ApprovalHistory {
        cursor: Option<String>,
        limit: u64,
        kind: Option<String>,
    },
    /// `sessions.usage` (a read on the scan thread's connection).
    SessionsUsage(Box<usage_sessions::SessionsUsageQuery>),
    /// `config.*`: the config file is read and written here, one request at a time.
    Config(config::ConfigOp),
    /// A sign of life (see [`Store::ping`]).
    Ping,
    /// `users.prefs.get`.
    PrefsGet {
        keys: Option<Vec<String>>,
    },
    /// `users.prefs.set`.
    PrefsSet {
        entries: serde_json::Map<String, Value>,
        expected: Option<serde_json::Map<String, Value>>,
    },
    /// `system.info` (host facts, read on the scan thread).
    SystemInfo {
        state_dir: PathBuf,
        port: u16,
        uptime_ms: u64,
        instance_id: String,
    },
    /// `logs.tail` (file reads stay off the shards).
    LogTail {
        dir: PathBuf,
        cursor: Option<u64>,
        limit: u64,
        max_bytes: u64,
    },
}

/// What an [`Op`] produced.
#[derive(Debug, Clone)]
pub enum OpResult {
    Approved {
        request_id: String,
        device: Arc<PairedDevice>,
        token: Option<DeviceToken>,
    },
    Pending {
        request_id: String,
    },
    Token(DeviceToken),
    Rejected {
        request_id: String,
        device_id: String,
    },
    Removed {
        device_id: String,
        removed_at_ms: u64,
    },
    Renamed {
        device_id: String,
        label: String,
    },
    Revoked {
        device_id: String,
        role: String,
        revoked_at_ms: u64,
    },
    List {
        pending: Vec<PendingRequest>,
        paired: Vec<Arc<PairedDevice>>,
    },
    Appended(Box<sessions::Appended>),
    Committed(Box<sessions::Committed>),
    /// The run an append would start is already recorded (a retried idempotency key).
    DuplicateRun(Box<sessions::RecentRun>),
    History(Box<sessions::HistoryPage>),
    Delta(Box<sessions::DeltaPage>),
    Sessions {
        rows: Vec<Value>,
        total: u64,
    },
    /// A session row after a change.
    Session(Value),
    /// Whether a session existed before its deletion.
    Deleted(bool),
    /// A JSON answer computed by the storage thread.
    Json(Value),
    /// A node device after a surface change (`request_id` of the resolved request, if any).
    Node {
        device: Arc<PairedDevice>,
        request_id: Option<String>,
    },
    /// `INVALID_REQUEST` with this message.
    Invalid(String),
    /// The write did not become durable.
    Failed(String),
}

struct Cmd {
    op: Op,
    done: Arc<Oneshot<OpResult>>,
}

/// Handle to the storage thread (cheap to clone, `Send`).
#[derive(Clone)]
pub struct Store {
    /// When the storage thread last finished a batch (ms since the epoch): `/readyz` reports
    /// the store failing when this goes stale while pings are sent ([`Store::ping`]).
    beat: Arc<std::sync::atomic::AtomicU64>,
    /// Group-commit figures, written by the storage thread (`ringgate_store_*`).
    stats: Arc<StoreStats>,
    tx: channel::Sender<Cmd>,
    /// File-system scans (skills, log tails) run on their own thread: they never touch the
    /// database, and a slow directory must not delay a chat acknowledgement.
    scan_tx: channel::Sender<Cmd>,
}

/// The storage thread's group-commit figures (it writes them; a scrape reads them).
#[derive(Debug)]
pub struct StoreStats {
    /// Write operations per group commit.
    pub batch_size: crate::metrics::hist::SharedHist,
    /// The `COMMIT` statement's time (with `synchronous=FULL`, the fsyncs).
    pub commit_seconds: crate::metrics::hist::SharedHist,
    pub failed_commits: std::sync::atomic::AtomicU64,
}

impl Default for StoreStats {
    fn default() -> Self {
        use crate::metrics::hist::{SharedHist, BATCH_SIZE, LATENCY_SECONDS};
        StoreStats {
            batch_size: SharedHist::new(BATCH_SIZE),
            commit_seconds: SharedHist::new(LATENCY_SECONDS),
            failed_commits: Default::default(),
        }
    }
}

/// What the storage thread knows at start-up, for the shards' first replicas.
pub struct Boot {
    pub devices: Vec<Arc<PairedDevice>>,
    /// Runs that ended within the idempotency TTL (interrupted ones included).
    pub recent_runs: Vec<sessions::RecentRun>,
}

impl Store {
    /// Opens (creating or migrating) the database and starts the storage thread. Returns the
    /// paired devices for the shards' initial replicas.
    pub fn open(
        live: Arc<crate::config::Config>,
        hub: Arc<crate::channels::hub::ChannelHub>,
        publish: Arc<dyn Publish>,
    ) -> Result<(Store, Boot), StoreError> {
        let state_dir: &Path = &live.state_dir.clone();
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
            path: state_dir.into(),
            source,
        })?;
        let path = state_dir.join(STORE_FILE);
        let db_err = |e: rusqlite::Error| StoreError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        let conn = Connection::open(&path).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        // Every statement of the chat path stays prepared (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&conn).map_err(|message| StoreError::Db {
            path: path.clone(),
            message,
        })?;
        let now = now_ms();
        let interrupted = sessions::recover(&conn, now).map_err(db_err)?;
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "runs cut off by the last stop are marked interrupted"
            );
        }
        let recent_runs = sessions::recent_runs(&conn, now.saturating_sub(sessions::RUN_MEMORY_MS))
            .map_err(db_err)?;
        let devices = load(&conn).map_err(|message| StoreError::Db {
            path: path.clone(),
            message,
        })?;
        let snapshot: Vec<Arc<PairedDevice>> = devices.values().cloned().map(Arc::new).collect();
        let (tx, rx) = channel::unbounded();
        let beat = Arc::new(std::sync::atomic::AtomicU64::new(now_ms()));
        let stats = Arc::new(StoreStats::default());
        let (scan_tx, scan_rx) = channel::unbounded::<Cmd>();
        // Analytic reads (usage) run on the scan thread's own read-only connection: WAL lets
        // them read while the storage thread writes, so they never delay a chat ack.
        let reader = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        reader
            .busy_timeout(Duration::from_secs(5))
            .map_err(db_err)?;
        std::thread::Builder::new()
            .name("ringgate-scan".into())
            .spawn(move || {
                while let Ok(cmd) = scan_rx.recv() {
                    let r = scan(&reader, &cmd.op);
                    cmd.done.complete(r);
                }
            })
            .map_err(|source| StoreError::Dir {
                path: state_dir.into(),
                source,
            })?;
        let sessions = sessions_summary::Tracker::load(&conn).map_err(db_err)?;
        let capture = publish
            .replicates()
            .then(|| replica::Capture::install(&conn))
            .transpose()
            .map_err(db_err)?;
        let state = StoreState {
            conn,
            devices,
            pending: HashMap::new(),
            publish,
            config: config::ConfigKeeper::new(live, hub),
            beat: beat.clone(),
            stats: stats.clone(),
            sessions,
            summary_at_ms: 0,
            capture,
        };
        std::thread::Builder::new()
            .name("ringgate-store".into())
            .spawn(move || state.run(rx))
            .map_err(|source| StoreError::Dir {
                path: state_dir.into(),
                source,
            })?;
        Ok((
            Store {
                beat,
                stats,
                tx,
                scan_tx,
            },
            Boot {
                devices: snapshot,
                recent_runs,
            },
        ))
    }

    /// Asks the storage thread for a sign of life (answered like any read).
    pub fn ping(&self) {
        self.submit(Op::Ping);
    }

    /// Operations waiting for the storage thread, and its group-commit figures.
    pub fn stats(&self) -> (usize, &StoreStats) {
        (self.tx.len(), &self.stats)
    }

    /// When the storage thread last finished a batch (ms since the epoch).
    pub fn last_beat_ms(&self) -> u64 {
        self.beat.load(std::sync::atomic::Ordering::Acquire)
    }

    fn queue(&self, op: &Op) -> &channel::Sender<Cmd> {
        if op.is_scan() {
            &self.scan_tx
        } else {
            &self.tx
        }
    }

    /// Sends an op without waiting for its result (the storage thread logs failures).
    pub fn submit(&self, op: Op) {
        let _ = self.queue(&op).send(Cmd {
            op,
            done: Oneshot::new(),
        });
    }

    /// Sends an op and waits (asynchronously) for its durable result.
    pub async fn call(&self, op: Op) -> OpResult {
        let done = Oneshot::new();
        if self
            .queue(&op)
            .send(Cmd {
                op,
                done: done.clone(),
            })
            .is_err()
        {
            return OpResult::Failed("state store stopped".into());
        }
        done.wait().await
    }
}

impl Op {
    /// A file-system scan or an analytic read: served by the scan thread.
    fn is_scan(&self) -> bool {
        matches!(
            self,
            Op::Skills { .. }
                | Op::LogTail { .. }
                | Op::SystemInfo { .. }
                | Op::UsageStatus
                | Op::UsageCost(_)
                | Op::SessionsUsage(_)
        )
    }

    /// The record key of a write a cluster replicates: the session a write to the session
    /// tables is for, or [`replica::CRON_KEY`] for cron's.
    fn record_key(&self) -> Option<&str> {
        match self {
            Op::CronSave { .. } | Op::CronDelete { .. } | Op::CronFinish { .. } => {
                Some(replica::CRON_KEY)
            }
            Op::Append(a) => Some(&a.key),
            Op::Commit(c) => Some(&c.key),
            Op::PatchSession { key, .. }
            | Op::ResetSession { key, .. }
            | Op::DeleteSession { key, .. }
            | Op::AdoptSession { key } => Some(key),
            _ => None,
        }
    }

    /// Reads the database without writing: served after the batch's transaction commits, so
    /// a read never delays the acknowledgement of a write.
    fn is_read(&self) -> bool {
        matches!(
            self,
            Op::List
                | Op::Ping
                | Op::PrefsGet { .. }
                | Op::History(_)
                | Op::HistoryDelta(_)
                | Op::Branches { .. }
                | Op::ListSessions(_)
                | Op::ListGrants { .. }
                | Op::GetPolicy
                | Op::ApprovalHistory { .. }
                | Op::CronLoad
                | Op::CronRuns { .. }
                | Op::SyncCursor
        )
    }

    /// Changes the in-memory pending pairing requests (restored if the op fails).
    fn touches_pending(&self) -> bool {
        matches!(
            self,
            Op::RequestPairing { .. } | Op::Approve { .. } | Op::Reject { .. }
        )
    }
}

/// Serves a scan on the scan thread (`reader` is its read-only connection).
fn scan(reader: &Connection, op: &Op) -> OpResult {
    let now = now_ms();
    let read = |r: rusqlite::Result<Value>| match r {
        Ok(v) => OpResult::Json(v),
        Err(e) => OpResult::Failed(format!("state store read failed: {e}")),
    };
    match op {
        Op::UsageStatus => read(usage::status(reader, now)),
        Op::UsageCost(q) => read(usage::cost_summary(reader, q, now)),
        Op::SessionsUsage(q) => read(usage_sessions::sessions_usage(reader, q, now)),
        Op::Skills {
            settings,
            agent_id,
            bins,
        } => OpResult::Json(if *bins {
            crate::skills::skills_bins(settings)
        } else {
            crate::skills::skills_status_for_process(settings, agent_id)
        }),
        Op::LogTail {
            dir,
            cursor,
            limit,
            max_bytes,
        } => match crate::logs::tail(dir, *cursor, *limit, *max_bytes) {
            Ok(v) => OpResult::Json(v),
            Err(m) => OpResult::Failed(m),
        },
        Op::SystemInfo {
            state_dir,
            port,
            uptime_ms,
            instance_id,
        } => OpResult::Json(crate::sysinfo::system_info(
            state_dir,
            *port,
            *uptime_ms,
            instance_id,
        )),
        _ => OpResult::Invalid("not a scan".into()),
    }
}

fn migrate(conn: &Connection) -> Result<(), String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )
    .map_err(|e| e.to_string())?;
    let version: usize = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(|e| e.to_string())?
        .map(|v| v.parse().unwrap_or(usize::MAX))
        .unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(format!(
            "schema version {version} is newer than this ringgate supports ({}); upgrade ringgate",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN; {sql} INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '{}'); COMMIT;",
            i + 1
        ))
        .map_err(|e| format!("migration {} failed: {e}", i + 1))?;
    }
    Ok(())
}

fn load(conn: &Connection) -> Result<HashMap<String, PairedDevice>, String> {
    let mut stmt = conn
        .prepare("SELECT device_id, row FROM devices")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for row in rows {
        let (id, json) = row.map_err(|e| e.to_string())?;
        let d: PairedDevice = serde_json::from_str(&json)
            .map_err(|e| format!("device row {id} is unreadable: {e}"))?;
        out.insert(id, d);
    }
    Ok(out)
}

/// What the storage thread announces to every shard after a commit.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A paired-device change (already durable), for the shards' replicas (and, in a
    /// cluster, the shared record).
    Device(DeviceDelta),
    /// A paired-device change that came from the cluster's shared record (already durable
    /// here), for the shards' replicas only.
    DeviceSynced(DeviceDelta),
    /// An event to fan out.
    Broadcast(Arc<crate::proto::frame::EventTemplate>),
    /// Session counts and the newest sessions.
    Sessions(Arc<sessions_summary::Summary>),
    /// A new live config (already on disk).
    Config(Arc<config::ConfigUpdate>),
}

/// Delivers the storage thread's notices to every shard. The gateway's bus implements it,
/// waiting for room in a full inbox rather than dropping a notice; the store names no shard
/// type, so the storage layer sits below the shards.
pub trait Publish: Send + Sync {
    fn to_every_shard(&self, n: Notice);

    /// Whether session writes go to a replicated record before their callers hear of them
    /// (a cluster, [`replica`]).
    fn replicates(&self) -> bool {
        false
    }

    /// Hands a batch's session changes to the replicated record; the record delivers the
    /// held results once it has them.
    fn replicate(&self, r: replica::Replica) {
        r.complete();
    }
}

struct StoreState {
    beat: Arc<std::sync::atomic::AtomicU64>,
    stats: Arc<StoreStats>,
    conn: Connection,
    devices: HashMap<String, PairedDevice>,
    pending: HashMap<String, PendingRequest>,
    publish: Arc<dyn Publish>,
    config: config::ConfigKeeper,
    /// Session counts and the newest sessions, kept from committed writes.
    sessions: sessions_summary::Tracker,
    /// When the last summary was sent.
    summary_at_ms: u64,
    /// In a cluster: session writes are captured for its record ([`replica`]).
    capture: Option<replica::Capture>,
}

/// What one op changed, to publish after commit.
#[derive(Default)]
struct Changes {
    upserts: Vec<String>,
    removed: Vec<String>,
    /// The device changes came from the cluster's shared record (not to be sent back).
    from_cluster: bool,
    /// Of a batch: device changes synced from the cluster.
    synced_upserts: Vec<String>,
    synced_removed: Vec<String>,
    events: Vec<EventTemplate>,
    /// Sessions created, touched or deleted (for the sessions summary).
    sessions: Vec<sessions_summary::Change>,
}

impl Changes {
    /// A session's row after a write, for the sessions summary (`created`: it was not there
    /// before).
    fn session_row(&mut self, created: bool, row: &Value) {
        if let Some(recent) = sessions_summary::Recent::from_row(row) {
            if created {
                self.sessions.push(sessions_summary::Change::Created {
                    agent: recent.agent_id.clone(),
                });
            }
            self.sessions
                .push(sessions_summary::Change::Touched(recent));
        }
    }

    /// A session of agent `agent` (if it existed) is gone.
    fn session_deleted(&mut self, agent: Option<String>, key: String) {
        if let Some(agent) = agent {
            self.sessions
                .push(sessions_summary::Change::Deleted { agent, key });
        }
    }

    fn absorb(&mut self, other: Changes) {
        if other.from_cluster {
            // Kept apart: a batch's own changes go to the cluster, synced ones do not.
            self.synced_upserts.extend(other.upserts);
            self.synced_removed.extend(other.removed);
            self.events.extend(other.events);
            self.sessions.extend(other.sessions);
            return;
        }
        self.upserts.extend(other.upserts);
        self.removed.extend(other.removed);
        self.events.extend(other.events);
        self.sessions.extend(other.sessions);
    }
}

fn resolved_event(request_id: &str, device_id: &str, decision: &str) -> EventTemplate {
    EventTemplate::new(
        "device.pair.resolved",
        &json!({"requestId": request_id, "deviceId": device_id, "decision": decision, "ts": now_ms()}),
        None,
    )
}

fn mint(role: &str, scopes: &[String], now: u64) -> DeviceToken {
    DeviceToken {
        token: pairing::new_token(),
        role: role.to_owned(),
        scopes: scopes.to_vec(),
        created_at_ms: now,
        rotated_at_ms: None,
        revoked_at_ms: None,
        last_used_at_ms: None,
    }
}

/// The device's reusable token for the role, else a newly minted one stored on the row
/// (`true` when minted).
fn token_for(d: &mut PairedDevice, role: &str, scopes: &[String], now: u64) -> (DeviceToken, bool) {
    if let Some(t) = pairing::reusable_token(d, role, scopes) {
        return (t.clone(), false);
    }
    let t = mint(role, scopes, now);
    d.tokens.insert(role.to_owned(), t.clone());
    (t, true)
}

/// Does the caller hold every scope (admin holds all)?
fn caller_covers(caller: &ScopeSet, scopes: &[String]) -> bool {
    scopes
        .iter()
        .all(|s| match crate::proto::scopes::Scope::parse(s) {
            Some(sc) => caller.satisfies(sc),
            None => caller.has(crate::proto::scopes::Scope::Admin),
        })
}

fn union(into: &mut Vec<String>, add: &[String]) {
    for s in add {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
}

impl StoreState {
    fn run(mut self, rx: Receiver<Cmd>) {
        self.publish_sessions(now_ms());
        loop {
            // With sessions changed, wake by the time the next summary is due.
            let first = if self.sessions.dirty() {
                let due = self.summary_at_ms + sessions_summary::MIN_INTERVAL_MS;
                let wait = Duration::from_millis(due.saturating_sub(now_ms()));
                match rx.recv_timeout(wait) {
                    Ok(c) => Some(c),
                    Err(channel::RecvTimeoutError::Timeout) => None,
                    Err(channel::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                self.apply_batch(batch);
            }
            let now = now_ms();
            if self.sessions.dirty()
                && now >= self.summary_at_ms + sessions_summary::MIN_INTERVAL_MS
            {
                self.publish_sessions(now);
            }
        }
    }

    /// Sends every shard the sessions summary; a failed read is logged and retried later.
    fn publish_sessions(&mut self, now: u64) {
        self.summary_at_ms = now;
        match self.sessions.summary(&self.conn) {
            Ok(s) => self.publish.to_every_shard(Notice::Sessions(Arc::new(s))),
            Err(e) => tracing::warn!(error = %e, "cannot read the sessions summary"),
        }
    }

    fn apply_batch(&mut self, batch: Vec<Cmd>) {
        // Config requests touch the config file, not the database: served in order, outside
        // the transaction.
        let (configs, batch): (Vec<Cmd>, Vec<Cmd>) = batch
            .into_iter()
            .partition(|c| matches!(c.op, Op::Config(_)));
        for cmd in configs {
            let Op::Config(op) = &cmd.op else { continue };
            let (r, update) = self.config_op(op);
            // Every shard's inbox gets the new config before the writer gets its answer, so
            // the writer's next request (on any shard) is served under it. Shared-secret
            // closes wait a moment on each shard, so the writer still reads its answer.
            if let Some(u) = update {
                tracing::info!(
                    auth_changed = u.auth_changed,
                    "config applied on every shard"
                );
                self.publish.to_every_shard(Notice::Config(Arc::new(u)));
            }
            cmd.done.complete(r);
        }
        if batch.is_empty() {
            return;
        }
        let (reads, writes): (Vec<Cmd>, Vec<Cmd>) = batch.into_iter().partition(|c| c.op.is_read());
        if !writes.is_empty() {
            self.apply_writes(writes);
        }
        // Reads run outside the write transaction, after the writers have their answers.
        let now = now_ms();
        for cmd in reads {
            let r = self.apply(&cmd.op, now, &mut Changes::default());
            cmd.done.complete(r);
        }
        self.beat
            .store(now_ms(), std::sync::atomic::Ordering::Release);
    }

    /// Applies writes in one transaction (group commit), each op in its own savepoint: an op
    /// that fails leaves nothing behind — in the database or in memory — and its neighbours
    /// still commit. Results are delivered only after the commit is durable.
    fn apply_writes(&mut self, batch: Vec<Cmd>) {
        let now = now_ms();
        self.expire_pending(now);
        // Pending requests live only in memory: kept to restore them if the commit fails.
        let pending_at_start = batch
            .iter()
            .any(|c| c.op.touches_pending())
            .then(|| self.pending.clone());
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "state store cannot begin a transaction");
            for cmd in batch {
                cmd.done
                    .complete(OpResult::Failed(format!("state store write failed: {e}")));
            }
            return;
        }
        let mut changes = Changes::default();
        let capture = self.capture.is_some();
        let mut captured: Vec<Option<replica::SessionChange>> = Vec::with_capacity(batch.len());
        let results: Vec<OpResult> = batch
            .iter()
            .map(|c| {
                let (r, change) = if capture && c.op.record_key().is_some() {
                    self.apply_captured(&c.op, now, &mut changes)
                } else {
                    (self.apply_in_savepoint(&c.op, now, &mut changes), None)
                };
                captured.push(change);
                r
            })
            .collect();
        let commit_started = std::time::Instant::now();
        let committed = self.conn.execute_batch("COMMIT");
        self.stats
            .commit_seconds
            .observe(commit_started.elapsed().as_secs_f64());
        self.stats.batch_size.observe(batch.len() as f64);
        match committed {
            Ok(()) => {
                self.publish(changes);
                // Results of ops whose session changes go to the cluster's record wait for
                // it; the others are delivered now.
                let mut replica = replica::Replica::new();
                for ((cmd, r), change) in batch.into_iter().zip(results).zip(captured) {
                    match change {
                        Some(change) => {
                            replica.changes.push(change);
                            replica.hold(cmd.done, r);
                        }
                        None => cmd.done.complete(r),
                    }
                }
                if !replica.is_empty() {
                    self.publish.replicate(replica);
                }
            }
            Err(e) => {
                self.stats
                    .failed_commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "state store commit failed; reloading from disk");
                let _ = self.conn.execute_batch("ROLLBACK");
                self.reload_devices();
                if let Some(p) = pending_at_start {
                    self.pending = p;
                }
                for cmd in batch {
                    cmd.done
                        .complete(OpResult::Failed(format!("state store write failed: {e}")));
                }
            }
        }
    }

    /// A session write whose rows are captured for the cluster's record (`None` when it
    /// failed or wrote nothing: its result is delivered at commit).
    fn apply_captured(
        &mut self,
        op: &Op,
        now: u64,
        batch: &mut Changes,
    ) -> (OpResult, Option<replica::SessionChange>) {
        if let Err(e) = replica::Capture::clear(&self.conn) {
            return (
                OpResult::Failed(format!("state store write failed: {e}")),
                None,
            );
        }
        let r = self.apply_in_savepoint(op, now, batch);
        if matches!(r, OpResult::Failed(_)) {
            return (r, None);
        }
        match replica::Capture::take(&self.conn) {
            Ok(rows) if rows.is_empty() => (r, None),
            Ok(rows) => {
                let key = op.record_key().unwrap_or_default().to_owned();
                (r, Some(replica::SessionChange { key, rows }))
            }
            Err(e) => {
                // Written here but not capturable: the caller must not hear it was kept.
                tracing::error!(error = %e, "cannot capture a session change for the cluster");
                (
                    OpResult::Failed(format!("cannot capture the change for the cluster: {e}")),
                    None,
                )
            }
        }
    }

    /// One write op inside `SAVEPOINT op`: on failure everything it wrote is rolled back and
    /// the in-memory state it changed is restored; on success its changes join the batch's.
    fn apply_in_savepoint(&mut self, op: &Op, now: u64, batch: &mut Changes) -> OpResult {
        if let Err(e) = self
            .conn
            .prepare_cached("SAVEPOINT op")
            .and_then(|mut s| s.execute([]))
        {
            return OpResult::Failed(format!("state store write failed: {e}"));
        }
        let pending_before = op.touches_pending().then(|| self.pending.clone());
        let mut ch = Changes::default();
        let r = self.apply(op, now, &mut ch);
        let failed = match (&r, self.persist(&ch)) {
            (OpResult::Failed(m), _) => Some(m.clone()),
            (_, Err(e)) => Some(format!("state store write failed: {e}")),
            _ => None,
        };
        let Some(message) = failed else {
            if let Err(e) = self
                .conn
                .prepare_cached("RELEASE op")
                .and_then(|mut s| s.execute([]))
            {
                tracing::error!(error = %e, "state store cannot release a savepoint");
            }
            batch.absorb(ch);
            return r;
        };
        tracing::error!(error = %message, "state store op failed; its writes are rolled back");
        if let Err(e) = self.conn.execute_batch("ROLLBACK TO op; RELEASE op") {
            tracing::error!(error = %e, "state store cannot roll back a savepoint");
        }
        if !ch.upserts.is_empty() || !ch.removed.is_empty() {
            self.reload_devices();
        }
        if let Some(p) = pending_before {
            self.pending = p;
        }
        OpResult::Failed(message)
    }

    /// Replaces the in-memory devices with what the database (this transaction) holds.
    fn reload_devices(&mut self) {
        match load(&self.conn) {
            Ok(devices) => self.devices = devices,
            Err(e) => tracing::error!(error = %e, "state store cannot reload devices"),
        }
    }

    /// Writes the batch's device changes (inside the batch's transaction).
    fn persist(&mut self, changes: &Changes) -> Result<(), rusqlite::Error> {
        for id in &changes.upserts {
            if let Some(d) = self.devices.get(id) {
                let row = serde_json::to_string(d).unwrap_or_default();
                self.conn.execute(
                    "INSERT OR REPLACE INTO devices (device_id, row, updated_at_ms) VALUES (?1, ?2, ?3)",
                    params![id, row, now_ms() as i64],
                )?;
            }
        }
        for id in &changes.removed {
            self.conn
                .execute("DELETE FROM devices WHERE device_id = ?1", params![id])?;
        }
        Ok(())
    }

    /// Runs a write to a session row and notes what it changed for the sessions summary, from
    /// the row the write answers with. An append (the per-message write) says itself whether
    /// it created the session; a patch, reset or delete (rare) looks the row up first.
    fn apply_session_write(&mut self, op: &Op, now: u64, ch: &mut Changes) -> OpResult {
        let key = match op {
            Op::PatchSession { key, .. }
            | Op::ResetSession { key, .. }
            | Op::DeleteSession { key, .. } => Some(key),
            _ => None,
        };
        let before = match key.map(|k| sessions::agent_of(&self.conn, k)).transpose() {
            Ok(a) => a.flatten(),
            Err(e) => return OpResult::Failed(format!("state store read failed: {e}")),
        };
        let r = self.apply_session(op, now);
        let (created, row) = match (&r, op) {
            (OpResult::Appended(x), _) => (x.created, &x.row),
            (OpResult::Committed(x), _) => match &**x {
                sessions::Committed::Done { row, .. } => (false, row),
                sessions::Committed::StaleBase { .. } => return r,
            },
            (OpResult::Session(row), _) => (before.is_none(), row),
            (OpResult::Deleted(true), Op::DeleteSession { key, .. }) => {
                ch.session_deleted(before, key.clone());
                return r;
            }
            _ => return r,
        };
        ch.session_row(created, row);
        r
    }

    /// Applies another host's session change from the cluster's record and notes what it
    /// did to the sessions summary. A changeset SQLite refuses is counted as applied (the
    /// record cannot be corrected from here; the next change to those rows replaces them).
    fn apply_sync(&mut self, seq: u64, rows: &[u8], ch: &mut Changes) -> OpResult {
        let Some(capture) = self.capture.clone() else {
            return OpResult::Invalid("not in a cluster".into());
        };
        let keys = replica::Capture::keys(rows);
        let mut before = Vec::with_capacity(keys.len());
        for k in &keys {
            match sessions::agent_of(&self.conn, k) {
                Ok(a) => before.push(a),
                Err(e) => return OpResult::Failed(format!("state store read failed: {e}")),
            }
        }
        // All of the change or none of it: a malformed one is skipped whole.
        let applied = self
            .conn
            .execute_batch("SAVEPOINT sync")
            .map_err(|e| e.to_string())
            .and_then(|()| capture.apply(&self.conn, rows));
        let _ = match applied {
            Ok(_) => self.conn.execute_batch("RELEASE sync"),
            Err(e) => {
                tracing::error!(seq, error = %e, "a session change from the cluster's record cannot be applied; skipped");
                self.conn.execute_batch("ROLLBACK TO sync; RELEASE sync")
            }
        };
        // Rows from the record are not this host's to send back.
        if let Err(e) = replica::Capture::clear(&self.conn) {
            return OpResult::Failed(format!("state store write failed: {e}"));
        }
        for (key, agent_before) in keys.into_iter().zip(before) {
            match sessions::row(&self.conn, &key) {
                Ok(Some(row)) => ch.session_row(agent_before.is_none(), &row),
                Ok(None) => ch.session_deleted(agent_before, key),
                Err(e) => return OpResult::Failed(format!("state store read failed: {e}")),
            }
        }
        match self.conn.execute(
            "INSERT OR REPLACE INTO cluster_cursor (stream, seq) VALUES ('sessions', ?1)",
            params![seq as i64],
        ) {
            Ok(_) => OpResult::Json(json!(seq)),
            Err(e) => OpResult::Failed(format!("state store write failed: {e}")),
        }
    }

    /// How far this cache has applied the cluster's session record (0: nothing yet).
    fn sync_cursor(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row(
                "SELECT seq FROM cluster_cursor WHERE stream = 'sessions'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|s| s.unwrap_or(0).max(0) as u64)
    }

    /// Runs a session op against the open transaction.
    fn apply_session(&mut self, op: &Op, now: u64) -> OpResult {
        let c = &self.conn;
        let r = match op {
            Op::Append(a) => sessions::append(c, a, now).map(|x| match x {
                sessions::AppendOutcome::Appended(x) => OpResult::Appended(Box::new(x)),
                sessions::AppendOutcome::NoSession => {
                    OpResult::Invalid(format!("session not found: {}", a.key))
                }
                sessions::AppendOutcome::DuplicateRun(r) => OpResult::DuplicateRun(r),
            }),
            Op::Commit(k) => sessions::commit(c, k, now).map(|x| OpResult::Committed(Box::new(x))),
            Op::History(q) => sessions::history(c, q).map(|x| OpResult::History(Box::new(x))),
            Op::HistoryDelta(q) => sessions::delta(c, q).map(|x| OpResult::Delta(Box::new(x))),
            Op::Branches { key } => sessions::branches(c, key).map(OpResult::Json),
            Op::PrefsGet { keys } => prefs::get(c, keys.as_deref()).map(OpResult::Json),
            Op::PrefsSet { entries, expected } => prefs::set(c, entries, expected.as_ref(), now)
                .map(|r| match r {
                    Ok(v) => OpResult::Json(v),
                    Err(m) => OpResult::Invalid(m),
                }),
            Op::ListSessions(q) => {
                sessions::list(c, q, now).map(|(rows, total)| OpResult::Sessions { rows, total })
            }
            Op::PatchSession {
                key,
                agent_id,
                patch,
            } => sessions::patch(c, key, agent_id, patch, now).map(OpResult::Session),
            Op::ResetSession { key, agent_id } => {
                sessions::reset(c, key, agent_id, now).map(OpResult::Session)
            }
            Op::DeleteSession { key, transcript } => {
                sessions::delete(c, key, *transcript).map(OpResult::Deleted)
            }
            Op::AddGrant {
                approval_id,
                request,
            } => approvals::add_grant(c, approval_id, request, now)
                .map(|id| OpResult::Json(json!({"grantId": id}))),
            Op::ListGrants { limit } => {
                approvals::list_grants(c, *limit).map(|g| OpResult::Json(json!({"grants": g})))
            }
            Op::RevokeGrant { grant_id } => approvals::revoke_grant(c, grant_id, now)
                .map(|o| OpResult::Json(json!({"outcome": o}))),
            Op::GetPolicy => approvals::get_policy(c).map(OpResult::Json),
            Op::RecordApproval { kind, snapshot } => approvals::record_history(c, kind, snapshot)
                .map(|()| OpResult::Json(json!({"ok": true}))),
            Op::ApprovalHistory {
                cursor,
                limit,
                kind,
            } => {
                approvals::history(c, cursor.as_deref(), *limit, kind.as_deref()).map(|r| match r {
                    Ok(v) => OpResult::Json(v),
                    Err(m) => OpResult::Invalid(m),
                })
            }
            Op::CronLoad => cron::load_jobs(c).map(|j| OpResult::Json(Value::Array(j))),
            Op::CronSave { id, job } => {
                cron::save_job(c, id, job, now).map(|()| OpResult::Json(json!({"ok": true})))
            }
            Op::CronDelete { id } => {
                cron::delete_job(c, id).map(|existed| OpResult::Json(json!({"removed": existed})))
            }
            Op::CronFinish { id, job, ts, entry } => (|| {
                match job {
                    Some(j) => cron::save_job(c, id, j, now)?,
                    None => {
                        cron::delete_job(c, id)?;
                    }
                }
                cron::append_run(c, id, *ts, entry)
            })()
            .map(|()| OpResult::Json(json!({"ok": true}))),
            Op::CronRuns { job_id, limit } => {
                cron::runs(c, job_id.as_deref(), *limit).map(|r| OpResult::Json(Value::Array(r)))
            }
            Op::SetPolicy { file, base_hash } => {
                approvals::set_policy(c, file.clone(), base_hash.as_deref()).map(|r| match r {
                    Ok(v) => OpResult::Json(v),
                    Err(m) => OpResult::Invalid(m),
                })
            }
            _ => return OpResult::Invalid("not a session op".into()),
        };
        r.unwrap_or_else(|e| {
            tracing::error!(error = %e, "session store operation failed");
            OpResult::Failed(format!("state store write failed: {e}"))
        })
    }

    fn config_op(&mut self, op: &config::ConfigOp) -> (OpResult, Option<config::ConfigUpdate>) {
        use config::ConfigOp;
        match op {
            ConfigOp::Get => (OpResult::Json(self.config.get()), None),
            ConfigOp::Write {
                mode,
                raw,
                base_hash,
                replace_paths,
            } => match self
                .config
                .write(*mode, raw, base_hash.as_deref(), replace_paths)
            {
                Ok((answer, update)) => (OpResult::Json(answer), update),
                Err(m) => (OpResult::Invalid(m), None),
            },
            ConfigOp::Reload => match self.config.reload() {
                Ok(u) => (
                    OpResult::Json(json!({"ok": true, "changed": u.is_some()})),
                    u,
                ),
                Err(m) => {
                    tracing::warn!(error = %m, "config reload refused; the running config stays");
                    (OpResult::Invalid(m), None)
                }
            },
        }
    }

    /// Sends replica deltas and events to every shard (never dropped: see [`Publish`]).
    fn publish(&mut self, changes: Changes) {
        for c in changes.sessions {
            self.sessions.note(c);
        }
        let own = changes.upserts.into_iter().map(|id| (id, true));
        let synced = changes.synced_upserts.into_iter().map(|id| (id, false));
        for (id, own) in own.chain(synced) {
            if let Some(d) = self.devices.get(&id) {
                let d = DeviceDelta::Upsert(Arc::new(d.clone()));
                self.publish.to_every_shard(if own {
                    Notice::Device(d)
                } else {
                    Notice::DeviceSynced(d)
                });
            }
        }
        for id in changes.removed {
            self.publish
                .to_every_shard(Notice::Device(DeviceDelta::Removed(id)));
        }
        for id in changes.synced_removed {
            self.publish
                .to_every_shard(Notice::DeviceSynced(DeviceDelta::Removed(id)));
        }
        for ev in changes.events {
            self.publish.to_every_shard(Notice::Broadcast(Arc::new(ev)));
        }
    }

    fn request_node_surface(
        &mut self,
        p: &crate::nodes::surface::PendingSurface,
        now: u64,
        ch: &mut Changes,
    ) -> OpResult {
        use crate::nodes::surface::{covered, live_pending};
        let Some(d) = self.devices.get_mut(&p.node_id) else {
            return OpResult::Invalid("unknown nodeId".into());
        };
        if covered(d, &p.commands) {
            return OpResult::Node {
                device: Arc::new(d.clone()),
                request_id: None,
            };
        }
        let same =
            live_pending(d, now).filter(|old| old.commands == p.commands && old.caps == p.caps);
        let mut next = p.clone();
        next.ts = now;
        match same {
            // A retry of the same request: refresh it, announce nothing.
            Some(old) => next.request_id = old.request_id.clone(),
            None => ch.events.push(EventTemplate::new(
                "node.pair.requested",
                &serde_json::to_value(&next).unwrap_or_default(),
                None,
            )),
        }
        let request_id = next.request_id.clone();
        d.pending_node_surface = Some(next);
        ch.upserts.push(p.node_id.clone());
        OpResult::Node {
            device: Arc::new(d.clone()),
            request_id: Some(request_id),
        }
    }

    fn resolve_node_surface(
        &mut self,
        request_id: &str,
        approve: bool,
        now: u64,
        ch: &mut Changes,
    ) -> OpResult {
        use crate::nodes::surface::{live_pending, NodeSurface};
        let Some(d) = self
            .devices
            .values_mut()
            .find(|d| live_pending(d, now).is_some_and(|p| p.request_id == request_id))
        else {
            return OpResult::Invalid("unknown requestId".into());
        };
        let p = d.pending_node_surface.take().expect("live pending");
        if approve {
            let created = d.node_surface.as_ref().map_or(now, |s| s.created_at_ms);
            d.node_surface = Some(NodeSurface {
                display_name: p.display_name.clone(),
                version: p.version.clone(),
                caps: p.caps.clone(),
                commands: p.commands.clone(),
                created_at_ms: created,
                approved_at_ms: now,
            });
        }
        let node: Arc<str> = Arc::from(p.node_id.as_str());
        ch.events.push(
            EventTemplate::new(
                "node.pair.resolved",
                &json!({"requestId": request_id, "nodeId": p.node_id,
                        "decision": if approve { "approved" } else { "rejected" }, "ts": now}),
                None,
            )
            .with_meta(crate::proto::frame::EventMeta {
                node: Some(node),
                ..Default::default()
            }),
        );
        ch.upserts.push(p.node_id.clone());
        OpResult::Node {
            device: Arc::new(d.clone()),
            request_id: Some(request_id.to_owned()),
        }
    }

    fn expire_pending(&mut self, now: u64) {
        self.pending
            .retain(|_, p| now.saturating_sub(p.ts) < PENDING_TTL_MS);
    }

    fn apply(&mut self, op: &Op, now: u64, ch: &mut Changes) -> OpResult {
        match op {
            Op::RequestPairing { pending, silent } => {
                self.request_pairing((**pending).clone(), *silent, now, ch)
            }
            Op::DeviceSync(delta) => {
                match delta {
                    DeviceDelta::Upsert(d) => {
                        if self.devices.get(&d.device_id) != Some(&**d) {
                            self.devices.insert(d.device_id.clone(), (**d).clone());
                            ch.upserts.push(d.device_id.clone());
                            ch.from_cluster = true;
                        }
                    }
                    DeviceDelta::Removed(id) => {
                        if self.devices.remove(id).is_some() {
                            ch.removed.push(id.clone());
                            ch.from_cluster = true;
                        }
                    }
                }
                OpResult::Json(Value::Null)
            }
            Op::EnsureToken {
                device_id,
                role,
                scopes,
            } => {
                let Some(d) = self.devices.get_mut(device_id) else {
                    return OpResult::Invalid("unknown deviceId".into());
                };
                let (t, minted) = token_for(d, role, scopes, now);
                if minted {
                    ch.upserts.push(device_id.clone());
                }
                OpResult::Token(t)
            }
            Op::Approve {
                request_id,
                caller,
                own_device,
            } => {
                let Some(p) = self.pending.get(request_id) else {
                    return OpResult::Invalid("unknown requestId".into());
                };
                if own_device.as_ref().is_some_and(|d| *d != p.device_id) {
                    return OpResult::Invalid("device pairing approval denied".into());
                }
                if let Err(msg) = pairing::approval_allowed(p, caller) {
                    return OpResult::Invalid(msg);
                }
                let p = self.pending.remove(request_id).expect("checked above");
                let device = self.approve(&p, "manual", now, ch);
                ch.events
                    .push(resolved_event(request_id, &p.device_id, "approved"));
                OpResult::Approved {
                    request_id: request_id.clone(),
                    device,
                    token: None,
                }
            }
            Op::Reject {
                request_id,
                own_device,
            } if own_device.as_ref().is_some_and(|d| {
                self.pending
                    .get(request_id)
                    .is_some_and(|p| p.device_id != *d)
            }) =>
            {
                OpResult::Invalid("device pairing rejection denied".into())
            }
            Op::Reject { request_id, .. } => match self.pending.remove(request_id) {
                None => OpResult::Invalid("unknown requestId".into()),
                Some(p) => {
                    ch.events
                        .push(resolved_event(request_id, &p.device_id, "rejected"));
                    OpResult::Rejected {
                        request_id: request_id.clone(),
                        device_id: p.device_id,
                    }
                }
            },
            Op::Remove { device_id } => match self.devices.remove(device_id) {
                None => OpResult::Invalid("unknown deviceId".into()),
                Some(_) => {
                    ch.removed.push(device_id.clone());
                    ch.events
                        .push(EventTemplate::new("device.pair.changed", &json!({}), None));
                    OpResult::Removed {
                        device_id: device_id.clone(),
                        removed_at_ms: now,
                    }
                }
            },
            Op::Rename { device_id, label } => match self.devices.get_mut(device_id) {
                None => OpResult::Invalid("unknown deviceId".into()),
                Some(d) => {
                    d.label = Some(label.clone());
                    ch.upserts.push(device_id.clone());
                    ch.events
                        .push(EventTemplate::new("device.pair.changed", &json!({}), None));
                    OpResult::Renamed {
                        device_id: device_id.clone(),
                        label: label.clone(),
                    }
                }
            },
            Op::Rotate {
                device_id,
                role,
                scopes,
                caller,
            } => {
                let Some(d) = self.devices.get_mut(device_id) else {
                    return OpResult::Invalid("unknown deviceId".into());
                };
                if !d.roles.contains(role) {
                    return OpResult::Invalid("device token rotation denied".into());
                }
                let scopes = scopes.clone().unwrap_or_else(|| {
                    d.tokens
                        .get(role)
                        .map(|t| t.scopes.clone())
                        .unwrap_or_else(|| d.approved_scopes.clone())
                });
                if role == "operator"
                    && (!pairing::covers(&d.approved_scopes, &scopes)
                        || !caller_covers(caller, &scopes))
                {
                    return OpResult::Invalid("device token rotation denied".into());
                }
                let mut t = mint(role, &scopes, now);
                t.rotated_at_ms = Some(now);
                d.tokens.insert(role.clone(), t.clone());
                ch.upserts.push(device_id.clone());
                OpResult::Token(t)
            }
            Op::Revoke {
                device_id,
                role,
                caller,
            } => {
                let Some(t) = self
                    .devices
                    .get_mut(device_id)
                    .and_then(|d| d.tokens.get_mut(role))
                else {
                    return OpResult::Invalid("device token revocation denied".into());
                };
                if role == "operator" && !caller_covers(caller, &t.scopes) {
                    return OpResult::Invalid("device token revocation denied".into());
                }
                let at = *t.revoked_at_ms.get_or_insert(now);
                ch.upserts.push(device_id.clone());
                OpResult::Revoked {
                    device_id: device_id.clone(),
                    role: role.clone(),
                    revoked_at_ms: at,
                }
            }
            Op::Append(_)
            | Op::Commit(_)
            | Op::PatchSession { .. }
            | Op::ResetSession { .. }
            | Op::DeleteSession { .. } => self.apply_session_write(op, now, ch),
            Op::AdoptSession { key } => match sessions::adopt(&self.conn, key, now) {
                Ok(cut) => OpResult::Json(json!({
                    "interrupted": cut
                        .into_iter()
                        .map(|(run, at)| json!({"runId": run, "startedAt": at}))
                        .collect::<Vec<_>>(),
                    "at": now,
                })),
                Err(e) => OpResult::Failed(format!("state store write failed: {e}")),
            },
            Op::SessionSync { seq, rows } => self.apply_sync(*seq, rows, ch),
            Op::SyncCursor => match self.sync_cursor() {
                Ok(seq) => OpResult::Json(json!(seq)),
                Err(e) => OpResult::Failed(format!("state store read failed: {e}")),
            },
            Op::History(_)
            | Op::HistoryDelta(_)
            | Op::Branches { .. }
            | Op::PrefsGet { .. }
            | Op::PrefsSet { .. }
            | Op::ListSessions(_)
            | Op::AddGrant { .. }
            | Op::ListGrants { .. }
            | Op::RevokeGrant { .. }
            | Op::GetPolicy
            | Op::SetPolicy { .. }
            | Op::RecordApproval { .. }
            | Op::ApprovalHistory { .. }
            | Op::CronLoad
            | Op::CronSave { .. }
            | Op::CronDelete { .. }
            | Op::CronFinish { .. }
            | Op::CronRuns { .. } => self.apply_session(op, now),
            // Served before the batch's transaction (see `apply_batch`).
            Op::Config(_) => OpResult::Invalid("config request in a database batch".into()),
            // Served by the scan thread (see `Store::call`).
            Op::Skills { .. }
            | Op::LogTail { .. }
            | Op::SystemInfo { .. }
            | Op::UsageStatus
            | Op::UsageCost(_)
            | Op::SessionsUsage(_) => scan(&self.conn, op),
            Op::Ping => OpResult::Json(Value::Null),
            Op::RequestNodeSurface(p) => self.request_node_surface(p, now, ch),
            Op::ResolveNodeSurface {
                request_id,
                approve,
            } => self.resolve_node_surface(request_id, *approve, now, ch),
            Op::RemoveNode { node_id } => match self.devices.get_mut(node_id) {
                Some(d) if d.node_surface.is_some() || d.pending_node_surface.is_some() => {
                    d.node_surface = None;
                    d.pending_node_surface = None;
                    ch.upserts.push(node_id.clone());
                    OpResult::Node {
                        device: Arc::new(d.clone()),
                        request_id: None,
                    }
                }
                _ => OpResult::Invalid("unknown nodeId".into()),
            },
            Op::RenameNode {
                node_id,
                display_name,
            } => match self.devices.get_mut(node_id) {
                Some(d) if d.roles.iter().any(|r| r == "node") => {
                    d.label = Some(display_name.clone());
                    if let Some(s) = d.node_surface.as_mut() {
                        s.display_name = Some(display_name.clone());
                    }
                    ch.upserts.push(node_id.clone());
                    OpResult::Node {
                        device: Arc::new(d.clone()),
                        request_id: None,
                    }
                }
                _ => OpResult::Invalid("unknown nodeId".into()),
            },
            Op::List => {
                let mut pending: Vec<PendingRequest> = self.pending.values().cloned().collect();
                pending.sort_by_key(|p| p.ts);
                let mut paired: Vec<Arc<PairedDevice>> =
                    self.devices.values().cloned().map(Arc::new).collect();
                paired.sort_by_key(|d| d.approved_at_ms);
                OpResult::List { pending, paired }
            }
        }
    }

    fn request_pairing(
        &mut self,
        mut req: PendingRequest,
        silent: bool,
        now: u64,
        ch: &mut Changes,
    ) -> OpResult {
        if silent {
            // Approve exactly this ask. Never approve a reused pending request: it may ask for
            // more than the rules allow to approve silently. Other pending requests of the
            // device stay pending for an operator.
            req.ts = now;
            req.silent = true;
            req.is_repair = self.devices.contains_key(&req.device_id);
            return self.approve_silently(req, now, ch);
        }
        // Reuse a live request of the same device and key that asks for no less; a wider one
        // supersedes older ones (resolved as rejected).
        let existing: Vec<PendingRequest> = self
            .pending
            .values()
            .filter(|p| p.device_id == req.device_id && p.public_key == req.public_key)
            .cloned()
            .collect();
        let mut reused: Option<String> = None;
        for old in existing {
            let same_roles = old.roles.iter().all(|r| req.roles.contains(r))
                && req.roles.iter().all(|r| old.roles.contains(r));
            if reused.is_none() && same_roles && pairing::covers(&old.scopes, &req.scopes) {
                let mut refreshed = old.clone();
                refreshed.ts = now;
                reused = Some(old.request_id.clone());
                self.pending.insert(old.request_id.clone(), refreshed);
            } else {
                self.pending.remove(&old.request_id);
                ch.events
                    .push(resolved_event(&old.request_id, &old.device_id, "rejected"));
            }
        }
        let created = reused.is_none();
        if let Some(id) = reused {
            req.request_id = id;
        }
        if created {
            req.ts = now;
            req.silent = silent;
            req.is_repair = self.devices.contains_key(&req.device_id);
            self.pending.insert(req.request_id.clone(), req.clone());
        }
        let req = self.pending.get(&req.request_id).cloned().unwrap_or(req);
        if created {
            ch.events
                .push(EventTemplate::new("device.pair.requested", &req, None));
        }
        OpResult::Pending {
            request_id: req.request_id,
        }
    }

    /// Local silent approval: the device row and a token for the asked role.
    fn approve_silently(&mut self, req: PendingRequest, now: u64, ch: &mut Changes) -> OpResult {
        let device = self.approve(&req, "silent", now, ch);
        let d = self.devices.get_mut(&req.device_id).expect("just approved");
        let (token, _) = token_for(d, &req.role, &req.scopes, now);
        let device = Arc::new(
            self.devices
                .get(&device.device_id)
                .cloned()
                .unwrap_or((*device).clone()),
        );
        ch.events
            .push(resolved_event(&req.request_id, &req.device_id, "approved"));
        OpResult::Approved {
            request_id: req.request_id,
            device,
            token: Some(token),
        }
    }

    /// Creates or widens the device row from a request.
    fn approve(
        &mut self,
        p: &PendingRequest,
        via: &str,
        now: u64,
        ch: &mut Changes,
    ) -> Arc<PairedDevice> {
        let d = self
            .devices
            .entry(p.device_id.clone())
            .or_insert_with(|| PairedDevice {
                device_id: p.device_id.clone(),
                public_key: p.public_key.clone(),
                display_name: None,
                platform: None,
                device_family: None,
                client_id: None,
                client_mode: None,
                role: None,
                roles: Vec::new(),
                scopes: Vec::new(),
                approved_scopes: Vec::new(),
                remote_ip: None,
                approved_via: None,
                approved_at_ms: now,
                last_seen_at_ms: None,
                label: None,
                tokens: Default::default(),
                node_surface: None,
                pending_node_surface: None,
            });
        if d.public_key != p.public_key {
            // A new key for the same id: the old tokens are void.
            d.public_key = p.public_key.clone();
            d.tokens.clear();
            d.roles.clear();
            d.approved_scopes.clear();
        }
        d.display_name = p.display_name.clone().or(d.display_name.take());
        d.platform = p.platform.clone();
        d.device_family = p.device_family.clone();
        d.client_id = p.client_id.clone();
        d.client_mode = p.client_mode.clone();
        d.role = Some(p.role.clone());
        union(&mut d.roles, &p.roles);
        d.scopes = p.scopes.clone();
        union(&mut d.approved_scopes, &p.scopes);
        d.remote_ip = p.remote_ip.clone();
        d.approved_via = Some(via.to_owned());
        d.approved_at_ms = now;
        d.last_seen_at_ms = Some(now);
        ch.upserts.push(p.device_id.clone());
        Arc::new(d.clone())
    }
}

/// A pending request's public JSON (the `device.pair.requested` payload).
pub fn pending_json(p: &PendingRequest) -> Value {
    serde_json::to_value(p).unwrap_or_default()
}

/// The storage thread's state on an in-memory database, run inline: owner unit tests feed
/// their store effects through it instead of faking the results.
#[cfg(test)]
pub(crate) mod memory {
    use super::*;

    struct Discard;

    impl Publish for Discard {
        fn to_every_shard(&self, _: Notice) {}
    }

    pub(super) fn state() -> StoreState {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        StoreState {
            beat: Default::default(),
            stats: Default::default(),
            conn,
            devices: HashMap::new(),
            pending: HashMap::new(),
            publish: Arc::new(Discard),
            sessions: Default::default(),
            summary_at_ms: 0,
            capture: None,
            config: config::ConfigKeeper::new(
                Arc::new(crate::config::Config {
                    config_path: Some(std::env::temp_dir().join("rg-none/ringgate.json5")),
                    ..Default::default()
                }),
                crate::channels::hub::ChannelHub::empty(),
            ),
        }
    }

    pub(crate) struct MemoryStore(StoreState);

    impl MemoryStore {
        pub(crate) fn new() -> Self {
            MemoryStore(state())
        }

        /// Runs one op as the storage thread would (in its own savepoint).
        pub(crate) fn run(&mut self, op: &Op, now_ms: u64) -> OpResult {
            let mut batch = Changes::default();
            self.0.apply_in_savepoint(op, now_ms, &mut batch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> StoreState {
        memory::state()
    }

    fn ask(id: &str, scopes: &[&str]) -> PendingRequest {
        PendingRequest {
            request_id: id.into(),
            device_id: "dev".into(),
            public_key: "pk".into(),
            display_name: None,
            platform: Some("linux".into()),
            device_family: None,
            client_id: Some("cli".into()),
            client_mode: Some("cli".into()),
            role: "operator".into(),
            roles: vec!["operator".into()],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            remote_ip: None,
            silent: false,
            is_repair: false,
            ts: 0,
        }
    }

    fn run(s: &mut StoreState, op: Op) -> OpResult {
        let mut ch = Changes::default();
        let r = s.apply(&op, 1_000, &mut ch);
        s.persist(&ch).unwrap();
        r
    }

    #[test]
    fn silent_approval_never_grants_a_wider_pending_request() {
        let mut s = state();
        let r = run(
            &mut s,
            Op::RequestPairing {
                pending: Box::new(ask("wide", &["operator.admin"])),
                silent: false,
            },
        );
        assert!(matches!(r, OpResult::Pending { ref request_id } if request_id == "wide"));
        let r = run(
            &mut s,
            Op::RequestPairing {
                pending: Box::new(ask("narrow", &["operator.read"])),
                silent: true,
            },
        );
        let OpResult::Approved { device, token, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(device.approved_scopes, vec!["operator.read"]);
        assert_eq!(token.unwrap().scopes, vec!["operator.read"]);
        assert!(
            s.pending.contains_key("wide"),
            "the wide request still waits for an operator"
        );
    }

    #[test]
    fn rotation_and_revocation_need_the_token_scopes() {
        let mut s = state();
        run(
            &mut s,
            Op::RequestPairing {
                pending: Box::new(ask("r", &["operator.admin"])),
                silent: true,
            },
        );
        let pairing_only = ScopeSet::from_strs(["operator.pairing"]);
        let r = run(
            &mut s,
            Op::Revoke {
                device_id: "dev".into(),
                role: "operator".into(),
                caller: pairing_only.clone(),
            },
        );
        assert!(
            matches!(r, OpResult::Invalid(ref m) if m == "device token revocation denied"),
            "{r:?}"
        );
        let r = run(
            &mut s,
            Op::Rotate {
                device_id: "dev".into(),
                role: "operator".into(),
                scopes: None,
                caller: pairing_only,
            },
        );
        assert!(matches!(r, OpResult::Invalid(_)), "{r:?}");
        let admin = ScopeSet::from_strs(["operator.admin"]);
        let r = run(
            &mut s,
            Op::Rotate {
                device_id: "dev".into(),
                role: "operator".into(),
                scopes: None,
                caller: admin,
            },
        );
        assert!(matches!(r, OpResult::Token(_)), "{r:?}");
    }

    fn cmd(op: Op) -> (Cmd, Arc<Oneshot<OpResult>>) {
        let done = Oneshot::new();
        (
            Cmd {
                op,
                done: done.clone(),
            },
            done,
        )
    }

    fn append(key: &str, run: sessions::RunMark) -> Op {
        Op::Append(Box::new(sessions::Append {
            key: key.into(),
            agent_id: "main".into(),
            message: Some(json!({"role": "user", "content": "hi"})),
            run,
            want_context: false,
            must_exist: false,
        }))
    }

    fn count(s: &StoreState, sql: &str) -> i64 {
        s.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_failed_op_leaves_nothing_and_its_neighbours_commit() {
        let mut s = state();
        // The run record is the op's last statement: the session row and the message are
        // written before it fails.
        s.conn
            .execute_batch(
                "CREATE TRIGGER boom BEFORE INSERT ON runs WHEN NEW.run_id = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .unwrap();
        let start = |id: &str| sessions::RunMark::Start {
            run_id: id.into(),
            kind: "chat",
            fingerprint: 1,
        };
        let (a, ra) = cmd(append("agent:main:a", start("ok-a")));
        let (b, rb) = cmd(append("agent:main:b", start("boom")));
        let (c, rc) = cmd(append("agent:main:c", sessions::RunMark::None));
        s.apply_batch(vec![a, b, c]);
        assert!(matches!(ra.try_take(), Some(OpResult::Appended(_))));
        assert!(
            matches!(rb.try_take(), Some(OpResult::Failed(ref m)) if m.contains("injected failure"))
        );
        assert!(matches!(rc.try_take(), Some(OpResult::Appended(_))));
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM sessions WHERE key = 'agent:main:b'"
            ),
            0,
            "the failed op's session row is gone"
        );
        assert_eq!(count(&s, "SELECT COUNT(*) FROM sessions"), 2);
        assert_eq!(count(&s, "SELECT COUNT(*) FROM messages"), 2);
        assert_eq!(count(&s, "SELECT COUNT(*) FROM runs"), 1);
    }

    #[test]
    fn a_failed_pairing_op_restores_memory_too() {
        let mut s = state();
        let (req, r) = cmd(Op::RequestPairing {
            pending: Box::new(ask("r", &["operator.read"])),
            silent: false,
        });
        s.apply_batch(vec![req]);
        assert!(matches!(r.try_take(), Some(OpResult::Pending { .. })));
        s.conn
            .execute_batch(
                "CREATE TRIGGER boom BEFORE INSERT ON devices
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .unwrap();
        let (approve, r) = cmd(Op::Approve {
            request_id: "r".into(),
            caller: ScopeSet::from_strs(["operator.admin"]),
            own_device: None,
        });
        let (list, listed) = cmd(Op::List);
        s.apply_batch(vec![approve, list]);
        assert!(matches!(r.try_take(), Some(OpResult::Failed(_))));
        assert!(
            s.devices.is_empty(),
            "the device approved in memory is gone"
        );
        assert!(s.pending.contains_key("r"), "the request waits again");
        let Some(OpResult::List { pending, paired }) = listed.try_take() else {
            panic!("list answered")
        };
        assert_eq!((pending.len(), paired.len()), (1, 0));
        // Once the disk recovers, the same approval goes through.
        s.conn.execute_batch("DROP TRIGGER boom").unwrap();
        let (approve, r) = cmd(Op::Approve {
            request_id: "r".into(),
            caller: ScopeSet::from_strs(["operator.admin"]),
            own_device: None,
        });
        s.apply_batch(vec![approve]);
        assert!(matches!(r.try_take(), Some(OpResult::Approved { .. })));
        assert!(load(&s.conn).unwrap().contains_key("dev"));
    }

    #[test]
    fn a_remembered_run_is_never_started_twice() {
        let s = state();
        let start = sessions::RunMark::Start {
            run_id: "k1".into(),
            kind: "agent",
            fingerprint: 42,
        };
        let start_again = start.clone();
        assert!(matches!(
            sessions::append(&s.conn, &as_append(append("agent:main:x", start)), 100).unwrap(),
            sessions::AppendOutcome::Appended(_)
        ));
        // While the run is remembered, starting it again writes nothing and names the record.
        let again = sessions::append(
            &s.conn,
            &as_append(append("agent:main:x", start_again.clone())),
            150,
        )
        .unwrap();
        let sessions::AppendOutcome::DuplicateRun(r) = again else {
            panic!("{again:?}")
        };
        assert_eq!(
            (r.run_id.as_str(), r.fingerprint, r.status.as_str()),
            ("k1", 42, "running")
        );
        // Past the idempotency TTL the key may be used for a new run.
        let later = 100 + sessions::RUN_MEMORY_MS + 1;
        sessions::recover(&s.conn, later).unwrap();
        assert!(matches!(
            sessions::append(
                &s.conn,
                &as_append(append("agent:main:x", start_again)),
                later + 1
            )
            .unwrap(),
            sessions::AppendOutcome::Appended(_)
        ));
    }

    #[test]
    fn interrupted_runs_and_their_keys_survive_a_restart() {
        let s = state();
        let start = sessions::RunMark::Start {
            run_id: "k1".into(),
            kind: "agent",
            fingerprint: 42,
        };
        let sessions::AppendOutcome::Appended(_) =
            sessions::append(&s.conn, &as_append(append("agent:main:x", start)), 100).unwrap()
        else {
            panic!("appended")
        };

        assert_eq!(sessions::recover(&s.conn, 5_000).unwrap(), 1);
        let runs = sessions::recent_runs(&s.conn, 1_000).unwrap();
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(
            (
                r.kind.as_str(),
                r.fingerprint,
                r.status.as_str(),
                r.ended_at_ms
            ),
            ("agent", 42, "interrupted", 5_000)
        );
        assert_eq!(r.error.as_deref(), Some(sessions::INTERRUPTED_ERROR));
        assert!(sessions::recent_runs(&s.conn, 5_001).unwrap().is_empty());
    }

    fn as_append(op: Op) -> sessions::Append {
        match op {
            Op::Append(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn committed_devices_reload_from_disk() {
        let mut s = state();
        run(
            &mut s,
            Op::RequestPairing {
                pending: Box::new(ask("r", &["operator.read"])),
                silent: true,
            },
        );
        let loaded = load(&s.conn).unwrap();
        assert_eq!(
            loaded.get("dev").map(|d| d.approved_scopes.clone()),
            Some(vec!["operator.read".to_string()])
        );
        assert!(loaded["dev"].live_token("operator").is_some());
    }
}
