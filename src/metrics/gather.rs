//! Collecting every shard's figures for one scrape, over the bus.
//!
//! The scraping shard sends each other shard an `Arc<Gather>`; each answers on its own loop
//! by pushing its [`Snapshot`] into the gather's lock-free queue and waking the scraper. A
//! shard that does not answer within the scrape's deadline is reported down
//! (`ringgate_shard_up 0`) rather than holding the scrape.

use std::{future::poll_fn, sync::Arc, task::Poll, time::Duration};

use atomic_waker::AtomicWaker;
use crossbeam::queue::ArrayQueue;

use super::shard::ShardMetrics;

/// How long a scrape waits for the other shards.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// What one shard reports: its counters and the gauges only it can read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub shard: usize,
    pub metrics: ShardMetrics,
    /// Connections by (role, phase).
    pub connections: Vec<((&'static str, &'static str), u64)>,
    /// Unsent bytes over this shard's connections.
    pub outbox_bytes: u64,
    /// Messages waiting in this shard's bus inbox, and held in its senders' overflow queues.
    pub inbox_depth: u64,
    pub inbox_full_events: u64,
    pub overflow_len: u64,
    pub invokes_pending: u64,
    /// Runs in progress on the sessions this shard owns (a new turn interrupts the active
    /// one, so nothing queues behind it).
    pub runs_active: u64,
}

/// One scrape's collection point.
pub struct Gather {
    queue: ArrayQueue<Box<Snapshot>>,
    waker: AtomicWaker,
}

impl std::fmt::Debug for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather")
            .field("answered", &self.queue.len())
            .finish()
    }
}

impl Gather {
    pub fn new(shards: usize) -> Arc<Gather> {
        Arc::new(Gather {
            queue: ArrayQueue::new(shards.max(1)),
            waker: AtomicWaker::new(),
        })
    }

    /// A shard's answer (a late or surplus one is dropped).
    pub fn offer(&self, s: Snapshot) {
        let _ = self.queue.push(Box::new(s));
        self.waker.wake();
    }

    /// Waits until `want` snapshots arrived (the caller bounds the wait), then returns them.
    pub async fn collect(&self, want: usize, got: &mut Vec<Snapshot>) {
        poll_fn(|cx| {
            while let Some(s) = self.queue.pop() {
                got.push(*s);
            }
            if got.len() >= want {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            while let Some(s) = self.queue.pop() {
                got.push(*s);
            }
            if got.len() >= want {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
