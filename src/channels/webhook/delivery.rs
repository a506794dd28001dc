//! Outbound delivery: the body, the worker threads with their retry heaps, one signed POST.

use std::{
    collections::BinaryHeap,
    io::Read,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use crossbeam::channel::{Receiver, RecvTimeoutError};
use serde_json::json;

use super::{
    inbound::sign, Account, Shared, WebhookAccountConfig, CHANNEL_ID, HEADER_ATTEMPT,
    HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use crate::{
    channels::{DeliveryOutcome, DeliveryReport, OutboundMessage, ReportFn},
    state::now_ms,
};

/// Bytes of an error response body kept for `lastError`.
const ERROR_SNIPPET_BYTES: u64 = 200;
/// Bytes of a response body read (and dropped) so the connection can be reused.
const DRAIN_BYTES: u64 = 64 * 1024;

/// The delivery body (see the module docs); built once per delivery so retries resend the same
/// bytes under the same signature input.
pub fn delivery_body(id: &str, account_id: &str, msg: &OutboundMessage, ts_ms: u64) -> Vec<u8> {
    let mut v = json!({
        "id": id,
        "channel": CHANNEL_ID,
        "accountId": account_id,
        "to": msg.to,
        "text": msg.text,
    });
    if let Some(k) = &msg.session_key {
        v["sessionKey"] = json!(k);
    }
    if let Some(r) = &msg.run_id {
        v["runId"] = json!(r);
    }
    v["ts"] = json!(ts_ms);
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Delivery ids travel in a header: visible ASCII only, bounded.
pub(super) fn valid_delivery_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// One delivery in flight.
pub(super) struct Job {
    pub(super) account: Arc<Account>,
    pub(super) id: String,
    pub(super) body: Vec<u8>,
    /// Attempts made so far.
    pub(super) attempts: u32,
    pub(super) report: ReportFn,
}

impl Job {
    /// Reports the outcome; `reached` says whether it came from an attempt just made (so it
    /// says something about the receiver) rather than from abandoning the delivery.
    fn finish(self, outcome: DeliveryOutcome, reached: bool) {
        let rt = &self.account.runtime;
        match &outcome {
            DeliveryOutcome::Delivered { .. } => rt.record_delivered(now_ms()),
            DeliveryOutcome::Failed { error, .. } => rt.record_failed(error, reached),
        }
        (self.report)(DeliveryReport {
            delivery_id: self.id,
            channel: CHANNEL_ID,
            account_id: self.account.config.account_id.clone(),
            attempts: self.attempts,
            outcome,
        });
    }

    fn fail(self, error: String, status: Option<u16>) {
        self.finish(DeliveryOutcome::Failed { error, status }, true);
    }

    /// Gives up without an attempt (stopped account, shutdown).
    fn abandon(self, reason: &str) {
        let error = reason.to_owned();
        self.finish(
            DeliveryOutcome::Failed {
                error,
                status: None,
            },
            false,
        );
    }
}

/// A retry waiting for its due time; ordered so the heap's top is the earliest (ties: FIFO).
struct Pending {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// One delivery thread: takes new jobs from the shared queue and keeps its own retries.
pub(super) struct Worker {
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    retries: BinaryHeap<Pending>,
    seq: u64,
}

impl Worker {
    pub(super) fn new(rx: Receiver<Job>, shared: Arc<Shared>) -> Self {
        Worker {
            rx,
            shared,
            retries: BinaryHeap::new(),
            seq: 0,
        }
    }

    pub(super) fn run(mut self) {
        loop {
            self.run_due();
            let next = match self.retries.peek() {
                Some(p) => {
                    let wait = p.due.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            self.attempt(next);
        }
        for p in std::mem::take(&mut self.retries).into_vec() {
            p.job.abandon("channel shut down");
        }
    }

    /// Attempts every retry whose time has come.
    fn run_due(&mut self) {
        let now = Instant::now();
        while self.retries.peek().is_some_and(|p| p.due <= now) {
            if let Some(p) = self.retries.pop() {
                self.attempt(p.job);
            }
        }
    }

    fn attempt(&mut self, mut job: Job) {
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return job.abandon("channel shut down");
        }
        if !job.account.runtime.is_running() {
            return job.abandon("account stopped");
        }
        job.attempts += 1;
        match post(&job.account, &job.id, &job.body, job.attempts) {
            Ok(status) => job.finish(DeliveryOutcome::Delivered { status }, true),
            Err(e) if e.retryable && job.attempts < job.account.config.max_attempts => {
                job.account.runtime.record_retry(&e.error);
                let delay = backoff(&job.account.config, job.attempts, e.retry_after);
                self.seq += 1;
                self.retries.push(Pending {
                    due: Instant::now() + delay,
                    seq: self.seq,
                    job,
                });
            }
            Err(e) => job.fail(e.error, e.status),
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
struct AttemptError {
    error: String,
    status: Option<u16>,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl AttemptError {
    fn fatal(error: String, status: Option<u16>) -> Self {
        AttemptError {
            error,
            status,
            retryable: false,
            retry_after: None,
        }
    }
}

/// Statuses worth retrying: the receiver is overloaded, timed out, or broken for now.
pub(super) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status)
}

/// Delay before the retry that follows `failures` failed attempts: `backoffMs · 2^(failures-1)`,
/// raised to the receiver's `Retry-After`, never past `maxBackoffMs`.
pub(super) fn backoff(
    c: &WebhookAccountConfig,
    failures: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let ms = c.backoff_ms.saturating_mul(1 << exp).min(c.max_backoff_ms);
    let delay = Duration::from_millis(ms);
    let cap = Duration::from_millis(c.max_backoff_ms);
    retry_after.map_or(delay, |ra| ra.max(delay).min(cap))
}

/// One signed POST. `Ok` with the 2xx status, or why not.
fn post(account: &Account, id: &str, body: &[u8], attempt: u32) -> Result<u16, AttemptError> {
    let c = &account.config;
    let (Some(url), Some(secret)) = (&c.url, &c.secret) else {
        return Err(AttemptError::fatal(
            "account is not configured".into(),
            None,
        ));
    };
    let ts = now_ms();
    let result = account
        .agent
        .post(url)
        .set("content-type", "application/json")
        .set(HEADER_DELIVERY, id)
        .set(HEADER_ATTEMPT, &attempt.to_string())
        .set(HEADER_TIMESTAMP, &ts.to_string())
        .set(
            HEADER_SIGNATURE,
            &sign(secret.expose().as_bytes(), ts, body),
        )
        .send_bytes(body);
    match result {
        Ok(resp) => {
            let status = resp.status();
            drain(resp);
            if (200..300).contains(&status) {
                Ok(status)
            } else {
                Err(AttemptError::fatal(
                    format!("unexpected HTTP {status} (redirects are not followed)"),
                    Some(status),
                ))
            }
        }
        Err(ureq::Error::Status(status, resp)) => {
            let retry_after = resp
                .header("retry-after")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Err(AttemptError {
                error: http_error(status, resp),
                status: Some(status),
                retryable: retryable_status(status),
                retry_after,
            })
        }
        Err(ureq::Error::Transport(t)) => Err(AttemptError {
            retryable: !matches!(
                t.kind(),
                ureq::ErrorKind::InvalidUrl
                    | ureq::ErrorKind::UnknownScheme
                    | ureq::ErrorKind::InsecureRequestHttpsOnly
                    | ureq::ErrorKind::InvalidProxyUrl
            ),
            error: transport_error(&t),
            status: None,
            retry_after: None,
        }),
    }
}

/// Reads (a bounded amount of) the body so the connection can go back to the pool.
fn drain(resp: ureq::Response) {
    let _ = std::io::copy(
        &mut resp.into_reader().take(DRAIN_BYTES),
        &mut std::io::sink(),
    );
}

/// `HTTP <status>`, plus the start of the body: receivers usually say what was wrong there.
fn http_error(status: u16, resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = resp
        .into_reader()
        .take(ERROR_SNIPPET_BYTES)
        .read_to_end(&mut buf);
    let snippet: String = String::from_utf8_lossy(&buf)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match snippet.trim() {
        "" => format!("HTTP {status}"),
        s => format!("HTTP {status}: {s}"),
    }
}

/// The transport error without its URL (which may carry credentials in the query string).
fn transport_error(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    s
}
