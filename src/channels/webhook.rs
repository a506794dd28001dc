//! The built-in `webhook` channel.
//!
//! ## Outbound
//!
//! Each delivery is an HTTP `POST` of this JSON body to the account's `url`:
//!
//! ```json
//! {"id": "<deliveryId>", "channel": "webhook", "accountId": "default", "to": "<recipient>",
//!  "text": "<message>", "sessionKey": "<optional>", "runId": "<optional>", "ts": 1700000000000}
//! ```
//!
//! with these headers:
//!
//! * `Content-Type: application/json`
//! * `X-Ringgate-Delivery: <deliveryId>` — the same on every attempt, so receivers can dedupe.
//! * `X-Ringgate-Attempt: <n>` — 1 for the first attempt.
//! * `X-Ringgate-Timestamp: <ms since the Unix epoch>` — fresh on every attempt.
//! * `X-Ringgate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by secret>`.
//!
//! A 2xx answer delivers. Connection errors, timeouts, 408, 429 and 5xx are retried with
//! exponential backoff (`backoffMs · 2^(n-1)`, capped at `maxBackoffMs`, at least a
//! `Retry-After` in seconds) until `maxAttempts`; other statuses (other 4xx, and 3xx: redirects
//! are not followed) fail at once. The body bytes are built once, so every attempt sends the
//! same body.
//!
//! Deliveries run on `workers` dedicated threads fed by one bounded queue (`queueSize`); a full
//! queue is refused at once ([`ChannelError::QueueFull`]) instead of blocking the shard. Each
//! worker keeps its waiting retries in a heap ordered by due time and waits on the queue only
//! until the next one is due, so a backoff never holds up other deliveries.
//!
//! ## Inbound
//!
//! `POST /channels/webhook/<accountId>` (wired by the HTTP layer) carries the same two headers
//! `X-Ringgate-Timestamp` and `X-Ringgate-Signature`, signed the same way with the account's
//! secret, and a body `{"text": "...", "from": "...", "sessionKey"?: "...", "messageId"?: "..."}`.
//! [`WebhookChannel::receive`] checks size, then timestamp freshness (`replayWindowMs` either
//! way), then the signature (constant time), and only then parses the body.
//!
//! ## Config (`ringgate.channels.webhook`)
//!
//! ```json5
//! { url: "https://example.com/hook", secret: "…16+ chars…", // or secretEnv: "VAR"
//!   enabled: true, name: "Ops", maxAttempts: 5, backoffMs: 500, maxBackoffMs: 60000,
//!   timeoutMs: 10000, sessionKey: "main", replayWindowMs: 300000, maxInboundBytes: 65536,
//!   queueSize: 1024, workers: 2,
//!   accounts: { ops: { url: "…" } } }   // accounts inherit the keys above
//! ```
//!
//! Without `accounts` the keys above form the one account `default`; with `accounts`, `default`
//! exists only if the top level sets a `url` (or `accounts` names it).

mod config;
mod delivery;
pub mod inbound;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crossbeam::channel::{Sender, TrySendError};

use self::delivery::{valid_delivery_id, Job, Worker};
pub use self::{
    config::{parse_config, valid_account_id, Secret, WebhookAccountConfig, WebhookConfig},
    delivery::delivery_body,
    inbound::{
        parse_inbound, sign, verify_inbound, verify_signature, InboundError, InboundHeaders,
        InboundMessage,
    },
};
use super::{AccountRuntime, AccountSnapshot, Channel, ChannelError, OutboundMessage, ReportFn};
use crate::state::now_ms;

pub const CHANNEL_ID: &str = "webhook";
pub const DEFAULT_ACCOUNT_ID: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_BACKOFF_MS: u64 = 500;
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 60_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_SESSION_KEY: &str = "main";
pub const DEFAULT_REPLAY_WINDOW_MS: u64 = 5 * 60_000;
pub const DEFAULT_MAX_INBOUND_BYTES: usize = 64 * 1024;
pub const DEFAULT_QUEUE_SIZE: usize = 1024;
pub const DEFAULT_WORKERS: usize = 2;
/// Shortest accepted secret: shorter keys make the HMAC guessable.
pub const MIN_SECRET_LEN: usize = 16;

/// Header names, lowercase (HTTP header names are case-insensitive).
pub const HEADER_TIMESTAMP: &str = "x-ringgate-timestamp";
pub const HEADER_SIGNATURE: &str = "x-ringgate-signature";
pub const HEADER_DELIVERY: &str = "x-ringgate-delivery";
pub const HEADER_ATTEMPT: &str = "x-ringgate-attempt";

/// One account: its config, live state and HTTP agent (which pools connections to its URL).
struct Account {
    config: WebhookAccountConfig,
    runtime: AccountRuntime,
    agent: ureq::Agent,
}

impl Account {
    fn new(config: WebhookAccountConfig, now: u64) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirects(0)
            .user_agent(concat!("ringgate/", env!("CARGO_PKG_VERSION")))
            .build();
        let runtime = AccountRuntime::default();
        runtime.set_running(config.enabled, now);
        Account {
            config,
            runtime,
            agent,
        }
    }

    fn snapshot(&self) -> AccountSnapshot {
        let c = &self.config;
        self.runtime
            .snapshot(&c.account_id, c.name.as_deref(), c.enabled, c.configured())
    }
}

/// State the channel and its workers share.
#[derive(Default)]
struct Shared {
    shutting_down: AtomicBool,
}

/// The `webhook` channel: accounts plus the delivery workers. Dropping it fails the
/// deliveries still queued or waiting to retry (reporting each) and joins the workers, which
/// waits for attempts in progress (up to `timeoutMs`): drop it at shutdown off the shards.
pub struct WebhookChannel {
    accounts: Vec<Arc<Account>>,
    default_account: String,
    tx: Option<Sender<Job>>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl WebhookChannel {
    /// Starts the worker threads; enabled accounts start running.
    pub fn new(config: WebhookConfig) -> std::io::Result<Self> {
        let now = now_ms();
        let default_account = config
            .accounts
            .iter()
            .find(|a| a.account_id == DEFAULT_ACCOUNT_ID)
            .or(config.accounts.first())
            .map_or(DEFAULT_ACCOUNT_ID.to_owned(), |a| a.account_id.clone());
        let accounts = config
            .accounts
            .into_iter()
            .map(|c| Arc::new(Account::new(c, now)))
            .collect();
        // A zero-capacity queue would refuse every send; zero workers would never deliver.
        let (tx, rx) = crossbeam::channel::bounded(config.queue_size.max(1));
        let shared = Arc::new(Shared::default());
        let worker_count = config.workers.max(1);
        let mut workers = Vec::with_capacity(worker_count);
        for i in 0..worker_count {
            let worker = Worker::new(rx.clone(), shared.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("webhook-{i}"))
                    .spawn(move || worker.run())?,
            );
        }
        Ok(WebhookChannel {
            accounts,
            default_account,
            tx: Some(tx),
            shared,
            workers,
        })
    }

    /// The account's config, if it exists.
    pub fn account_config(&self, account_id: &str) -> Option<&WebhookAccountConfig> {
        self.account(account_id).map(|a| &a.config)
    }

    fn account(&self, account_id: &str) -> Option<&Arc<Account>> {
        self.accounts
            .iter()
            .find(|a| a.config.account_id == account_id)
    }

    fn find(&self, account_id: Option<&str>) -> Result<&Arc<Account>, ChannelError> {
        let id = account_id.unwrap_or(&self.default_account);
        self.account(id)
            .ok_or_else(|| ChannelError::UnknownAccount(id.to_owned()))
    }

    /// The accounts `start`/`stop` act on: one, or all when `None`.
    fn targets(&self, account_id: Option<&str>) -> Result<Vec<&Arc<Account>>, ChannelError> {
        match account_id {
            Some(_) => Ok(vec![self.find(account_id)?]),
            None => Ok(self.accounts.iter().collect()),
        }
    }

    /// Verifies and parses an inbound request for `account_id` (from the URL path), counting
    /// it on success. Pure CPU work (an HMAC and a JSON parse): fine on a shard.
    pub fn receive(
        &self,
        account_id: &str,
        headers: &InboundHeaders,
        body: &[u8],
    ) -> Result<InboundMessage, InboundError> {
        let account = self
            .account(account_id)
            .ok_or_else(|| InboundError::UnknownAccount(account_id.to_owned()))?;
        if !account.config.enabled {
            return Err(InboundError::NotAccepting {
                account: account_id.to_owned(),
                reason: "disabled",
            });
        }
        if !account.runtime.is_running() {
            return Err(InboundError::Stopped(account_id.to_owned()));
        }
        let now = now_ms();
        let msg = verify_inbound(&account.config, headers, body, now)?;
        account.runtime.record_inbound(now);
        Ok(msg)
    }
}

impl Channel for WebhookChannel {
    fn id(&self) -> &'static str {
        CHANNEL_ID
    }

    fn label(&self) -> &'static str {
        "Webhook"
    }

    fn default_account_id(&self) -> &str {
        &self.default_account
    }

    fn accounts(&self) -> Vec<AccountSnapshot> {
        self.accounts.iter().map(|a| a.snapshot()).collect()
    }

    fn start(&self, account_id: Option<&str>) -> Result<(), ChannelError> {
        let targets = self.targets(account_id)?;
        if account_id.is_some() && !targets[0].config.enabled {
            return Err(ChannelError::Disabled(targets[0].config.account_id.clone()));
        }
        let now = now_ms();
        for a in targets.iter().filter(|a| a.config.enabled) {
            a.runtime.set_running(true, now);
        }
        Ok(())
    }

    fn stop(&self, account_id: Option<&str>) -> Result<(), ChannelError> {
        let now = now_ms();
        for a in self.targets(account_id)? {
            a.runtime.set_running(false, now);
        }
        Ok(())
    }

    fn send(&self, msg: OutboundMessage, report: ReportFn) -> Result<String, ChannelError> {
        let account = self.find(msg.account_id.as_deref())?;
        let c = &account.config;
        if !c.enabled {
            return Err(ChannelError::Disabled(c.account_id.clone()));
        }
        let missing = |what| ChannelError::NotConfigured {
            account: c.account_id.clone(),
            missing: what,
        };
        c.url.as_ref().ok_or_else(|| missing("url"))?;
        c.secret.as_ref().ok_or_else(|| missing("secret"))?;
        if !account.runtime.is_running() {
            return Err(ChannelError::NotRunning(c.account_id.clone()));
        }
        let id = match &msg.delivery_id {
            Some(id) if valid_delivery_id(id) => id.clone(),
            Some(_) => {
                return Err(ChannelError::InvalidMessage(
                    "delivery id must be 1-128 visible ASCII characters".into(),
                ))
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        if msg.text.is_empty() {
            return Err(ChannelError::InvalidMessage(
                "text must not be empty".into(),
            ));
        }
        let tx = self.tx.as_ref().ok_or(ChannelError::ShutDown)?;
        let job = Job {
            body: delivery_body(&id, &c.account_id, &msg, now_ms()),
            account: account.clone(),
            id: id.clone(),
            attempts: 0,
            report,
        };
        account.runtime.record_queued();
        match tx.try_send(job) {
            Ok(()) => Ok(id),
            Err(e) => {
                account.runtime.record_rejected();
                Err(match e {
                    TrySendError::Full(_) => ChannelError::QueueFull,
                    TrySendError::Disconnected(_) => ChannelError::ShutDown,
                })
            }
        }
    }
}

impl Drop for WebhookChannel {
    /// Signals the workers and returns at once: they finish the attempt in flight (bounded by
    /// `timeoutMs`), fail waiting retries with "channel shut down" and exit on their own.
    /// Dropping must not block, because the last holder may be a shard thread (a config reload
    /// replaces the channel).
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        self.tx = None;
        // Dropping the handles detaches the threads.
        self.workers.clear();
    }
}

#[cfg(test)]
mod tests;
