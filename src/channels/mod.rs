//! Channels: where messages leave the gateway (the `send` method, agent replies in mapped
//! sessions) and where outside messages come in. Mirrors the original's `channels.*` family:
//! each channel has accounts, and `channels.status` reports one [`AccountSnapshot`] per account
//! in the original's `ChannelAccountSnapshot` vocabulary.
//!
//! Shards must never block, so [`Channel::send`] only validates and enqueues: it returns the
//! delivery id at once (or a [`ChannelError`] such as a full queue), and the channel's own
//! threads do the I/O and later call the [`ReportFn`] exactly once with the [`DeliveryReport`].
//! The caller routes that report back to the shard (e.g. over the bus).

pub mod hub;
pub mod sends;
pub mod webhook;

use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
    Arc, Mutex,
};

use serde::Serialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::proto::errors::code;

/// Receives the outcome of one accepted delivery. Called exactly once, on a channel thread,
/// never on the shard that called [`Channel::send`]; it must not block for long.
pub type ReportFn = Box<dyn FnOnce(DeliveryReport) + Send>;

/// A [`ReportFn`] that forwards the report into a crossbeam channel (a disconnected receiver
/// just drops it: nobody is waiting any more).
pub fn report_to(tx: crossbeam::channel::Sender<DeliveryReport>) -> ReportFn {
    Box::new(move |r| {
        let _ = tx.send(r);
    })
}

/// Where a run's reply goes besides the session: the channel account and recipient an inbound
/// message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRoute {
    pub channel: &'static str,
    pub account_id: String,
    pub to: String,
}

/// One message to deliver through a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The account to send from; `None` means the channel's default account.
    pub account_id: Option<String>,
    /// The recipient, in the channel's own terms (opaque to the gateway).
    pub to: String,
    pub text: String,
    /// The session the message belongs to, so the receiver can reply into it.
    pub session_key: Option<String>,
    /// The agent run that produced the message, if any.
    pub run_id: Option<String>,
    /// A caller-chosen delivery id (e.g. derived from the `send` idempotency key) so a retried
    /// `send` dedupes at the receiver too; a fresh UUID when `None`.
    pub delivery_id: Option<String>,
}

/// The final outcome of one accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivery_id: String,
    pub channel: &'static str,
    pub account_id: String,
    /// Attempts made (0 when the delivery was abandoned before any, e.g. at shutdown).
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver accepted the message with this (2xx) status.
    Delivered { status: u16 },
    /// Given up: the last error, and the last HTTP status if the receiver answered at all.
    Failed { error: String, status: Option<u16> },
}

impl DeliveryReport {
    pub fn is_delivered(&self) -> bool {
        matches!(self.outcome, DeliveryOutcome::Delivered { .. })
    }

    /// The report as JSON: `{id, channel, accountId, ok, attempts, status?, error?}`.
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "id": self.delivery_id,
            "channel": self.channel,
            "accountId": self.account_id,
            "ok": self.is_delivered(),
            "attempts": self.attempts,
        });
        match &self.outcome {
            DeliveryOutcome::Delivered { status } => v["status"] = json!(status),
            DeliveryOutcome::Failed { error, status } => {
                if let Some(s) = status {
                    v["status"] = json!(s);
                }
                v["error"] = json!(error);
            }
        }
        v
    }
}

/// Why a channel refused a request outright (nothing was queued, no report will follow).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    #[error("unknown account `{0}`")]
    UnknownAccount(String),
    #[error("account `{0}` is disabled")]
    Disabled(String),
    #[error("account `{account}` is not configured: {missing} is not set")]
    NotConfigured {
        account: String,
        missing: &'static str,
    },
    #[error("account `{0}` is stopped")]
    NotRunning(String),
    /// The message itself is unusable (e.g. empty text, a bad delivery id).
    #[error("{0}")]
    InvalidMessage(String),
    /// Back-pressure: the delivery queue is full; try again later.
    #[error("delivery queue is full")]
    QueueFull,
    #[error("channel is shutting down")]
    ShutDown,
}

impl ChannelError {
    /// The protocol `error.code` for this refusal: the caller's mistake or a passing condition.
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::UnknownAccount(_) | ChannelError::InvalidMessage(_) => {
                code::INVALID_REQUEST
            }
            _ => code::UNAVAILABLE,
        }
    }

    /// Whether the same request may succeed later without a config change.
    pub fn retryable(&self) -> bool {
        matches!(self, ChannelError::QueueFull)
    }
}

/// A channel adapter: one kind of outside messaging system, with one or more accounts.
///
/// Every method is safe to call from a shard: none does I/O or waits.
pub trait Channel: Send + Sync {
    /// The channel id (`webhook`), the key in `channels.status`.
    fn id(&self) -> &'static str;
    /// Human label (`channelLabels`).
    fn label(&self) -> &'static str;
    /// The account used when a request names none (`channelDefaultAccountId`).
    fn default_account_id(&self) -> &str;
    /// One snapshot per account, in config order (`channelAccounts`).
    fn accounts(&self) -> Vec<AccountSnapshot>;
    /// The channel-level summary (`channels.<id>`): aggregated from the accounts.
    fn status(&self) -> Value {
        summarize(&self.accounts())
    }
    /// Starts an account (`None`: every account). Starting a running account is a no-op.
    fn start(&self, account_id: Option<&str>) -> Result<(), ChannelError>;
    /// Stops an account: new sends are refused and queued ones fail without another attempt.
    fn stop(&self, account_id: Option<&str>) -> Result<(), ChannelError>;
    /// Queues a delivery and returns its id at once; `report` is called later with the
    /// outcome. On `Err` nothing was queued and `report` is dropped uncalled.
    fn send(&self, msg: OutboundMessage, report: ReportFn) -> Result<String, ChannelError>;
}

/// `channels.<id>` summary: configured/running if any account is, plus the first last error.
pub fn summarize(accounts: &[AccountSnapshot]) -> Value {
    let mut v = json!({
        "configured": accounts.iter().any(|a| a.configured),
        "running": accounts.iter().any(|a| a.running),
    });
    if let Some(e) = accounts.iter().find_map(|a| a.last_error.as_deref()) {
        v["lastError"] = json!(e);
    }
    v
}

/// Counter values at one moment (`counters` in an [`AccountSnapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    /// Deliveries that succeeded.
    pub sent: u64,
    /// Deliveries given up on.
    pub failed: u64,
    /// Re-attempts scheduled after a retryable failure.
    pub retries: u64,
    /// Inbound messages accepted.
    pub received: u64,
    /// Deliveries accepted but not yet finished (queued or waiting to retry).
    pub pending: u64,
}

/// One account's status in the original's `ChannelAccountSnapshot` field names; absent fields
/// are omitted. `counters` is a ringgate addition (the schema allows extra properties).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSnapshot {
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub enabled: bool,
    pub configured: bool,
    pub running: bool,
    /// Whether the last delivery attempt reached the receiver and was accepted; absent before
    /// the first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_start_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_stop_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outbound_at: Option<u64>,
    pub counters: CountersSnapshot,
}

impl AccountSnapshot {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The live, shared state of one account: written by channel threads and inbound handlers,
/// read by status calls. Everything is an atomic except the last error text, whose lock is
/// held only to swap a pointer (never across I/O).
#[derive(Debug, Default)]
pub struct AccountRuntime {
    running: AtomicBool,
    /// 0 = no attempt yet, 1 = last attempt accepted, 2 = last attempt failed.
    connected: AtomicU8,
    last_start_at: AtomicU64,
    last_stop_at: AtomicU64,
    last_inbound_at: AtomicU64,
    last_outbound_at: AtomicU64,
    last_error: Mutex<Option<Arc<str>>>,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    received: AtomicU64,
    pending: AtomicU64,
}

/// 0 stands for "never" in the timestamp atomics.
fn opt_ms(v: &AtomicU64) -> Option<u64> {
    Some(v.load(Ordering::Relaxed)).filter(|&t| t != 0)
}

impl AccountRuntime {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Starts or stops the account, stamping `lastStartAt`/`lastStopAt` on a change.
    pub fn set_running(&self, on: bool, now_ms: u64) {
        if self.running.swap(on, Ordering::AcqRel) != on {
            let stamp = if on {
                &self.last_start_at
            } else {
                &self.last_stop_at
            };
            stamp.store(now_ms, Ordering::Relaxed);
        }
    }

    /// A delivery was accepted into the queue.
    pub fn record_queued(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery counted by [`Self::record_queued`] did not fit in the queue after all.
    pub fn record_rejected(&self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// An attempt failed and another is scheduled.
    pub fn record_retry(&self, error: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.connected.store(2, Ordering::Relaxed);
        self.set_error(error);
    }

    pub fn record_delivered(&self, now_ms: u64) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.connected.store(1, Ordering::Relaxed);
        self.last_outbound_at.store(now_ms, Ordering::Relaxed);
    }

    /// A delivery was given up; `attempted` says whether the receiver was tried at all.
    pub fn record_failed(&self, error: &str, attempted: bool) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.pending.fetch_sub(1, Ordering::Relaxed);
        if attempted {
            self.connected.store(2, Ordering::Relaxed);
        }
        self.set_error(error);
    }

    pub fn record_inbound(&self, now_ms: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_inbound_at.store(now_ms, Ordering::Relaxed);
    }

    fn set_error(&self, error: &str) {
        let e: Arc<str> = Arc::from(error);
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(e);
        }
    }

    pub fn counters(&self) -> CountersSnapshot {
        CountersSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
        }
    }

    /// The snapshot with the config-derived fields supplied by the channel.
    pub fn snapshot(
        &self,
        account_id: &str,
        name: Option<&str>,
        enabled: bool,
        configured: bool,
    ) -> AccountSnapshot {
        let last_error = self
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.as_deref().map(str::to_owned));
        AccountSnapshot {
            account_id: account_id.to_owned(),
            name: name.map(str::to_owned),
            enabled,
            configured,
            running: self.is_running(),
            connected: match self.connected.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n == 1),
            },
            last_error,
            last_start_at: opt_ms(&self.last_start_at),
            last_stop_at: opt_ms(&self.last_stop_at),
            last_inbound_at: opt_ms(&self.last_inbound_at),
            last_outbound_at: opt_ms(&self.last_outbound_at),
            counters: self.counters(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_shapes() {
        let ok = DeliveryReport {
            delivery_id: "d1".into(),
            channel: "webhook",
            account_id: "default".into(),
            attempts: 2,
            outcome: DeliveryOutcome::Delivered { status: 204 },
        };
        assert_eq!(
            ok.to_value(),
            json!({"id":"d1","channel":"webhook","accountId":"default","ok":true,"attempts":2,"status":204})
        );
        let failed = DeliveryReport {
            outcome: DeliveryOutcome::Failed {
                error: "HTTP 500".into(),
                status: Some(500),
            },
            ..ok
        };
        assert_eq!(failed.to_value()["ok"], false);
        assert_eq!(failed.to_value()["error"], "HTTP 500");
    }

    #[test]
    fn snapshot_uses_original_field_names_and_omits_unknowns() {
        let rt = AccountRuntime::default();
        let v = rt.snapshot("default", None, true, false).to_value();
        assert_eq!(
            v,
            json!({"accountId":"default","enabled":true,"configured":false,"running":false,
                   "counters":{"sent":0,"failed":0,"retries":0,"received":0,"pending":0}})
        );
        rt.set_running(true, 5);
        rt.record_queued();
        rt.record_retry("HTTP 503");
        rt.record_delivered(7);
        rt.record_inbound(9);
        let s = rt.snapshot("a", Some("A"), true, true);
        assert_eq!(
            (s.running, s.connected, s.last_start_at),
            (true, Some(true), Some(5))
        );
        assert_eq!(
            (
                s.last_outbound_at,
                s.last_inbound_at,
                s.last_error.as_deref()
            ),
            (Some(7), Some(9), Some("HTTP 503"))
        );
        assert_eq!(
            s.counters,
            CountersSnapshot {
                sent: 1,
                failed: 0,
                retries: 1,
                received: 1,
                pending: 0
            }
        );
        assert_eq!(summarize(&[s])["lastError"], "HTTP 503");
    }
}
