//! The link thread: this host's one NATS connection, on a Tokio runtime of its own.
//!
//! It publishes what the shards queue ([`super::Out`]) and this host's heartbeat, subscribes
//! to the other hosts' events, presence and heartbeats, and hands what arrives to the shards
//! over the bus (a full inbox makes it wait — on its own thread, never a shard's). The
//! membership decisions are [`super::members::Members`]'; this module only carries them out.
//!
//! NATS going away is not fatal: `async-nats` reconnects forever, the link reports the
//! outage (`/readyz` fails with `cluster`, `health.gateway.cluster.connected` is false), and
//! on reconnecting it announces itself with `hello`, so every peer answers with its full
//! presence, and sends its own.

use std::{
    collections::HashSet,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use async_nats::{jetstream::kv, Client, ConnectOptions, Event, Subscriber};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    members::{Beat, Change, Members},
    record,
    wire::{self, NodeMsg, PresenceEntry, PresenceMsg, Subjects},
    ClusterConfig, Handle, Out, View, OUTBOX_CAPACITY,
};
use crate::{
    bus::{Bus, BusMsg, Inbox},
    nodes::registry::NodeRegistry,
    state::{now_ms, presence::Presence, Globals},
};

/// How often a host beats.
const BEAT_MS: u64 = 1_000;

/// What the link needs from the gateway once the shards exist.
pub struct Attach {
    pub bus: Arc<Bus>,
    /// The devices this host's store held at start: any the shared record lacks (paired
    /// before the host joined, or written just before a crash) are added to it.
    pub devices: Arc<Vec<Arc<crate::pairing::PairedDevice>>>,
    /// Where device changes from the shared record are applied.
    pub store: crate::store::Store,
    pub globals: Arc<Globals>,
    /// `ws://addr:port` of this host, for the member list.
    pub url: String,
}

/// A link that reached NATS and JetStream; [`Link::attach`] starts it serving the shards.
pub struct Link {
    pub handle: Handle,
    attach: oneshot::Sender<Attach>,
    config: ClusterConfig,
}

impl Link {
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Hands the link the bus; from here on it relays in both directions.
    pub fn attach(self, a: Attach) {
        // The thread only ends after this send or on its own start-up failure, which
        // `connect` already reported.
        let _ = self.attach.send(a);
    }
}

/// Starts the link thread and waits until it has connected to NATS and checked JetStream.
/// Errors are one line for the operator (`ringgate: cannot join the cluster: …`).
pub fn connect(config: &ClusterConfig) -> Result<Link, String> {
    let (replicas_tx, replicas_rx) = mpsc::unbounded_channel();
    let handle = Handle {
        outbox: Arc::new(Inbox::with_capacity(OUTBOX_CAPACITY)),
        host: config.name.as_str().into(),
        dropped: Default::default(),
        replicas: Arc::new(record::Replicas(replicas_tx)),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (attach_tx, attach_rx) = oneshot::channel();
    let (cfg, h) = (config.clone(), handle.clone());
    std::thread::Builder::new()
        .name("ringgate-cluster".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start its runtime: {e}")));
                    return;
                }
            };
            rt.block_on(run(cfg, h, ready_tx, attach_rx, replicas_rx));
        })
        .map_err(|e| format!("cannot start its thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Link {
            handle,
            attach: attach_tx,
            config: config.clone(),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("its thread ended during start-up".into()),
    }
}

/// Connects, checks JetStream, then relays until the gateway stops.
async fn run(
    cfg: ClusterConfig,
    handle: Handle,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    attach: oneshot::Receiver<Attach>,
    replicas: mpsc::UnboundedReceiver<crate::store::replica::Replica>,
) {
    let mut cfg = cfg;
    let login = cfg.take_login();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let timeout = Duration::from_millis(cfg.connect_timeout_ms);
    let opts = ConnectOptions::new()
        .name(format!("ringgate {}", cfg.name))
        .no_echo()
        .connection_timeout(timeout)
        .event_callback(move |e| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
    let opts = match login {
        Some((user, pass)) => opts.user_and_password(user, pass),
        None => opts,
    };
    let client = match tokio::time::timeout(timeout, opts.connect(cfg.nats.as_str())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let why = match e.kind() {
                async_nats::ConnectErrorKind::ServerParse => "is not a NATS URL",
                async_nats::ConnectErrorKind::Authentication
                | async_nats::ConnectErrorKind::AuthorizationViolation => "refused this host",
                _ => "is unreachable",
            };
            let _ = ready.send(Err(format!("NATS at {} {why}: {e}", cfg.nats)));
            return;
        }
        Err(_) => {
            let _ = ready.send(Err(format!(
                "NATS at {} did not answer within {} ms",
                cfg.nats, cfg.connect_timeout_ms
            )));
            return;
        }
    };
    if let Err(e) = check_jetstream(&client, timeout).await {
        let _ = ready.send(Err(format!(
            "{e} on {}; start nats-server with -js",
            cfg.nats
        )));
        return;
    }
    let js = async_nats::jetstream::new(client.clone());
    let refuse = |what: &str, e: String| {
        let _ = ready.send(Err(format!(
            "cannot open the shared {what} on {}: {e}",
            cfg.nats
        )));
    };
    let devices = match open_bucket(
        &js,
        &format!("{}_devices", cfg.prefix.replace('.', "_")),
        cfg.replicas,
    )
    .await
    {
        Ok(kv) => kv,
        Err(e) => return refuse("device record", e),
    };
    let sessions = match record::open(&js, &cfg.prefix, cfg.replicas).await {
        Ok(s) => s,
        Err(e) => return refuse("session record", e),
    };
    let subjects = Subjects::new(&cfg.prefix);
    let subs = async {
        Ok::<_, async_nats::SubscribeError>(Subs {
            events: client.subscribe(subjects.events.clone()).await?,
            presence: client.subscribe(subjects.presence.clone()).await?,
            beats: client.subscribe(subjects.beats.clone()).await?,
            nodes: client.subscribe(subjects.nodes.clone()).await?,
            runs: client.subscribe(subjects.runs.clone()).await?,
            direct: client.subscribe(subjects.host(&cfg.name)).await?,
        })
    };
    let subs = match subs.await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot subscribe on {}: {e}", cfg.nats)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let Ok(attach) = attach.await else { return };
    tracing::info!(host = %cfg.name, nats = %cfg.nats, "joined the cluster");
    let (alive_tx, alive_rx) = watch::channel(Arc::new(record::Liveness {
        alive: HashSet::from([cfg.name.clone()]),
        settled_at_ms: now_ms() + cfg.dead_after_ms + BEAT_MS,
    }));
    let record = record::Record::new(
        js,
        client.clone(),
        sessions,
        &subjects,
        cfg.name.clone(),
        attach.globals.started_ms,
        alive_rx,
        attach.store.clone(),
        attach.bus.clone(),
    );
    tokio::spawn(record.clone().publish_changes(replicas));
    tokio::spawn(record.clone().follow());
    let mut relay = Relay {
        record,
        alive: alive_tx,
        members: Members::new(cfg.name.clone(), cfg.dead_after_ms),
        own: Presence::default(),
        own_nodes: NodeRegistry::default(),
        view: View {
            host: cfg.name.clone(),
            nats: cfg.nats.clone(),
            connected: true,
            since_ms: now_ms(),
            members: Vec::new(),
            dropped: 0,
            malformed: 0,
            settled: false,
        },
        hello: true,
        devices,
        device_watch: None,
        publish_failures: 0,
        logged_drops: 0,
        subjects,
        client,
        handle,
        attach,
        cfg,
    };
    relay.serve(subs, events_rx).await;
}

/// The link's subscriptions.
struct Subs {
    events: Subscriber,
    presence: Subscriber,
    beats: Subscriber,
    nodes: Subscriber,
    runs: Subscriber,
    /// Messages addressed to this host.
    direct: Subscriber,
}

/// Asks the JetStream API for the account's info (`$JS.API.INFO`). Read as plain JSON rather
/// than through `async-nats`'s typed call, whose account shape follows newer servers than
/// Debian's 2.9 and fails to parse its answer.
async fn check_jetstream(client: &Client, timeout: Duration) -> Result<(), String> {
    let reply = tokio::time::timeout(timeout, client.request("$JS.API.INFO", "".into()))
        .await
        .map_err(|_| format!("JetStream did not answer within {} ms", timeout.as_millis()))?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => "JetStream is not enabled".to_owned(),
            _ => format!("JetStream did not answer ({e})"),
        })?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|_| "JetStream answered with something that is not JSON".to_owned())?;
    match v.get("error") {
        Some(err) => Err(format!(
            "JetStream refused this account: {}",
            err.get("description")
                .and_then(|d| d.as_str())
                .unwrap_or("error")
        )),
        None => Ok(()),
    }
}

/// Opens (creating on first use) a key-value bucket; a host that loses the creation race to
/// another opens the winner's (creating an identical stream again is not an error).
pub(super) async fn open_bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    replicas: usize,
) -> Result<kv::Store, String> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    // The bucket's stream, as `async-nats` would create it: its own `create_key_value` first
    // reads the account info in a shape newer than Debian's nats-server 2.9 sends.
    use async_nats::jetstream::stream;
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_messages: -1,
        max_bytes: -1,
        max_message_size: -1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = js.create_stream(config).await;
    match js.get_key_value(name).await {
        Ok(kv) => Ok(kv),
        Err(open) => Err(match created {
            Err(e) => e.to_string(),
            Ok(_) => open.to_string(),
        }),
    }
}

/// The link's state while serving.
struct Relay {
    /// Sessions: their owners and their durable record.
    record: Arc<record::Record>,
    /// The hosts alive now, for deciding whether a session's owner is gone.
    alive: watch::Sender<Arc<record::Liveness>>,
    members: Members,
    /// This host's own presence entries (what a joining peer is sent).
    own: Presence,
    /// This host's own nodes (likewise).
    own_nodes: NodeRegistry,
    view: View,
    /// The next beat says `hello` (first after connecting).
    hello: bool,
    /// The shared record of paired devices (JetStream key-value, one key per device).
    devices: kv::Store,
    /// Its watch (replays every device, then follows changes); re-opened when it ends.
    device_watch: Option<kv::Watch>,
    publish_failures: u64,
    logged_drops: u64,
    subjects: Subjects,
    client: Client,
    handle: Handle,
    attach: Attach,
    cfg: ClusterConfig,
}

impl Relay {
    async fn serve(&mut self, mut subs: Subs, mut conn_events: mpsc::UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(Duration::from_millis(BEAT_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outbox = self.handle.outbox.clone();
        let mut batch = Vec::new();
        self.upload_missing_devices().await;
        self.open_device_watch().await;
        loop {
            let mut watch = self.device_watch.take();
            let next_device = async {
                match &mut watch {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            let mut device_entry = None;
            tokio::select! {
                entry = next_device => device_entry = Some(entry),
                _ = outbox.recv_all(&mut batch) => {
                    for m in std::mem::take(&mut batch) {
                        self.publish_out(m).await;
                    }
                }
                Some(m) = subs.events.next() => self.on_event(&m.payload),
                Some(m) = subs.presence.next() => self.on_presence(&m.payload),
                Some(m) = subs.beats.next() => self.on_beat(&m.payload).await,
                Some(m) = subs.nodes.next() => self.on_nodes(&m.payload),
                Some(m) = subs.runs.next() => self.on_note(&m.payload),
                Some(m) = subs.direct.next() => self.on_invoke(&m.payload),
                Some(e) = conn_events.recv() => self.on_conn_event(e).await,
                _ = tick.tick() => {
                    if self.attach.globals.stopping.load(Ordering::Acquire) {
                        self.leave().await;
                        return;
                    }
                    self.beat().await;
                    let changes = self.members.tick(now_ms());
                    self.apply(changes).await;
                    self.push_view();
                    if watch.is_none() {
                        watch = self.reopen_device_watch().await;
                    }
                }
            }
            self.device_watch = watch;
            if let Some(entry) = device_entry {
                self.on_device_entry(entry);
            }
        }
    }

    async fn publish(&mut self, subject: String, payload: Vec<u8>) {
        if let Err(e) = self.client.publish(subject, payload.into()).await {
            self.publish_failures += 1;
            if self.publish_failures.is_power_of_two() {
                tracing::warn!(error = %e, failures = self.publish_failures, "cluster publish failed");
            }
        }
    }

    /// Publishes a JSON message (this crate's own types always encode).
    async fn publish_json(&mut self, subject: String, msg: &impl serde::Serialize) {
        if let Ok(bytes) = serde_json::to_vec(msg) {
            self.publish(subject, bytes).await;
        }
    }

    async fn publish_out(&mut self, m: Out) {
        match m {
            Out::Event(ev) => {
                if let Some(bytes) = wire::encode_event(&self.cfg.name, &ev) {
                    self.publish(self.subjects.events.clone(), bytes).await;
                }
            }
            Out::Presence(d) => {
                self.own.apply(&d);
                let msg = PresenceMsg::delta(&self.cfg.name, &d);
                self.publish_json(self.subjects.presence.clone(), &msg)
                    .await;
            }
            Out::Node(d) => {
                self.own_nodes.apply(&d);
                let msg = NodeMsg::delta(&self.cfg.name, &d);
                self.publish_json(self.subjects.nodes.clone(), &msg).await;
            }
            Out::Device(d) => self.put_device(d).await,
            Out::Reply {
                host,
                shard,
                conn,
                frame,
            } => {
                if let Some(bytes) = wire::encode_reply(shard, conn, &frame) {
                    self.publish(self.subjects.host(&host), bytes).await;
                }
            }
            Out::Approval { host, call } => {
                if let Some(bytes) = wire::encode_approval(&self.cfg.name, &call) {
                    self.publish(self.subjects.host(&host), bytes).await;
                }
            }
            Out::Cron { host, call } => match wire::encode_cron(&self.cfg.name, &call) {
                Some(bytes) => self.publish(self.subjects.host(&host), bytes).await,
                // Only a connection's call is sent here, and this crate's types encode.
                None => self.publish_failures += 1,
            },
            Out::Note(note) => {
                if let Some(bytes) = wire::encode_note(&self.cfg.name, &note) {
                    self.publish(self.subjects.runs.clone(), bytes).await;
                }
            }
            Out::Claim { shard, call } => {
                tokio::spawn(self.record.clone().claim(shard, call));
            }
            Out::Session { host, call } => match wire::encode_session(&self.cfg.name, &call) {
                Some(bytes) => self.publish(self.subjects.host(&host), bytes).await,
                // Only a connection's call is sent here, and this crate's types encode.
                None => self.publish_failures += 1,
            },
            Out::Invoke(r) => {
                if let Some((host, bytes)) = wire::encode_invoke(&self.cfg.name, &r) {
                    self.publish(self.subjects.host(&host), bytes).await;
                }
            }
        }
    }

    /// Adds this host's devices that the shared record has never held. A device the record
    /// holds — or holds a removal of — is left to the record.
    async fn upload_missing_devices(&mut self) {
        let mut added = 0usize;
        for d in self.attach.devices.clone().iter() {
            match self.devices.entry(&d.device_id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.put_device(crate::store::DeviceDelta::Upsert(d.clone()))
                        .await;
                    added += 1;
                }
                Err(e) => {
                    tracing::warn!(device = %d.device_id, error = %e, "cannot read the shared device record");
                }
            }
        }
        if added > 0 {
            tracing::info!(added, "this host's devices added to the shared record");
        }
    }

    async fn open_device_watch(&mut self) {
        self.device_watch = self.reopen_device_watch().await;
    }

    /// A watch from the start of the record: every device is replayed (applying one already
    /// held changes nothing), then changes follow.
    async fn reopen_device_watch(&self) -> Option<kv::Watch> {
        match self.devices.watch_with_history(">").await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the shared device record; retrying");
                None
            }
        }
    }

    /// A device as the shared record holds it: applied here unless this host wrote it.
    fn on_device_entry(&mut self, entry: Option<Result<kv::Entry, kv::WatcherError>>) {
        let entry = match entry {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "shared device record watch failed; re-opening");
                self.device_watch = None;
                return;
            }
            None => {
                self.device_watch = None;
                return;
            }
        };
        let delta = match entry.operation {
            kv::Operation::Put => {
                match serde_json::from_slice::<wire::DeviceRecord>(&entry.value) {
                    Ok(r) if r.o == self.cfg.name => return,
                    Ok(r) => match r.into_delta(&entry.key) {
                        Some(d) => d,
                        None => return self.malformed("device record"),
                    },
                    Err(_) => return self.malformed("device record"),
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                crate::store::DeviceDelta::Removed(entry.key.clone())
            }
        };
        self.attach
            .store
            .submit(crate::store::Op::DeviceSync(delta));
    }

    /// Writes a device change of this host to the shared record (a removal as a tombstone
    /// naming this host, so its own echo is recognised).
    async fn put_device(&mut self, d: crate::store::DeviceDelta) {
        let (key, record) = wire::DeviceRecord::of(&self.cfg.name, &d);
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        if let Err(e) = self.devices.put(&key, bytes.into()).await {
            self.publish_failures += 1;
            tracing::error!(device = %key, error = %e, "cannot write a device change to the shared record");
        }
    }

    fn on_nodes(&mut self, payload: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<NodeMsg>(payload) else {
            self.malformed("node registry");
            return;
        };
        if msg.o == self.cfg.name {
            return;
        }
        let bus = &self.attach.bus;
        for d in msg.deltas() {
            for shard in 0..bus.shards() {
                bus.push_waiting(shard, BusMsg::Node(d.clone()));
            }
        }
    }

    fn on_note(&mut self, payload: &[u8]) {
        let Some((origin, note)) = wire::decode_note(payload) else {
            self.malformed("run note");
            return;
        };
        if origin == self.cfg.name {
            return;
        }
        let bus = &self.attach.bus;
        for shard in 0..bus.shards() {
            bus.push_waiting(shard, BusMsg::RunNote(note.clone()));
        }
    }

    fn on_invoke(&mut self, payload: &[u8]) {
        let bus = &self.attach.bus;
        match wire::decode_direct(payload, bus.shards()) {
            Some(wire::Direct::Invoke(shard, msg)) => {
                bus.push_waiting(shard, BusMsg::Invoke(Box::new(msg)))
            }
            Some(wire::Direct::Reply { shard, conn, frame }) => {
                bus.push_waiting(shard, BusMsg::Reply { conn, frame })
            }
            Some(wire::Direct::Approval(call)) => {
                let owner = crate::placement::Placement::new(bus.shards()).approvals();
                bus.push_waiting(owner, BusMsg::Approval(Box::new(call)))
            }
            Some(wire::Direct::Cron(call)) => {
                let owner = crate::placement::Placement::new(bus.shards()).cron();
                bus.push_waiting(owner, BusMsg::Cron(Box::new(call)))
            }
            Some(wire::Direct::Session(call)) => {
                let owner =
                    crate::placement::Placement::new(bus.shards()).session(&call.key.canonical);
                bus.push_waiting(owner, BusMsg::SessionCall(Box::new(call)))
            }
            None => self.malformed("direct message"),
        }
    }

    fn on_event(&mut self, payload: &[u8]) {
        let Some((_origin, ev)) = wire::decode_event(payload) else {
            self.malformed("event");
            return;
        };
        let ev = Arc::new(ev);
        let bus = &self.attach.bus;
        for shard in 0..bus.shards() {
            bus.push_waiting(shard, BusMsg::Broadcast(ev.clone()));
        }
    }

    fn on_presence(&mut self, payload: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<PresenceMsg>(payload) else {
            self.malformed("presence");
            return;
        };
        if msg.o == self.cfg.name {
            return;
        }
        for e in &msg.entries {
            self.members.on_presence(&msg.o, &e.key);
        }
        let deltas: Vec<_> = msg.deltas().collect();
        if !deltas.is_empty() {
            self.attach
                .bus
                .push_waiting(0, BusMsg::RemotePresence(deltas));
        }
    }

    async fn on_beat(&mut self, payload: &[u8]) {
        let Ok(beat) = serde_json::from_slice::<Beat>(payload) else {
            self.malformed("heartbeat");
            return;
        };
        if beat.host == self.cfg.name {
            if beat.started_ms != self.attach.globals.started_ms {
                tracing::error!(host = %beat.host, "another process uses this host's cluster name; give each host a unique ringgate.cluster.name");
            }
            return;
        }
        if beat.leaving {
            tracing::info!(host = %beat.host, "cluster peer left");
        }
        let changes = self.members.on_beat(beat, now_ms());
        self.apply(changes).await;
        // At once, not at the next tick: the approvals host routes by the peers' approver
        // counts, which a beat just refreshed.
        self.push_view();
    }

    /// Carries out membership changes: a snapshot for a joiner, disconnects for the dead.
    async fn apply(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Joined(host) => {
                    tracing::info!(%host, "cluster peer joined");
                    self.send_snapshot().await;
                }
                Change::Died { host, presence } => {
                    tracing::warn!(%host, entries = presence.len(), "cluster peer is gone; its clients are marked disconnected");
                    let at = now_ms();
                    let deltas: Vec<_> = presence
                        .into_iter()
                        .map(|key| crate::state::presence::Delta::Upsert {
                            key,
                            fields: crate::shard::dispatch::presence_disconnect(),
                            now_ms: at,
                        })
                        .collect();
                    if !deltas.is_empty() {
                        self.attach
                            .bus
                            .push_waiting(0, BusMsg::RemotePresence(deltas));
                    }
                    let host: Arc<str> = host.into();
                    let bus = &self.attach.bus;
                    for shard in 0..bus.shards() {
                        bus.push_waiting(shard, BusMsg::HostGone(host.clone()));
                    }
                }
            }
        }
    }

    /// Publishes this host's whole presence table and node registry.
    async fn send_snapshot(&mut self) {
        let entries: Vec<PresenceEntry> = self
            .own
            .entries()
            .map(|(key, fields)| PresenceEntry {
                key: key.to_owned(),
                ts: fields.get("ts").and_then(|v| v.as_u64()).unwrap_or(0),
                fields: fields.clone(),
            })
            .collect();
        // Large tables go in pieces well under NATS's default 1 MB message limit.
        for chunk in entries.chunks(100) {
            let msg = PresenceMsg {
                o: self.cfg.name.clone(),
                entries: chunk.to_vec(),
            };
            self.publish_json(self.subjects.presence.clone(), &msg)
                .await;
        }
        let nodes: Vec<_> = self
            .own_nodes
            .live
            .values()
            .map(|n| (**n).clone())
            .collect();
        for chunk in nodes.chunks(100) {
            let msg = NodeMsg {
                o: self.cfg.name.clone(),
                up: chunk.to_vec(),
                down: Vec::new(),
            };
            self.publish_json(self.subjects.nodes.clone(), &msg).await;
        }
    }

    fn my_beat(&self) -> Beat {
        Beat {
            host: self.cfg.name.clone(),
            started_ms: self.attach.globals.started_ms,
            hello: self.hello,
            leaving: false,
            connections: self.attach.globals.connections.load(Ordering::Relaxed) as u64,
            approvers: self.attach.globals.approval_clients() as u64,
            url: self.attach.url.clone(),
        }
    }

    async fn beat(&mut self) {
        let beat = self.my_beat();
        self.publish_json(self.subjects.beats.clone(), &beat).await;
        self.hello = false;
    }

    /// Tells the peers this host is going (they mark its clients disconnected at once instead
    /// of after `deadAfterMs`).
    async fn leave(&mut self) {
        let mut beat = self.my_beat();
        beat.leaving = true;
        self.publish_json(self.subjects.beats.clone(), &beat).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), self.client.flush()).await;
    }

    async fn on_conn_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                tracing::info!(nats = %self.cfg.nats, "cluster link reconnected to NATS");
                self.view.connected = true;
                self.view.since_ms = now_ms();
                self.hello = true;
                self.beat().await;
                self.send_snapshot().await;
            }
            Event::Disconnected => {
                tracing::warn!(nats = %self.cfg.nats, "cluster link lost NATS; reconnecting");
                self.view.connected = false;
                self.view.since_ms = now_ms();
            }
            other => tracing::warn!(event = %other, "cluster link"),
        }
        self.push_view();
    }

    fn malformed(&mut self, what: &str) {
        self.view.malformed += 1;
        if self.view.malformed.is_power_of_two() {
            tracing::warn!(
                what,
                total = self.view.malformed,
                "malformed cluster message dropped"
            );
        }
    }

    /// Sends every shard the current view.
    fn push_view(&mut self) {
        self.view.members = self.members.view();
        let alive: HashSet<String> = self
            .view
            .members
            .iter()
            .filter(|m| m.alive)
            .map(|m| m.name.clone())
            .chain([self.cfg.name.clone()])
            .collect();
        // Trusted once a full round of heartbeats can have arrived since the link (re)connected.
        let settled_at_ms = if self.view.connected {
            self.view.since_ms + self.cfg.dead_after_ms + BEAT_MS
        } else {
            u64::MAX
        };
        self.view.settled = now_ms() >= settled_at_ms;
        let live = record::Liveness {
            alive,
            settled_at_ms,
        };
        if **self.alive.borrow() != live {
            self.alive.send_replace(Arc::new(live));
        }
        self.view.dropped = self.handle.dropped.load(Ordering::Relaxed) + self.publish_failures;
        if self.view.dropped > self.logged_drops {
            tracing::warn!(
                total = self.view.dropped,
                "cluster messages dropped (outbox full or NATS refused them)"
            );
            self.logged_drops = self.view.dropped;
        }
        let v = Arc::new(self.view.clone());
        let bus = &self.attach.bus;
        for shard in 0..bus.shards() {
            bus.push_waiting(shard, BusMsg::Cluster(v.clone()));
        }
    }
}
