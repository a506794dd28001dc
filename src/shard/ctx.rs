//! The shard's own state: its client table, its replica of presence, its auth limiter and
//! parser, and the sending side of the bus. Only the shard's thread touches it.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    rc::{Rc, Weak},
    sync::{atomic::Ordering, Arc},
};

use serde_json::{json, Value};

use super::client::{Client, End};
use crate::{
    auth::ratelimit::AuthLimiter,
    bus::{BusMsg, Sender},
    config::Config,
    pairing::PairedDevice,
    proto::{
        errors::{close, ErrorShape},
        events::{audience, droppable, may_receive},
        frame::{EventTemplate, Parser},
    },
    state::{
        now_ms,
        presence::{Delta, Entry, Presence},
        Globals,
    },
    store::{DeviceDelta, Store},
};

/// How long after a shared-secret change its old connections are closed.
const AUTH_CLOSE_GRACE_MS: u64 = 100;

/// System events queued by `wake`, kept for `status` (bounded).
const MAX_QUEUED_SYSTEM_EVENTS: usize = 20;

pub type ClientRef = Rc<RefCell<Client>>;

/// Where an in-process answer for an HTTP request lands.
pub type HttpWaiter =
    Arc<crate::store::oneshot::Oneshot<Result<Value, crate::proto::errors::ErrorShape>>>;

/// Answering a caller from shard code (method handlers and drivers); owners push
/// [`crate::effects::Effect::Reply`] instead.
impl crate::effects::Caller {
    pub fn ok(&self, ctx: &mut ShardCtx, payload: &Value) {
        ctx.reply_ok(self, payload);
    }

    pub fn err(&self, ctx: &mut ShardCtx, e: &ErrorShape) {
        ctx.reply_err(self, e.clone());
    }
}

/// Per-shard state.
pub struct ShardCtx {
    pub id: usize,
    pub config: Arc<Config>,
    pub globals: Arc<Globals>,
    pub sender: Sender,
    pub clients: HashMap<u64, ClientRef>,
    next_client: u64,
    pub presence: Presence,
    pub limiter: AuthLimiter,
    /// The hook token's limiter (its own policy: [`crate::auth::ratelimit::HOOKS`]).
    pub hook_limiter: AuthLimiter,
    pub parser: Parser,
    pub queued_system_events: VecDeque<String>,
    pub heartbeats_enabled: bool,
    /// Sum of unsent bytes over this shard's connections, refreshed by the housekeeping timer.
    pub buffered_total: usize,
    /// Which connections a session's events can reach.
    pub subs: super::subs::SessionSubs,
    /// Scratch for [`ShardCtx::fanout`]'s candidate list.
    candidates: Vec<u64>,
    /// The buffer every connection of this shard reads its socket into (a connection keeps
    /// bytes of its own only while a frame is incomplete).
    pub read_buf: Vec<u8>,
    pub shutting_down: bool,
    /// Name of the io driver this shard runs on.
    pub driver: &'static str,
    /// Devices removed in the last minute (so a connect that waited on the store cannot open
    /// with a token of a device removed meanwhile).
    pub removed_devices: HashMap<String, u64>,
    /// Pre-serialized `hello-ok` parts.
    pub hello_cache: super::hello::HelloCache,
    /// Session counts and the newest sessions, as the storage thread last sent them.
    pub sessions: Arc<crate::store::sessions_summary::Summary>,
    /// Highest `stateVersion.presence` announced on this shard.
    pub presence_seen: u64,
    /// The storage thread.
    pub store: Store,
    /// The Control UI this gateway serves (located once at start).
    pub control_ui: Arc<crate::http::control_ui::ControlUi>,
    /// What new connections handshake with on a TLS port (replaced when the certificate is
    /// renewed; established connections keep their keys).
    pub tls: Option<Arc<crate::tls::Acceptor>>,
    /// The thread that reads files for HTTP responses.
    pub files: crate::http::files::Files,
    /// Replica of the paired devices, kept current by deltas from the storage thread.
    pub devices: HashMap<String, Arc<PairedDevice>>,
    /// This context itself: the driver's way back for timers and store results. Private to
    /// the shard module — owners ask for later work with effects, never hold the shard.
    pub(super) me: Weak<RefCell<ShardCtx>>,
    /// Runs of the sessions this shard owns.
    pub chat: crate::chat::owner::ChatOwner,
    /// Every shard's runs: started and recently ended.
    pub run_index: crate::chat::runs::RunIndex,
    /// The pool running provider calls.
    pub workers: crate::agent::openai::Workers,
    /// Connected nodes on every shard (replica).
    pub nodes: crate::nodes::registry::NodeRegistry,
    /// `node.invoke`s this shard waits for or delivered.
    pub invokes: crate::nodes::invoke::Invokes,
    /// Pending exec approvals (on the shard [`crate::placement`] names).
    pub approvals: crate::approvals::Approvals,
    /// Bumped when the shared secret changes; clients admitted under an older generation with
    /// the shared secret are closed.
    pub auth_gen: u64,
    /// When to close those clients (a moment after the change, so the writer's own reply and
    /// `config.changed` reach them first).
    auth_close_at: Option<u64>,
    /// The running channels (replaced by a config reload).
    pub channels: Arc<crate::channels::hub::ChannelHub>,
    /// The cluster link, when this host is one of several (`ringgate.cluster`).
    pub cluster: Option<crate::cluster::Handle>,
    /// The cluster as the link last reported it.
    pub cluster_view: Option<Arc<crate::cluster::View>>,
    /// The owner host of each session this shard has routed a call for (a cluster only;
    /// an entry goes when its host dies).
    pub session_owners: HashMap<String, Arc<str>>,
    /// Requests of this shard's connections sent to another host's session owner, not yet
    /// answered: if that host dies first they are answered here, never left hanging.
    pub forwarded: HashMap<u64, Vec<(String, Arc<str>)>>,
    /// The cron service (on the shard [`crate::placement`] names).
    pub cron: crate::cron::service::CronService,
    /// `send`s whose idempotency key this shard owns.
    pub sends: crate::channels::sends::Sends,
    /// HTTP requests waiting for the chat layer (inbound channel messages), by the token of
    /// their [`crate::effects::Waiter::Http`].
    pub http_waiters: HashMap<u64, HttpWaiter>,
    /// Runs an HTTP request on this shard is streaming (`super::tap`).
    pub run_taps: Vec<std::rc::Rc<super::tap::RunTap>>,
    next_waiter: u64,
    /// Requests of this shard's connections answered by an owner (possibly on another shard),
    /// by connection: their first response is timed when the answer arrives
    /// ([`ShardCtx::deliver_reply`]). Empty while nothing is outstanding, so an idle
    /// connection costs nothing here.
    pub awaiting_reply: HashMap<u64, Vec<(String, crate::metrics::rpc::Pending)>>,
}

impl ShardCtx {
    /// Which shard owns what, for this gateway's shard count.
    pub fn placement(&self) -> crate::placement::Placement {
        crate::placement::Placement::new(self.sender.bus().shards())
    }

    /// Serves `call` here when this shard is `owner`, else sends it there wrapped by `msg` —
    /// the one way a request reaches the owner of the state it changes.
    pub fn route<C>(
        &mut self,
        owner: usize,
        call: C,
        here: fn(&mut ShardCtx, C),
        msg: fn(Box<C>) -> BusMsg,
    ) {
        if owner == self.id {
            here(self, call);
        } else {
            self.sender.send(owner, msg(Box::new(call)));
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        config: Arc<Config>,
        globals: Arc<Globals>,
        sender: Sender,
        driver: &'static str,
        store: Store,
        devices: &[Arc<PairedDevice>],
        workers: crate::agent::openai::Workers,
        control_ui: Arc<crate::http::control_ui::ControlUi>,
        files: crate::http::files::Files,
    ) -> Self {
        let presence = Presence::new(globals.self_presence());
        ShardCtx {
            id,
            config,
            globals,
            sender,
            clients: HashMap::new(),
            next_client: 1,
            presence,
            limiter: AuthLimiter::default(),
            hook_limiter: AuthLimiter::new(crate::auth::ratelimit::HOOKS),
            parser: Parser::default(),
            queued_system_events: VecDeque::new(),
            heartbeats_enabled: true,
            buffered_total: 0,
            read_buf: Vec::new(),
            subs: Default::default(),
            candidates: Vec::new(),
            shutting_down: false,
            driver,
            presence_seen: 0,
            hello_cache: Default::default(),
            sessions: Default::default(),
            removed_devices: HashMap::new(),
            store,
            control_ui,
            tls: None,
            files,
            devices: devices
                .iter()
                .map(|d| (d.device_id.clone(), d.clone()))
                .collect(),
            me: Weak::new(),
            chat: Default::default(),
            run_index: Default::default(),
            workers,
            nodes: Default::default(),
            invokes: Default::default(),
            approvals: Default::default(),
            auth_gen: 0,
            auth_close_at: None,
            channels: crate::channels::hub::ChannelHub::empty(),
            cluster: None,
            cluster_view: None,
            session_owners: HashMap::new(),
            forwarded: HashMap::new(),
            sends: Default::default(),
            cron: Default::default(),
            http_waiters: HashMap::new(),
            run_taps: Vec::new(),
            next_waiter: 0,
            awaiting_reply: HashMap::new(),
        }
    }

    /// Installs a new live config: later reads see it at once; connections that authenticated
    /// with a shared secret that no longer holds are closed (4001 "gateway auth changed"), and
    /// this shard's clients get `config.changed`.
    pub fn on_config(&mut self, u: &crate::store::config::ConfigUpdate) {
        self.config = u.config.clone();
        crate::metrics::shard::set_enabled(self.config.diagnostics_enabled);
        self.hello_cache = Default::default();
        if let Some(h) = &u.channels {
            self.channels = h.clone();
        }
        if let Some(b) = self.cron.book_mut() {
            b.set_default_agent(u.config.default_agent());
        }
        if u.auth_changed {
            self.auth_gen += 1;
            self.auth_close_at = Some(now_ms() + AUTH_CLOSE_GRACE_MS);
        }
        self.fanout(&u.event);
        if let Some(ev) = &u.chat_metadata {
            self.fanout(ev);
        }
    }

    /// Closes clients admitted with a shared secret that has since changed.
    fn close_stale_shared_auth(&mut self) {
        let mut closed = 0;
        for c in self.clients.values() {
            let Ok(mut c) = c.try_borrow_mut() else {
                continue;
            };
            let stale = c.session().is_some_and(|s| {
                super::dispatch::uses_shared_secret(s.auth_method) && s.auth_gen < self.auth_gen
            });
            if stale && c.end.is_none() {
                c.close(close::AUTH_CHANGED, "gateway auth changed");
                closed += 1;
            }
        }
        tracing::info!(
            shard = self.id,
            closed,
            "shared secret changed; closed connections that used the old one"
        );
    }

    /// Records a node's host stats on every shard and broadcasts `node.hostStats`.
    pub fn node_stats(&mut self, node_id: &str, stats: Value) {
        let Some(n) = self.nodes.live.get(node_id) else {
            return;
        };
        let mut n = (**n).clone();
        n.host_stats = Some(stats.clone());
        let d = crate::nodes::registry::NodeDelta::Up(Arc::new(n));
        if let Some(c) = &self.cluster {
            c.send(crate::cluster::Out::Node(d.clone()));
        }
        self.nodes.apply(&d);
        self.sender.to_others(BusMsg::Node(d));
        self.broadcast(EventTemplate::new(
            "node.hostStats",
            &json!({"nodeId": node_id, "hostStats": stats}),
            None,
        ));
    }

    /// A cluster host left: forget its nodes (shard 0 tells this host's clients with
    /// `node.presence`; every shard holds the same replica) and fail invokes waiting on them.
    fn host_gone(&mut self, host: &str) {
        self.session_owners.retain(|_, h| &**h != host);
        let mut lost = Vec::new();
        self.forwarded.retain(|conn, reqs| {
            reqs.retain(|(req, h)| {
                let gone = &**h == host;
                if gone {
                    lost.push((*conn, req.clone()));
                }
                !gone
            });
            !reqs.is_empty()
        });
        for (conn, req_id) in lost {
            let e = ErrorShape::new(
                crate::proto::errors::code::UNAVAILABLE,
                format!("cluster host {host}, which served this request, was lost before answering; retry (with the same idempotency key, if it had one)"),
            )
            .retryable(true);
            self.reply_err(&crate::effects::Caller::conn(self.id, conn, req_id), e);
        }
        let gone = self.nodes.remove_host(host, now_ms());
        if self.id == 0 {
            for node_id in gone {
                let d = crate::nodes::registry::NodeDelta::Down {
                    node_id,
                    conn_id: String::new(),
                    at_ms: now_ms(),
                };
                let ev = EventTemplate::new(
                    "node.presence",
                    &crate::nodes::registry::presence_payload(&d),
                    None,
                );
                // This host's shards only: every host makes the same announcement.
                let ev = Arc::new(ev);
                self.fanout(&ev);
                self.sender.to_others(BusMsg::Broadcast(ev));
            }
        }
        super::drive::invoke_host_gone(self, host);
    }

    /// Applies a node registry change here, announces it on every other shard (and host) and
    /// broadcasts `node.presence`.
    pub fn node_change(&mut self, d: crate::nodes::registry::NodeDelta) {
        if let Some(c) = &self.cluster {
            c.send(crate::cluster::Out::Node(d.clone()));
        }
        self.nodes.apply(&d);
        let ev = EventTemplate::new(
            "node.presence",
            &crate::nodes::registry::presence_payload(&d),
            None,
        );
        self.sender.to_others(BusMsg::Node(d));
        self.broadcast(ev);
    }

    /// Runs a storage op on a task and continues with its result on this shard (the driver's
    /// and the connection layer's; owners push `Effect::Store`).
    pub(super) fn spawn_store(
        &self,
        op: crate::store::Op,
        then: impl FnOnce(&mut ShardCtx, crate::store::OpResult) + 'static,
    ) {
        let store = self.store.clone();
        let me = self.me.clone();
        crate::rt::spawn(async move {
            let r = super::conn::call_store(&store, op).await;
            if let Some(ctx) = me.upgrade() {
                then(&mut ctx.borrow_mut(), r);
            }
        });
    }

    /// Sends a response frame to connection `conn` on shard `shard`.
    pub fn reply(&mut self, shard: usize, conn: u64, frame: Vec<u8>) {
        if shard == self.id {
            self.deliver_reply(conn, &frame);
        } else {
            self.sender.send(shard, BusMsg::Reply { conn, frame });
        }
    }

    /// Pushes an event, unsequenced, to connection `conn` on this shard if it is still open and
    /// authenticated.
    pub fn push_event_to(&mut self, conn: u64, ev: &Arc<EventTemplate>) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.end.is_none() && c.session().is_some() {
                c.push_event(ev, false);
            }
        }
    }

    /// Answers `to` with a terminal answer: a response frame for a connection, the value for
    /// an in-process waiter.
    pub fn answer(&mut self, to: &crate::effects::Caller, a: crate::effects::Answer) {
        use crate::effects::{Answer, Caller};
        match to {
            Caller::Conn {
                shard,
                conn,
                req_id,
            } => {
                let frame = match &a {
                    Answer::Ok(v) => crate::proto::frame::res_ok(req_id, v),
                    Answer::Failed(v, e) => crate::proto::frame::res_err_with_payload(req_id, v, e),
                };
                self.reply(*shard, *conn, frame);
            }
            Caller::Remote(r) => {
                let frame = match &a {
                    Answer::Ok(v) => crate::proto::frame::res_ok(&r.req_id, v),
                    Answer::Failed(v, e) => {
                        crate::proto::frame::res_err_with_payload(&r.req_id, v, e)
                    }
                };
                self.reply_remote(r, frame);
            }
            Caller::Internal { shard, waiter } => {
                let r = match a {
                    Answer::Ok(v) => Ok(v),
                    Answer::Failed(_, e) => Err(e),
                };
                self.answer_waiter(*shard, *waiter, r);
            }
        }
    }

    /// Answers `to` with a payload (copied only for an in-process waiter).
    pub fn reply_ok(&mut self, to: &crate::effects::Caller, payload: &Value) {
        use crate::effects::Caller;
        match to {
            Caller::Conn {
                shard,
                conn,
                req_id,
            } => self.reply(*shard, *conn, crate::proto::frame::res_ok(req_id, payload)),
            Caller::Remote(r) => {
                self.reply_remote(r, crate::proto::frame::res_ok(&r.req_id, payload))
            }
            Caller::Internal { shard, waiter } => {
                self.answer_waiter(*shard, *waiter, Ok(payload.clone()))
            }
        }
    }

    /// Answers `to` with an error.
    pub fn reply_err(&mut self, to: &crate::effects::Caller, e: ErrorShape) {
        use crate::effects::Caller;
        match to {
            Caller::Conn {
                shard,
                conn,
                req_id,
            } => self.reply(*shard, *conn, crate::proto::frame::res_err(req_id, &e)),
            Caller::Remote(r) => self.reply_remote(r, crate::proto::frame::res_err(&r.req_id, &e)),
            Caller::Internal { shard, waiter } => self.answer_waiter(*shard, *waiter, Err(e)),
        }
    }

    /// Sends a response frame to a connection of another host.
    fn reply_remote(&mut self, r: &crate::effects::RemoteCaller, frame: Vec<u8>) {
        match &self.cluster {
            Some(c) => c.send(crate::cluster::Out::Reply {
                host: r.host.clone(),
                shard: r.shard,
                conn: r.conn,
                frame,
            }),
            None => tracing::error!(host = %r.host, "a reply for another host without a cluster"),
        }
    }

    /// The cluster host that holds what one host must hold for all — the exec-approvals
    /// table, and cron (`None`: this one): the live host with the smallest name. One host
    /// holds the approvals, so a request made on one host can be resolved from any; one runs
    /// cron, so each job runs once.
    pub fn leader_host(&self) -> Option<Arc<str>> {
        let v = self.cluster_view.as_ref()?;
        let first = v
            .members
            .iter()
            .filter(|m| m.alive)
            .map(|m| m.name.as_str())
            .min()?;
        (first < v.host.as_str()).then(|| first.into())
    }

    /// Whether this host runs cron: alone, always; in a cluster, when it is the leader by a
    /// settled view (a host that has not yet heard every peer must not start running jobs
    /// another host already runs).
    pub fn cron_here(&self) -> bool {
        match (&self.cluster, &self.cluster_view) {
            (None, _) => true,
            (Some(_), Some(v)) => v.settled && self.leader_host().is_none(),
            (Some(_), None) => false,
        }
    }

    /// Approval clients connected to any host of the cluster (this one included).
    pub fn approval_clients_everywhere(&self) -> usize {
        let here = self.globals.approval_clients();
        here + self.cluster_view.as_ref().map_or(0, |v| {
            v.members
                .iter()
                .filter(|m| m.alive)
                .map(|m| m.approvers as usize)
                .sum()
        })
    }

    fn answer_waiter(
        &mut self,
        shard: usize,
        waiter: crate::effects::Waiter,
        r: Result<Value, ErrorShape>,
    ) {
        if shard == self.id {
            super::drive::answered(self, waiter, r);
        } else {
            self.sender
                .send(shard, BusMsg::Answered(Box::new((waiter, r))));
        }
    }

    fn deliver_reply(&mut self, conn: u64, frame: &[u8]) {
        let Some(c) = self.clients.get(&conn) else {
            return;
        };
        let Ok(mut c) = c.try_borrow_mut() else {
            return;
        };
        if c.end.is_some() {
            return;
        }
        if c.over(self.config.limits.max_buffered_bytes) {
            self.globals.slow_closes.fetch_add(1, Ordering::Relaxed);
            c.close(close::POLICY, "slow consumer");
            return;
        }
        c.push_text(frame);
        drop(c);
        self.first_reply(conn, frame);
        self.answered_forward(conn, frame);
    }

    /// Notes a request sent to session owner `host` for connection `conn` (bounded per
    /// connection; past the bound a request is simply not tracked).
    pub fn track_forward(&mut self, conn: u64, req_id: &str, host: Arc<str>) {
        const MAX_TRACKED: usize = 256;
        let reqs = self.forwarded.entry(conn).or_default();
        if reqs.len() < MAX_TRACKED {
            reqs.push((req_id.to_owned(), host));
        }
    }

    /// A response reached `conn`: a forwarded request it ends is no longer waiting (an
    /// `agent` request's interim `accepted` does not end it).
    fn answered_forward(&mut self, conn: u64, frame: &[u8]) {
        // Every reply passes here: without a forwarded request (always, alone) no lookup.
        if self.forwarded.is_empty() {
            return;
        }
        let Some(reqs) = self.forwarded.get_mut(&conn) else {
            return;
        };
        let Some((id, ok)) = crate::proto::frame::res_id(frame) else {
            return;
        };
        let interim = ok && frame.windows(19).any(|w| w == b"\"status\":\"accepted\"");
        if !interim {
            reqs.retain(|(r, _)| *r != id);
        }
        if reqs.is_empty() {
            self.forwarded.remove(&conn);
        }
    }

    /// Records the first response of a routed request when its answer reaches the connection.
    fn first_reply(&mut self, conn: u64, frame: &[u8]) {
        let Some(waiting) = self.awaiting_reply.get_mut(&conn) else {
            return;
        };
        let Some((id, ok)) = crate::proto::frame::res_id(frame) else {
            return;
        };
        if let Some(i) = waiting.iter().position(|(r, _)| *r == id) {
            let (_, p) = waiting.swap_remove(i);
            p.responded(ok);
        }
        if waiting.is_empty() {
            self.awaiting_reply.remove(&conn);
        }
    }

    /// Times the first answer to request `req_id` of connection `conn` (answered by an owner).
    pub fn await_reply(
        &mut self,
        conn: u64,
        req_id: &str,
        p: Option<crate::metrics::rpc::Pending>,
    ) {
        /// Outstanding routed requests timed per connection (more are answered, not timed).
        const MAX_TIMED: usize = 64;
        let Some(p) = p else { return };
        let waiting = self.awaiting_reply.entry(conn).or_default();
        if waiting.len() < MAX_TIMED {
            waiting.push((req_id.to_owned(), p));
        }
    }

    /// A stored session row in the original's shape ([`crate::chat::row::decorate`]).
    pub fn decorate_row(&self, row: Value) -> Value {
        crate::chat::row::decorate(&self.config, row, now_ms())
    }

    /// A caller for an HTTP request on this shard waiting for an answer, and where the
    /// answer lands (remove the token from `http_waiters` when giving up).
    pub fn http_waiter(&mut self) -> (crate::effects::Caller, u64, HttpWaiter) {
        self.next_waiter += 1;
        let token = self.next_waiter;
        let w = crate::store::oneshot::Oneshot::new();
        self.http_waiters.insert(token, w.clone());
        let caller = crate::effects::Caller::Internal {
            shard: self.id,
            waiter: crate::effects::Waiter::Http(token),
        };
        (caller, token, w)
    }

    pub fn next_client_id(&mut self) -> u64 {
        let id = self.next_client;
        self.next_client += 1;
        id
    }

    /// Delivers an event to this shard's eligible authenticated connections, stamping each
    /// one's `seq`, applying the slow-consumer rule. A session's events visit only the
    /// connections [`super::subs::SessionSubs`] names; everything else visits every connection.
    pub fn fanout(&mut self, ev: &Arc<EventTemplate>) {
        crate::metrics::record(|m| m.events_fanned_out += 1);
        if !self.run_taps.is_empty() {
            super::tap::feed(&self.run_taps, ev);
        }
        let filter = Filter::of(ev);
        let rules = Rules {
            filter,
            audience: audience(&ev.name),
            drop_ok: ev.meta.drop_if_slow.unwrap_or_else(|| droppable(&ev.name)),
            max_buffered: self.config.limits.max_buffered_bytes,
        };
        let session = ev.meta.session.as_deref().filter(|_| {
            ev.meta.node.is_none()
                && matches!(
                    filter,
                    Filter::Run
                        | Filter::SessionScoped
                        | Filter::MessageSubscribers
                        | Filter::SessionMessage
                )
        });
        let Some(key) = session else {
            for c in self.clients.values() {
                self.offer(c, ev, &rules);
            }
            return;
        };
        if self.subs.broad_stale() {
            let broad = self
                .clients
                .iter()
                // A connection borrowed right now cannot be looked at: it stays a candidate
                // (the rules in `offer` decide), rather than missing this list until the next
                // rebuild.
                .filter(|(_, c)| {
                    c.try_borrow()
                        .map_or(true, |c| c.session().is_some_and(broad))
                })
                .map(|(&id, _)| id)
                .collect();
            self.subs.set_broad(broad);
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        self.subs.candidates(key, &mut candidates);
        for id in &candidates {
            if let Some(c) = self.clients.get(id) {
                self.offer(c, ev, &rules);
            }
        }
        self.candidates = candidates;
    }

    /// Delivers `ev` to one connection if the recipient rules let it have it.
    fn offer(&self, c: &ClientRef, ev: &Arc<EventTemplate>, r: &Rules) {
        let Ok(mut c) = c.try_borrow_mut() else {
            // Only the connection currently being served can be borrowed; effects are
            // applied after its borrow ends, so this does not happen.
            return;
        };
        let Some(s) = c.session() else { return };
        if s.role == crate::proto::scopes::Role::Node {
            // Nodes get their own events and the sessions they subscribed to, unsequenced.
            if r.filter.node_wants(s, ev) {
                deliver(&mut c, ev, false, r.drop_ok, r.max_buffered, &self.globals);
                return;
            }
        }
        if !may_receive(r.audience, s.role, &s.scopes) || !r.filter.wants(s, ev) {
            return;
        }
        if ev.meta.exclude == Some((self.id, c.id)) {
            return;
        }
        deliver(&mut c, ev, true, r.drop_ok, r.max_buffered, &self.globals);
    }

    /// Fans out locally and sends the template once to every other shard.
    pub fn broadcast(&mut self, ev: EventTemplate) {
        let ev = Arc::new(ev);
        self.broadcast_arc(ev);
    }

    /// Fans out here, on every other shard, and (in a cluster) on every other host.
    pub fn broadcast_arc(&mut self, ev: Arc<EventTemplate>) {
        self.fanout(&ev);
        if let Some(c) = &self.cluster {
            if crate::cluster::Handle::crosses(&ev) {
                c.send(crate::cluster::Out::Event(ev.clone()));
            }
        }
        self.sender.to_others(BusMsg::Broadcast(ev));
    }

    /// Applies a presence change to this shard's replica and takes the next
    /// `stateVersion.presence`; [`ShardCtx::presence_publish`] then announces it.
    pub fn presence_apply(&mut self, key: String, fields: Entry) -> (Delta, u64) {
        self.presence_apply_delta(Delta::Upsert {
            key,
            fields,
            now_ms: now_ms(),
        })
    }

    fn presence_apply_delta(&mut self, delta: Delta) -> (Delta, u64) {
        self.presence.apply(&delta);
        let version = self.globals.presence_version.fetch_add(1, Ordering::AcqRel) + 1;
        self.presence_seen = self.presence_seen.max(version);
        (delta, version)
    }

    /// Encodes the `presence` event once from this replica, fans it out here and sends it with
    /// the change to every other shard.
    pub fn presence_publish(&mut self, delta: Delta, version: u64) {
        if let Some(c) = &self.cluster {
            c.send(crate::cluster::Out::Presence(delta.clone()));
        }
        self.presence_announce(delta, version);
    }

    /// Presence changes of clients on other hosts: applied here and announced on this host's
    /// shards under this host's `stateVersion.presence` (one event for the batch).
    fn remote_presence(&mut self, deltas: Vec<Delta>) {
        let n = deltas.len();
        for (i, d) in deltas.into_iter().enumerate() {
            let (d, version) = self.presence_apply_delta(d);
            if i + 1 == n {
                self.presence_announce(d, version);
            } else {
                self.sender.to_others(BusMsg::Presence {
                    delta: d,
                    version,
                    event: None,
                });
            }
        }
    }

    fn presence_announce(&mut self, delta: Delta, version: u64) {
        let ev = Arc::new(self.presence_event(version));
        self.fanout(&ev);
        self.sender.to_others(BusMsg::Presence {
            delta,
            version,
            event: Some(ev),
        });
    }

    /// Applies a presence change and announces it.
    pub fn presence_change(&mut self, key: String, fields: Entry) {
        let (delta, version) = self.presence_apply(key, fields);
        self.presence_publish(delta, version);
    }

    fn presence_event(&mut self, version: u64) -> EventTemplate {
        let health = self.globals.health_version.load(Ordering::Acquire);
        let list = self.presence.list(now_ms());
        EventTemplate::new(
            "presence",
            &json!({ "presence": list }),
            Some((version, health)),
        )
    }

    /// Handles one message from another shard.
    /// This shard's figures for a scrape: its counters, and the gauges only it can read.
    pub fn metrics_snapshot(&self) -> crate::metrics::gather::Snapshot {
        use super::client::Phase;
        let mut connections: Vec<((&'static str, &'static str), u64)> = Vec::new();
        let mut outbox = 0u64;
        for c in self.clients.values() {
            let Ok(c) = c.try_borrow() else { continue };
            outbox += c.unsent() as u64;
            let role = match (&c.phase, &c.session) {
                (Phase::Worker(_), _) => "worker",
                (_, Some(s)) => s.role.as_str(),
                (_, None) => "none",
            };
            let phase = match c.phase {
                Phase::AwaitingConnect { .. } => "awaiting_connect",
                Phase::Rejecting => "rejecting",
                Phase::Pairing => "pairing",
                Phase::Open => "open",
                Phase::Worker(_) => "open",
                Phase::Closing => "closing",
            };
            match connections.iter_mut().find(|(k, _)| *k == (role, phase)) {
                Some(slot) => slot.1 += 1,
                None => connections.push(((role, phase), 1)),
            }
        }
        let inbox = self.sender.bus().inbox(self.id);
        crate::metrics::gather::Snapshot {
            shard: self.id,
            metrics: crate::metrics::shard::snapshot(),
            connections,
            outbox_bytes: outbox,
            inbox_depth: inbox.len() as u64,
            inbox_full_events: inbox.full_events.load(Ordering::Relaxed),
            overflow_len: self.sender.overflow_len() as u64,
            invokes_pending: self.invokes.pending() as u64,
            runs_active: self.chat.active_runs() as u64,
        }
    }

    pub fn on_bus(&mut self, msg: BusMsg) {
        match msg {
            BusMsg::Broadcast(ev) => self.fanout(&ev),
            BusMsg::Presence {
                delta,
                version,
                event,
            } => {
                self.presence.apply(&delta);
                if version >= self.presence_seen {
                    self.presence_seen = version;
                    if let Some(ev) = event {
                        self.fanout(&ev);
                    }
                } else if event.is_some() {
                    // A newer change was announced here first: this one's list lacks it, so
                    // announce this replica's (complete) list under the newest version instead
                    // of letting clients see the version go backwards.
                    let ev = Arc::new(self.presence_event(self.presence_seen));
                    self.fanout(&ev);
                }
            }
            BusMsg::SystemEvent(text) => self.record_system_event(text),
            BusMsg::Device(delta) => self.on_device_delta(delta),
            BusMsg::Shutdown => self.shutdown(),
            BusMsg::SessionCall(call) => super::drive::session_call(self, *call),
            BusMsg::Reply { conn, frame } => self.deliver_reply(conn, &frame),
            BusMsg::Answered(a) => {
                let (waiter, r) = *a;
                super::drive::answered(self, waiter, r);
            }
            BusMsg::RunOutput { run_id, out } => super::drive::run_output(self, &run_id, *out),
            BusMsg::Inference(b) => {
                let (run_id, turn_id, out) = *b;
                super::drive::inference_output(self, &run_id, &turn_id, out)
            }
            BusMsg::RunNote(note) => super::drive::run_note(self, note),
            BusMsg::Node(d) => self.nodes.apply(&d),
            BusMsg::Invoke(m) => super::drive::invoke_msg(self, *m),
            BusMsg::Approval(call) => super::drive::approval(self, *call),
            BusMsg::Config(update) => self.on_config(&update),
            BusMsg::Sessions(s) => {
                self.sessions = s;
                self.hello_cache.health_changed();
            }
            BusMsg::Cron(call) => super::drive::cron_call(self, *call),
            BusMsg::ChannelSend(call) => super::drive::send(self, *call),
            BusMsg::AuthFailure { ip, at_ms, scope } => {
                self.limiter_for(scope).record_failure(ip, at_ms);
            }
            BusMsg::AuthSuccess { ip, scope } => {
                self.limiter_for(scope).record_success(ip);
            }
            BusMsg::Metrics(g) => g.offer(self.metrics_snapshot()),
            BusMsg::Tls(a) => self.tls = Some(a),
            BusMsg::RemotePresence(deltas) => self.remote_presence(deltas),
            BusMsg::Cluster(view) => {
                self.cluster_view = Some(view);
                super::drive::cron_leadership(self);
            }
            BusMsg::HostGone(host) => self.host_gone(&host),
            BusMsg::Owner { host, call } => super::drive::session_owner(self, host, *call),
            BusMsg::ChannelReport(r) => {
                let (key, report) = *r;
                super::drive::send_report(self, key, report)
            }
        }
    }

    /// Applies a paired-device change and closes this shard's connections whose credentials it
    /// voided (device removed, its token for the role revoked or rotated) with 4001.
    fn on_device_delta(&mut self, delta: DeviceDelta) {
        let (device_id, voided_roles): (String, Option<Vec<String>>) = match delta {
            DeviceDelta::Removed(id) => {
                self.devices.remove(&id);
                let now = now_ms();
                self.removed_devices
                    .retain(|_, at| now.saturating_sub(*at) < 60_000);
                self.removed_devices.insert(id.clone(), now);
                (id, None)
            }
            DeviceDelta::Upsert(d) => {
                let id = d.device_id.clone();
                self.removed_devices.remove(&id);
                let old = self.devices.insert(id.clone(), d.clone());
                let voided = old
                    .map(|o| {
                        o.tokens
                            .iter()
                            .filter(|(role, t)| {
                                t.revoked_at_ms.is_none()
                                    && d.tokens.get(*role).is_none_or(|n| {
                                        n.token != t.token || n.revoked_at_ms.is_some()
                                    })
                            })
                            .map(|(role, _)| role.clone())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if voided.is_empty() {
                    return;
                }
                (id, Some(voided))
            }
        };
        for c in self.clients.values() {
            let Ok(mut c) = c.try_borrow_mut() else {
                continue;
            };
            let hit = c.session().is_some_and(|s| {
                s.device_id.as_deref() == Some(device_id.as_str())
                    && voided_roles
                        .as_ref()
                        .is_none_or(|roles| roles.iter().any(|r| r == s.role.as_str()))
            });
            if hit {
                tracing::info!(conn = %c.conn_id, device = %device_id, "device credentials voided: closing");
                c.close_after_replies(close::AUTH_CHANGED, "device removed");
            }
        }
    }

    /// Is the device connected (on this shard, or tracked in presence on any shard)?
    pub fn device_connected(&self, device_id: &str) -> bool {
        self.presence.device_online(device_id)
            || self.clients.values().any(|c| {
                c.try_borrow().is_ok_and(|c| {
                    c.session()
                        .is_some_and(|s| s.device_id.as_deref() == Some(device_id))
                })
            })
    }

    /// The limiter a shared failure or success belongs to.
    pub fn limiter_for(&mut self, scope: crate::auth::ratelimit::Scope) -> &mut AuthLimiter {
        match scope {
            crate::auth::ratelimit::Scope::Gateway => &mut self.limiter,
            crate::auth::ratelimit::Scope::Hooks => &mut self.hook_limiter,
        }
    }

    pub fn record_system_event(&mut self, text: String) {
        if self.queued_system_events.len() == MAX_QUEUED_SYSTEM_EVENTS {
            self.queued_system_events.pop_front();
        }
        self.queued_system_events.push_back(text);
    }

    /// `shutdown {reason}` to every client, then close 1012 "service restart".
    pub fn shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let ev = Arc::new(EventTemplate::new(
            "shutdown",
            &json!({"reason": "gateway stopping"}),
            None,
        ));
        self.fanout(&ev);
        for c in self.clients.values() {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.close(close::RESTART, "service restart");
            }
        }
    }

    /// The health snapshot (`health` method and event, `hello-ok.snapshot.health`).
    pub fn health_snapshot(&self) -> Value {
        let now = now_ms();
        let store_path = self.config.store_path().display().to_string();
        let sessions = |agent: Option<&str>| {
            let s = &self.sessions;
            json!({
                "path": store_path,
                "count": agent.map_or_else(|| s.count(), |a| s.count_of(a)),
                "recent": s.recent_of(agent).map(|r| json!({
                    "key": r.key,
                    "updatedAt": r.updated_at_ms,
                    "age": now.saturating_sub(r.updated_at_ms),
                })).collect::<Vec<_>>(),
            })
        };
        let default_agent = self.config.default_agent();
        let agents: Vec<Value> = self
            .config
            .agents
            .iter()
            .map(|a| {
                json!({
                    "agentId": a.id,
                    "isDefault": a.id == default_agent,
                    // ringgate runs no heartbeat turns.
                    "heartbeat": {"enabled": false, "every": "disabled", "everyMs": null,
                                  "prompt": "", "target": "none", "ackMaxChars": 0},
                    "sessions": sessions(Some(&a.id)),
                })
            })
            .collect();
        json!({
            "ok": true,
            "ts": now,
            "durationMs": 0,
            "plugins": {"loaded": [], "errors": [], "unavailable": []},
            "configReload": {"hotReloadStatus": "disabled"},
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": 0,
            "defaultAgentId": default_agent,
            "agents": agents,
            "sessions": sessions(None),
            "eventLoop": self.globals.event_loop(),
            // ringgate loads no model runtime (its agents are configured, not installed).
            "modelRuntime": {"degraded": false, "pendingAgents": []},
            "gateway": {
                "implementation": "ringgate",
                "shards": self.sender.bus().shards(),
                "connections": self.globals.connections.load(Ordering::Relaxed),
                "uptimeMs": self.globals.uptime_ms(),
                "cluster": self.cluster_view.as_ref().map(|v| v.to_json(now)),
            },
        })
    }

    /// Sums unsent bytes; ends slow consumers whose close grace ran out; holds the shard to
    /// its buffered-bytes budget.
    pub fn housekeeping(&mut self, now: u64) {
        if self.auth_close_at.is_some_and(|t| now >= t) {
            self.auth_close_at = None;
            self.close_stale_shared_auth();
        }
        let mut total = 0;
        for c in self.clients.values() {
            if let Ok(mut c) = c.try_borrow_mut() {
                flush_held(&mut c);
                total += c.unsent();
                c.trim();
                if c.end_deadline_ms.is_some_and(|d| now >= d) && c.end != Some(End::Now) {
                    c.terminate();
                }
            }
        }
        let budget = self.config.limits.shard_buffered_budget;
        if total > budget {
            total = self.enforce_budget(total, budget);
        }
        self.buffered_total = total;
    }

    /// The per-connection limit alone lets one principal with many stalled sockets pin
    /// `sockets × maxBufferedBytes`. Past the shard's budget, the connections holding the
    /// most unsent bytes are closed 1008 "slow consumer" (dropped after the close grace)
    /// until the shard is back under it; the rest are untouched. Returns the new total
    /// (counting what the closed connections still hold until they are dropped as gone).
    fn enforce_budget(&mut self, total: usize, budget: usize) -> usize {
        let mut by_size: Vec<(usize, &ClientRef)> = self
            .clients
            .values()
            .filter_map(|c| {
                let cb = c.try_borrow().ok()?;
                (cb.end.is_none() && cb.unsent() > 0).then(|| (cb.unsent(), c))
            })
            .collect();
        by_size.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
        let mut left = total;
        let mut closed = 0;
        for (unsent, c) in by_size {
            if left <= budget {
                break;
            }
            if let Ok(mut c) = c.try_borrow_mut() {
                c.close(close::POLICY, "slow consumer");
                left = left.saturating_sub(unsent);
                closed += 1;
            }
        }
        self.globals
            .slow_closes
            .fetch_add(closed as u64, Ordering::Relaxed);
        self.globals
            .budget_closes
            .fetch_add(closed as u64, Ordering::Relaxed);
        if closed > 0 && self.globals.log_allowed() {
            tracing::warn!(
                shard = self.id,
                closed,
                unsent = total,
                budget,
                "shard over its buffered-bytes budget: closed the largest slow consumers"
            );
        }
        total
    }
}

/// The subscription and session rules (§6.3) of an event, worked out once per fan-out so the
/// per-connection check compares no strings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filter {
    /// `sessions.changed`: `sessions.subscribe` subscribers.
    SessionsSubscribers,
    /// `session.message`: those, and message subscribers of the session (as the original).
    SessionMessage,
    /// `session.operation`, `session.typing`: message subscribers of the session only.
    MessageSubscribers,
    /// `exec.approval.*`: approval clients only (§7.4).
    ApprovalClients,
    /// `chat`, `agent` (nodes may subscribe to these too).
    Run,
    /// Other session-scoped streams: subscribed sessions for `session-scoped-events` clients.
    SessionScoped,
    All,
}

impl Filter {
    fn of(ev: &EventTemplate) -> Filter {
        match ev.name.as_str() {
            "sessions.changed" => Filter::SessionsSubscribers,
            "session.message" => Filter::SessionMessage,
            "session.operation" | "session.typing" => Filter::MessageSubscribers,
            "exec.approval.requested" | "exec.approval.resolved" => Filter::ApprovalClients,
            "chat" | "agent" => Filter::Run,
            "chat.side_result" | "session.observer" | "session.tool" => Filter::SessionScoped,
            _ => Filter::All,
        }
    }

    /// Events that reach a node outside the scope guard: those addressed to it, and
    /// `chat`/`agent` of sessions it subscribed to with `node.event chat.subscribe`.
    fn node_wants(self, s: &crate::shard::client::Session, ev: &EventTemplate) -> bool {
        if ev.meta.node.is_some() {
            return ev.meta.node.as_deref() == s.node_id.as_deref();
        }
        self == Filter::Run && subscribed(s, ev)
    }

    fn wants(self, s: &crate::shard::client::Session, ev: &EventTemplate) -> bool {
        match self {
            Filter::SessionsSubscribers => s.sessions_subscribed,
            Filter::SessionMessage => s.sessions_subscribed || subscribed(s, ev),
            Filter::MessageSubscribers => subscribed(s, ev),
            Filter::ApprovalClients => s.approval_client,
            Filter::Run | Filter::SessionScoped => {
                (!ev.meta.tool_events || s.tool_events)
                    && (!s.scoped_events || ev.meta.session.is_none() || subscribed(s, ev))
            }
            Filter::All => true,
        }
    }
}

/// An event's delivery rules, worked out once per fan-out.
struct Rules {
    filter: Filter,
    audience: crate::proto::events::Audience,
    drop_ok: bool,
    max_buffered: usize,
}

/// May the connection take a session's events without subscribing to that session?
fn broad(s: &crate::shard::client::Session) -> bool {
    !s.scoped_events || s.sessions_subscribed || s.role == crate::proto::scopes::Role::Node
}

/// Did the connection subscribe to the event's session?
fn subscribed(s: &crate::shard::client::Session, ev: &EventTemplate) -> bool {
    ev.meta
        .session
        .as_deref()
        .is_some_and(|k| s.subscribed_to(k))
}

/// Unsent bytes above which live-text frames (chat deltas, assistant text) are held back and
/// coalesced: a slow client receives fewer, larger deltas instead of a backlog.
pub const COALESCE_ABOVE: usize = 64 * 1024;

/// Queues an event for one connection under the slow-consumer rule (§6.4): with more than
/// `max_buffered` bytes already unsent, droppable events are skipped (their `seq` still
/// consumed) and anything else closes the connection 1008 "slow consumer" (dropped 1 s later
/// if the close cannot flush). Live text is coalesced per run above [`COALESCE_ABOVE`].
pub fn deliver(
    c: &mut Client,
    ev: &Arc<EventTemplate>,
    with_seq: bool,
    drop_ok: bool,
    max_buffered: usize,
    g: &Globals,
) {
    if c.end.is_some() {
        return;
    }
    if let Some(run) = &ev.meta.ends_run {
        c.held.retain(|(r, _, _)| r != run);
    }
    if let Some(live) = &ev.meta.live {
        if c.over(COALESCE_ABOVE) {
            let frame = live.replace.clone().unwrap_or_else(|| ev.clone());
            match c
                .held
                .iter_mut()
                .find(|(r, e, _)| *r == live.run_id && *e == live.event)
            {
                Some(slot) => slot.2 = frame,
                None => c.held.push((live.run_id.clone(), live.event, frame)),
            }
            g.coalesced_events.fetch_add(1, Ordering::Relaxed);
            crate::metrics::record(|m| m.events_coalesced += 1);
            return;
        } else if let Some(i) = c
            .held
            .iter()
            .position(|(r, e, _)| *r == live.run_id && *e == live.event)
        {
            // Catching up: this frame replaces what was held, as a whole-text frame.
            c.held.swap_remove(i);
            let frame = live.replace.clone().unwrap_or_else(|| ev.clone());
            c.push_event(&frame, with_seq);
            crate::metrics::record(|m| m.event_deliveries += 1);
            return;
        }
    }
    flush_held(c);
    // As in the original: what is already buffered decides, so one large frame to an idle
    // connection is always sent.
    if c.over(max_buffered) {
        if drop_ok {
            if with_seq {
                c.seq += 1;
            }
            g.dropped_events.fetch_add(1, Ordering::Relaxed);
            crate::metrics::record(|m| m.events_dropped += 1);
        } else {
            g.slow_closes.fetch_add(1, Ordering::Relaxed);
            if g.log_allowed() {
                tracing::warn!(conn = %c.conn_id, unsent = c.unsent(), "closing slow consumer");
            }
            c.close(close::POLICY, "slow consumer");
        }
        return;
    }
    c.push_event(ev, with_seq);
    crate::metrics::record(|m| m.event_deliveries += 1);
}

/// Sends the held live-text frames once the client has caught up.
pub fn flush_held(c: &mut Client) {
    if c.held.is_empty() || c.unsent() > COALESCE_ABOVE || c.end.is_some() {
        return;
    }
    for (_, _, frame) in std::mem::take(&mut c.held) {
        c.push_event(&frame, true);
    }
}
