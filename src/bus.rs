//! The cross-shard bus: one bounded lock-free inbox per shard (crossbeam `ArrayQueue` plus an
//! `AtomicWaker`), drained completely on each wake. A broadcast is encoded once on its origin
//! shard and sent once per other shard as an `Arc`, never once per connection.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::Poll,
};

use atomic_waker::AtomicWaker;
use crossbeam::queue::ArrayQueue;

use crate::{proto::frame::EventTemplate, state::presence::Delta, store::DeviceDelta};

/// Messages between shards.
#[derive(Debug, Clone)]
pub enum BusMsg {
    /// Fan an encoded event out to this shard's eligible connections.
    Broadcast(Arc<EventTemplate>),
    /// Apply a presence change to this shard's replica, then fan out the event (if any).
    Presence {
        delta: Delta,
        /// `stateVersion.presence` of this change.
        version: u64,
        event: Option<Arc<EventTemplate>>,
    },
    /// A paired-device change from the storage thread (already durable).
    Device(DeviceDelta),
    /// Record a queued system event (`wake` text).
    SystemEvent(String),
    /// Send `shutdown` to every client, close them 1012 and stop.
    Shutdown,
    /// A session request for the session's owner shard.
    SessionCall(Box<crate::chat::SessionCall>),
    /// An answer for an owner on this shard waiting in-process.
    Answered(
        Box<(
            crate::effects::Waiter,
            Result<serde_json::Value, crate::proto::errors::ErrorShape>,
        )>,
    ),
    /// A response frame for connection `conn` on this shard.
    Reply { conn: u64, frame: Vec<u8> },
    /// Output of an agent runtime for a run owned by this shard.
    RunOutput {
        run_id: Arc<str>,
        out: Box<crate::agent::Output>,
    },
    /// Output of a model call made for a worker of a run owned by this shard.
    Inference(Box<(Arc<str>, String, crate::worker::inference::InferenceOut)>),
    /// A run started or ended (the replicated run index).
    RunNote(crate::chat::runs::RunNote),
    /// A node connected or disconnected (the replicated node registry).
    Node(crate::nodes::registry::NodeDelta),
    /// `node.invoke` traffic between the caller's and the node's shard.
    Invoke(Box<crate::nodes::invoke::InvokeMsg>),
    /// A `send` for the owner shard of its idempotency key.
    ChannelSend(Box<crate::channels::sends::SendCall>),
    /// The final outcome of a `send` delivery, for the owner shard.
    ChannelReport(Box<(String, crate::channels::DeliveryReport)>),
    /// A `cron.*` request for the cron owner shard.
    Cron(Box<crate::cron::service::CronCall>),
    /// How many sessions there are and the newest (from the storage thread).
    Sessions(Arc<crate::store::sessions_summary::Summary>),
    /// A renewed TLS certificate for new connections (from the renewal thread).
    Tls(Arc<crate::tls::Acceptor>),
    /// A new live config (from the storage thread, already on disk).
    Config(Arc<crate::store::config::ConfigUpdate>),
    /// An exec-approval request for the approvals owner shard.
    Approval(Box<crate::approvals::ApprovalCall>),
    /// A failed shared-secret check from this IP on another shard (the limiter is per IP
    /// across the gateway).
    AuthFailure {
        ip: std::net::IpAddr,
        at_ms: u64,
        scope: crate::auth::ratelimit::Scope,
    },
    /// A successful connect from this IP cleared its failures on another shard.
    AuthSuccess {
        ip: std::net::IpAddr,
        scope: crate::auth::ratelimit::Scope,
    },
    /// Presence changes of clients on other hosts (for shard 0, which announces them here).
    RemotePresence(Vec<Delta>),
    /// A cluster host left: its nodes are gone, invokes waiting on them fail, and the
    /// sessions it owned are looked up again.
    HostGone(Arc<str>),
    /// The cluster link found the owner host of the session of a call this shard asked
    /// about (or why it could not): the call goes on from here.
    Owner {
        host: Result<Arc<str>, String>,
        call: Box<crate::chat::SessionCall>,
    },
    /// The cluster as the link sees it now.
    Cluster(Arc<crate::cluster::View>),
    /// A scrape asks for this shard's metrics.
    Metrics(Arc<crate::metrics::gather::Gather>),
}

/// Messages an inbox holds before senders spill into their local overflow queue.
pub const INBOX_CAPACITY: usize = 16_384;

/// Messages one sender may hold for one destination beyond its inbox. A destination this far
/// behind is not draining at all (a live shard empties its inbox on every wake); growing the
/// queue further would only turn a stalled shard into an out-of-memory kill, so the process
/// stops instead (`crate::panic_policy`).
pub const MAX_OVERFLOW: usize = 1 << 20;

/// One shard's inbox (and the cluster link's, with its own message type).
pub struct Inbox<T = BusMsg> {
    queue: ArrayQueue<T>,
    waker: AtomicWaker,
    /// Pushes that found the queue full (and were retried from the sender's overflow).
    pub full_events: AtomicU64,
}

impl Inbox {
    fn new() -> Self {
        Inbox::with_capacity(INBOX_CAPACITY)
    }
}

impl<T> Inbox<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        Inbox {
            queue: ArrayQueue::new(capacity),
            waker: AtomicWaker::new(),
            full_events: AtomicU64::new(0),
        }
    }

    /// Pushes without blocking; hands the message back when full.
    pub fn push(&self, msg: T) -> Result<(), T> {
        let r = self.queue.push(msg);
        if r.is_err() {
            self.full_events.fetch_add(1, Ordering::Relaxed);
        }
        self.waker.wake();
        r
    }

    /// Messages waiting (`diagnostics.lanes`).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drains what is queued now, without waiting.
    pub fn drain_now(&self, out: &mut Vec<T>) {
        while let Some(m) = self.queue.pop() {
            out.push(m);
        }
    }

    /// Waits until the inbox is non-empty, then drains it all into `out`.
    pub async fn recv_all(&self, out: &mut Vec<T>) {
        poll_fn(|cx| {
            while let Some(m) = self.queue.pop() {
                out.push(m);
            }
            if !out.is_empty() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Re-check after registering so a push between pop and register is not missed.
            while let Some(m) = self.queue.pop() {
                out.push(m);
            }
            if out.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

/// All inboxes; shared by every shard (immutable after start).
pub struct Bus {
    inboxes: Vec<Inbox>,
}

impl Bus {
    pub fn new(shards: usize) -> Arc<Bus> {
        Arc::new(Bus {
            inboxes: (0..shards).map(|_| Inbox::new()).collect(),
        })
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    pub fn inbox(&self, shard: usize) -> &Inbox {
        &self.inboxes[shard]
    }

    /// Pushes `m` into one shard's inbox from a thread that may wait (storage, channel and
    /// agent threads): a full inbox is retried every millisecond, never dropped.
    pub fn push_waiting(&self, shard: usize, mut m: BusMsg) {
        while let Err(back) = self.inboxes[shard].push(m) {
            m = back;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl crate::store::Publish for Bus {
    fn to_every_shard(&self, n: crate::store::Notice) {
        use crate::store::Notice;
        let m = match n {
            Notice::Device(d) | Notice::DeviceSynced(d) => BusMsg::Device(d),
            Notice::Broadcast(ev) => BusMsg::Broadcast(ev),
            Notice::Sessions(s) => BusMsg::Sessions(s),
            Notice::Config(c) => BusMsg::Config(c),
        };
        for shard in 0..self.shards() {
            self.push_waiting(shard, m.clone());
        }
    }
}

/// A shard's sending side: per-destination overflow so a full inbox never drops a message.
pub struct Sender {
    bus: Arc<Bus>,
    me: usize,
    overflow: Vec<VecDeque<BusMsg>>,
}

impl Sender {
    pub fn new(bus: Arc<Bus>, me: usize) -> Self {
        let n = bus.shards();
        Sender {
            bus,
            me,
            overflow: (0..n).map(|_| VecDeque::new()).collect(),
        }
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Sends to every other shard.
    pub fn to_others(&mut self, msg: BusMsg) {
        for dest in 0..self.bus.shards() {
            if dest != self.me {
                self.send(dest, msg.clone());
            }
        }
    }

    pub fn send(&mut self, dest: usize, msg: BusMsg) {
        if !self.overflow[dest].is_empty() {
            self.spill(dest, msg);
            return;
        }
        if let Err(msg) = self.bus.inbox(dest).push(msg) {
            self.spill(dest, msg);
        }
    }

    /// Queues a message that found the destination's inbox full.
    fn spill(&mut self, dest: usize, msg: BusMsg) {
        if self.overflow[dest].len() >= MAX_OVERFLOW {
            eprintln!(
                "ringgate: fatal: shard {dest} has not drained its inbox ({} messages waiting \
                 at shard {}); exiting with code {}",
                INBOX_CAPACITY + MAX_OVERFLOW,
                self.me,
                crate::panic_policy::EXIT_CODE
            );
            tracing::error!(
                dest,
                from = self.me,
                "fatal: bus destination stalled; exiting"
            );
            crate::panic_policy::fatal_exit();
        }
        self.overflow[dest].push_back(msg);
    }

    /// Messages held for full inboxes, over every destination.
    pub fn overflow_len(&self) -> usize {
        self.overflow.iter().map(VecDeque::len).sum()
    }

    /// Retries spilled messages in order; true while some remain.
    pub fn flush_overflow(&mut self) -> bool {
        let mut pending = false;
        for (dest, q) in self.overflow.iter_mut().enumerate() {
            while let Some(m) = q.pop_front() {
                if let Err(m) = self.bus.inbox(dest).push(m) {
                    q.push_front(m);
                    pending = true;
                    break;
                }
            }
        }
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_preserves_order() {
        let bus = Bus::new(2);
        let mut s = Sender::new(bus.clone(), 0);
        for i in 0..INBOX_CAPACITY + 10 {
            s.send(1, BusMsg::SystemEvent(i.to_string()));
        }
        let mut got = Vec::new();
        while let Some(BusMsg::SystemEvent(t)) = bus.inbox(1).queue.pop() {
            got.push(t);
        }
        assert_eq!(got.len(), INBOX_CAPACITY);
        assert!(!s.flush_overflow());
        while let Some(BusMsg::SystemEvent(t)) = bus.inbox(1).queue.pop() {
            got.push(t);
        }
        let want: Vec<String> = (0..INBOX_CAPACITY + 10).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
    }
}
