//! A run's `chat` events for a task on this shard that is not a WebSocket client: an HTTP
//! completion streams its run through one. Every shard fans out every run event it may
//! deliver, so the events of a run owned elsewhere arrive here too; a tap takes those of one
//! run, in order, before any subscription filtering.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::poll_fn,
    rc::Rc,
    sync::Arc,
    task::{Poll, Waker},
    time::Instant,
};

use serde_json::Value;

use crate::proto::frame::EventTemplate;

/// Events held for a reader that is behind. A delta carries the whole text so far, so when
/// the queue is full the oldest delta (or status) is dropped and nothing is lost; a run's
/// last event is never dropped.
const MAX_QUEUED: usize = 256;

pub struct RunTap {
    session: Arc<str>,
    run_id: String,
    queue: RefCell<VecDeque<Value>>,
    waker: Cell<Option<Waker>>,
    /// The run's last event (final, aborted or error) has arrived.
    ended: Cell<bool>,
}

fn state(p: &Value) -> &str {
    p["state"].as_str().unwrap_or_default()
}

impl RunTap {
    pub fn new(session: &str, run_id: &str) -> Rc<RunTap> {
        Rc::new(RunTap {
            session: Arc::from(session),
            run_id: run_id.to_owned(),
            queue: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
            ended: Cell::new(false),
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Has the run ended (whether or not its reader has taken the last event)?
    pub fn ended(&self) -> bool {
        self.ended.get()
    }

    fn offer(&self, payload: Value) {
        let droppable = |p: &Value| matches!(state(p), "delta" | "status");
        if matches!(state(&payload), "final" | "aborted" | "error") {
            self.ended.set(true);
        }
        let mut q = self.queue.borrow_mut();
        let full = q.len() >= MAX_QUEUED;
        match q.back_mut() {
            // A delta behind another delta replaces it: it carries the whole text, so a
            // reader that is behind holds one copy of the reply, not one per delta.
            Some(last) if state(last) == "delta" && state(&payload) == "delta" => *last = payload,
            _ if full && droppable(&payload) => return,
            _ => {
                if full {
                    if let Some(i) = q.iter().position(droppable) {
                        q.remove(i);
                    }
                }
                q.push_back(payload);
            }
        }
        drop(q);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The next `chat` payload of the run, or `None` at `deadline`.
    pub async fn next(&self, deadline: Instant) -> Option<Value> {
        let wait = poll_fn(|cx| match self.queue.borrow_mut().pop_front() {
            Some(p) => Poll::Ready(p),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        });
        crate::rt::timeout(deadline.saturating_duration_since(Instant::now()), wait).await
    }
}

/// Hands a fanned-out event to the taps it belongs to (only `chat` events of a tapped
/// session are decoded), every tap of its run.
pub fn feed(taps: &[Rc<RunTap>], ev: &EventTemplate) {
    if ev.name != "chat" {
        return;
    }
    let Some(session) = ev.meta.session.as_deref() else {
        return;
    };
    if !taps.iter().any(|t| &*t.session == session) {
        return;
    }
    let Ok(mut frame) = serde_json::from_slice::<Value>(&ev.to_vec(None)) else {
        return;
    };
    let payload = frame["payload"].take();
    let Some(run) = payload["runId"].as_str() else {
        return;
    };
    // Several readers may follow one run (a hook retried with its idempotency key).
    let mut readers = taps.iter().filter(|t| t.run_id == run).peekable();
    while let Some(t) = readers.next() {
        if readers.peek().is_some() {
            t.offer(payload.clone());
        } else {
            t.offer(payload);
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::EventMeta;
    use serde_json::json;

    fn chat(session: &str, run: &str, state: &str, n: u64) -> EventTemplate {
        EventTemplate::new(
            "chat",
            &json!({"runId": run, "sessionKey": session, "state": state, "seq": n}),
            None,
        )
        .with_meta(EventMeta {
            session: Some(Arc::from(session)),
            ..Default::default()
        })
    }

    #[test]
    fn every_reader_of_a_run_gets_its_events() {
        let (a, b) = (
            RunTap::new("agent:main:a", "r1"),
            RunTap::new("agent:main:a", "r1"),
        );
        let taps = [a.clone(), b.clone()];
        feed(&taps, &chat("agent:main:a", "r1", "final", 1));
        assert!(a.ended() && b.ended());
    }

    #[test]
    fn a_tap_takes_its_runs_events_and_keeps_the_last() {
        let tap = RunTap::new("agent:main:a", "r1");
        let taps = [tap.clone()];
        feed(&taps, &chat("agent:main:b", "r1", "delta", 1));
        feed(&taps, &chat("agent:main:a", "r2", "delta", 1));
        // A reader that is behind holds the newest delta only.
        for n in 0..1000 {
            feed(&taps, &chat("agent:main:a", "r1", "delta", n));
        }
        feed(&taps, &chat("agent:main:a", "r1", "final", 1000));
        let q = tap.queue.borrow();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0]["seq"], 999);
        assert_eq!(q[1]["state"], "final");
        drop(q);
        assert!(tap.ended());
        // Other events never coalesce; past the bound the oldest delta goes, the end stays.
        let tap = RunTap::new("agent:main:a", "r1");
        let taps = [tap.clone()];
        for n in 0..(MAX_QUEUED as u64 + 10) {
            feed(&taps, &chat("agent:main:a", "r1", "status", n));
            feed(&taps, &chat("agent:main:a", "r1", "delta", n));
        }
        assert!(!tap.ended());
        feed(&taps, &chat("agent:main:a", "r1", "final", 9999));
        let q = tap.queue.borrow();
        assert!(q.len() <= MAX_QUEUED);
        assert_eq!(q.back().unwrap()["state"], "final");
    }
}
