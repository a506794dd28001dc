//! Sessions across the cluster: who owns each one, and the durable record of their writes.
//!
//! * **Ownership.** A key-value bucket (`<prefix>_owners`) names each session's owner host.
//!   The first host asked about a session creates the entry (create-if-absent, so two hosts
//!   cannot both win); while that host is alive every host sends it the session's calls.
//!   When it dies, the first host asked about the session takes it over by compare-and-set
//!   on the entry's revision, so again exactly one wins, catches its cache up with the record
//!   (everything the stream held when it took over is applied first), and ends the runs the
//!   dead host had going as `interrupted`.
//! * **The record.** Every committed write of a session's tables is published to a JetStream
//!   stream (`<prefix>_sessions`, one subject per session) and its caller hears of it only
//!   once the stream has stored it ([`crate::store::replica`]). Every host follows the stream
//!   and applies the other hosts' writes to its SQLite, which is thereby a cache any host can
//!   read, complete up to the apply lag, and from which a survivor serves a taken-over session.
//!
//! Runs on the link thread's runtime (tasks spawned by the link), like the rest of the link.

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer, kv, message::PublishMessage, stream};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::wire;
use crate::{
    bus::{Bus, BusMsg},
    chat::SessionCall,
    store::{replica::Replica, Op, OpResult, Store},
};

/// The header naming the host that wrote a change (its own changes are already in its cache).
const ORIGIN: &str = "Ringgate-Origin";

/// How long a caller waits for the record before hearing its write was not acknowledged
/// (the publish itself goes on until the record has it).
const RECORD_PATIENCE: Duration = Duration::from_secs(30);

/// How long a host taking a session over waits for its cache to catch up with the record.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Which hosts are alive, and from when that judgement can be trusted: a host that has just
/// started or reconnected to NATS has not yet heard every peer's heartbeat, so until
/// `settled_at_ms` a peer missing from `alive` may well be alive.
#[derive(Debug, Clone, PartialEq)]
pub struct Liveness {
    pub alive: HashSet<String>,
    /// `u64::MAX` while this host has no NATS connection.
    pub settled_at_ms: u64,
}

/// The storage thread's side of the record: batches of session changes, in commit order.
pub struct Replicas(pub(super) mpsc::UnboundedSender<Replica>);

impl crate::store::replica::Replicate for Replicas {
    fn replicate(&self, r: Replica) {
        if let Err(mpsc::error::SendError(r)) = self.0.send(r) {
            r.fail("the cluster link has stopped; not acknowledged");
        }
    }
}

/// What the session tasks share.
pub struct Record {
    js: jetstream::Context,
    client: async_nats::Client,
    owners: kv::Store,
    stream: String,
    /// `<prefix>.sess`: a session's subject is this plus its token.
    subject: String,
    /// `<prefix>.runs`: run starts and ends, for every host's run index.
    runs: String,
    host: String,
    started_ms: u64,
    /// The highest stream sequence handed to the storage thread (it applies in order).
    applied: watch::Sender<u64>,
    /// The hosts alive now (this one included), as the membership decides.
    alive: watch::Receiver<Arc<Liveness>>,
    store: Store,
    bus: Arc<Bus>,
}

/// Opens (creating on first use) the session stream and the owners bucket: start-up fails
/// without them.
pub async fn open(
    js: &jetstream::Context,
    prefix: &str,
    replicas: usize,
) -> Result<(String, kv::Store), String> {
    let stream = format!("{}_sessions", prefix.replace('.', "_"));
    let config = stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{}.>", wire::Subjects::new(prefix).sessions)],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        // Retried publishes of one change are stored once.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    if js.get_stream(&stream).await.is_err() {
        let created = js.create_stream(config).await;
        if let Err(e) = js.get_stream(&stream).await {
            return Err(match created {
                Err(c) => c.to_string(),
                Ok(_) => e.to_string(),
            });
        }
    }
    let owners = super::link::open_bucket(
        js,
        &format!("{}_owners", prefix.replace('.', "_")),
        replicas,
    )
    .await?;
    Ok((stream, owners))
}

impl Record {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        js: jetstream::Context,
        client: async_nats::Client,
        (stream, owners): (String, kv::Store),
        subjects: &wire::Subjects,
        host: String,
        started_ms: u64,
        alive: watch::Receiver<Arc<Liveness>>,
        store: Store,
        bus: Arc<Bus>,
    ) -> Arc<Record> {
        Arc::new(Record {
            js,
            client,
            owners,
            stream,
            subject: subjects.sessions.clone(),
            runs: subjects.runs.clone(),
            host,
            started_ms,
            applied: watch::channel(0).0,
            alive,
            store,
            bus,
        })
    }

    /// Publishes each batch's changes in order, each until the stream has it, then delivers
    /// the batch's results. While NATS is away the publishes are retried; callers waiting
    /// longer than [`RECORD_PATIENCE`] hear that their write was not acknowledged.
    pub async fn publish_changes(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Replica>) {
        let mut n: u64 = 0;
        let mut failures: u64 = 0;
        while let Some(mut batch) = rx.recv().await {
            let started = tokio::time::Instant::now();
            let changes = std::mem::take(&mut batch.changes);
            let mut batch = Some(batch);
            // One at a time, each after the previous one's acknowledgement: a retried
            // publish must never land after a later change of the same session.
            for ch in changes {
                n += 1;
                let id = format!("{}.{}.{n}", self.host, self.started_ms);
                let subject = format!("{}.{}", self.subject, wire::session_token(&ch.key));
                let mut delay = Duration::from_millis(100);
                loop {
                    let msg = PublishMessage::build()
                        .payload(ch.rows.clone().into())
                        .message_id(&id)
                        .header(ORIGIN, self.host.as_str());
                    let acked = match self.js.send_publish(subject.clone(), msg).await {
                        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let Err(e) = acked else { break };
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::error!(error = %e, failures, "the cluster's session record did not take a change; retrying");
                    }
                    if started.elapsed() > RECORD_PATIENCE {
                        if let Some(b) = batch.take() {
                            b.fail("the cluster's session record is unreachable; the write was not acknowledged");
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
            if let Some(b) = batch {
                b.complete();
            }
        }
    }

    /// Follows the stream from where this host's cache stands and hands the other hosts'
    /// changes to the storage thread, in stream order. Re-opens after an error.
    pub async fn follow(self: Arc<Self>) {
        let mut at = match self.store.call(Op::SyncCursor).await {
            OpResult::Json(v) => v.as_u64().unwrap_or(0),
            _ => 0,
        };
        self.applied.send_replace(at);
        loop {
            match self.follow_from(&mut at).await {
                Ok(()) => tracing::warn!("the cluster's session record ended; following it again"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the cluster's session record; retrying")
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn follow_from(&self, at: &mut u64) -> Result<(), String> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        let deliver_policy = match *at {
            0 => consumer::DeliverPolicy::All,
            n => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: n + 1,
            },
        };
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                description: Some(format!("ringgate {} session record", self.host)),
                filter_subject: format!("{}.>", self.subject),
                replay_policy: consumer::ReplayPolicy::Instant,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| e.to_string())?;
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                continue;
            };
            if seq <= *at {
                continue;
            }
            let origin = m
                .headers
                .as_ref()
                .and_then(|h| h.get(ORIGIN))
                .map(|v| v.as_str());
            if origin != Some(self.host.as_str()) {
                self.store.submit(Op::SessionSync {
                    seq,
                    rows: m.payload.to_vec(),
                });
            }
            *at = seq;
            self.applied.send_replace(seq);
        }
        Ok(())
    }

    /// Finds (or becomes) the owner of `call`'s session and hands the call back to `shard`.
    pub async fn claim(self: Arc<Self>, shard: usize, call: Box<SessionCall>) {
        let host = self.owner_of(&call.key.canonical).await;
        self.bus.push_waiting(shard, BusMsg::Owner { host, call });
    }

    async fn owner_of(&self, key: &str) -> Result<Arc<str>, String> {
        let k = format!("s{}", wire::session_token(key));
        let unreachable = |e: &dyn std::fmt::Display| {
            format!("the cluster's session owners cannot be read ({e}); retry")
        };
        for _ in 0..5 {
            match self.owners.create(&k, self.host.clone().into()).await {
                Ok(_) => return Ok(self.host.as_str().into()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(unreachable(&e)),
            }
            let entry = match self.owners.entry(&k).await {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => return Err(unreachable(&e)),
            };
            let holder = String::from_utf8_lossy(&entry.value).into_owned();
            if holder == self.host {
                return Ok(holder.into());
            }
            let live = self.alive.borrow().clone();
            if live.alive.contains(&holder) {
                return Ok(holder.into());
            }
            // Not alive as far as this host knows; a judgement made before this host has
            // heard a full round of heartbeats would steal a live host's sessions.
            let now = crate::state::now_ms();
            if now < live.settled_at_ms {
                if live.settled_at_ms == u64::MAX {
                    return Err("this host has lost its link to the cluster; retry".into());
                }
                tokio::time::sleep(Duration::from_millis(live.settled_at_ms - now)).await;
                continue;
            }
            // Its owner is gone: take it over, unless another host does first.
            if self
                .owners
                .update(&k, self.host.clone().into(), entry.revision)
                .await
                .is_err()
            {
                continue;
            }
            let started = tokio::time::Instant::now();
            self.catch_up().await?;
            let adopted = match self
                .store
                .call(Op::AdoptSession {
                    key: key.to_owned(),
                })
                .await
            {
                OpResult::Json(v) => v,
                OpResult::Failed(m) => return Err(m),
                _ => serde_json::Value::Null,
            };
            let cut = self.end_cut_runs(&adopted);
            tracing::warn!(session = %key, from = %holder, interrupted = cut, took_ms = started.elapsed().as_millis() as u64, "took over a session of a lost host");
            return Ok(self.host.as_str().into());
        }
        Err("the session's owner could not be settled; retry".into())
    }

    /// Tells every host's run index that the runs a takeover cut off ended `interrupted`
    /// (their owner died before saying so), so `agent.wait` answers them. Returns how many.
    fn end_cut_runs(&self, adopted: &serde_json::Value) -> usize {
        use crate::chat::runs::{RunNote, RunSummary};
        let at = adopted["at"].as_u64().unwrap_or(0);
        let cut = adopted["interrupted"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for run in &cut {
            let Some(id) = run["runId"].as_str() else {
                continue;
            };
            let note = RunNote::Ended(Arc::new(RunSummary {
                run_id: id.into(),
                status: "interrupted",
                started_at: run["startedAt"].as_u64().unwrap_or(0),
                ended_at: at,
                error: Some(crate::store::sessions::INTERRUPTED_ERROR.to_owned()),
                stop_reason: "error".into(),
            }));
            for shard in 0..self.bus.shards() {
                self.bus.push_waiting(shard, BusMsg::RunNote(note.clone()));
            }
            if let Some(bytes) = wire::encode_note(&self.host, &note) {
                let (client, subject) = (self.client.clone(), self.runs.clone());
                tokio::spawn(async move {
                    let _ = client.publish(subject, bytes.into()).await;
                });
            }
        }
        cut.len()
    }

    /// Waits until this host's cache has been handed everything the stream holds now.
    async fn catch_up(&self) -> Result<(), String> {
        let last = self.last_sequence().await?;
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(CATCH_UP, applied.wait_for(|&a| a >= last))
            .await
            .map_err(|_| {
                format!("this host could not catch up with the session record within {CATCH_UP:?}; retry")
            })?
            .map_err(|_| "the session record follower stopped".to_owned())?;
        Ok(())
    }

    /// The stream's last sequence, read as plain JSON (`$JS.API.STREAM.INFO`) like the
    /// JetStream check, so Debian's 2.9 server answers in a shape this reads.
    async fn last_sequence(&self) -> Result<u64, String> {
        let reply = self
            .client
            .request(format!("$JS.API.STREAM.INFO.{}", self.stream), "".into())
            .await
            .map_err(|e| format!("the session record cannot be read ({e}); retry"))?;
        let v: serde_json::Value = serde_json::from_slice(&reply.payload)
            .map_err(|_| "the session record answered with something that is not JSON")?;
        v["state"]["last_seq"]
            .as_u64()
            .ok_or_else(|| format!("the session record refused: {}", v["error"]))
    }
}
