//! A lock-free one-shot channel from the storage thread to a shard task: a one-slot
//! `ArrayQueue` plus an `AtomicWaker` (monoio's `sync` feature makes its wakers cross-thread).

use std::{future::poll_fn, sync::Arc, task::Poll};

use atomic_waker::AtomicWaker;
use crossbeam::queue::ArrayQueue;

pub struct Oneshot<T> {
    slot: ArrayQueue<T>,
    waker: AtomicWaker,
}

impl<T> Oneshot<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Oneshot {
            slot: ArrayQueue::new(1),
            waker: AtomicWaker::new(),
        })
    }

    /// Delivers the value (a second call is ignored).
    pub fn complete(&self, v: T) {
        let _ = self.slot.push(v);
        self.waker.wake();
    }

    /// The value, if it has been delivered (without waiting).
    pub fn try_take(&self) -> Option<T> {
        self.slot.pop()
    }

    /// Waits for the value.
    pub async fn wait(&self) -> T {
        poll_fn(|cx| {
            if let Some(v) = self.slot.pop() {
                return Poll::Ready(v);
            }
            self.waker.register(cx.waker());
            match self.slot.pop() {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            }
        })
        .await
    }
}
