//! The channels a gateway runs, built from `ringgate.channels` and shared by every shard (a
//! channel is thread-safe: atomics plus a delivery queue to its own threads). A config reload
//! builds a new hub only when that section changed; the old channels finish what they hold and
//! stop on their own.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{webhook::WebhookChannel, AccountSnapshot, Channel, ReplyRoute};
use crate::config::Config;

#[derive(Default)]
pub struct ChannelHub {
    /// The config section this hub was built from.
    raw: Value,
    pub webhook: Option<Arc<WebhookChannel>>,
}

impl std::fmt::Debug for ChannelHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHub")
            .field("channels", &self.ids())
            .finish()
    }
}

impl ChannelHub {
    /// No channels.
    pub fn empty() -> Arc<ChannelHub> {
        Arc::new(ChannelHub::default())
    }

    /// Starts the configured channels.
    pub fn build(c: &Config) -> std::io::Result<Arc<ChannelHub>> {
        let webhook = match &c.webhook {
            Some(w) => Some(Arc::new(WebhookChannel::new(w.clone())?)),
            None => None,
        };
        Ok(Arc::new(ChannelHub {
            raw: c.channels.clone(),
            webhook,
        }))
    }

    /// A new hub when `ringgate.channels` changed, else `None` (keep the running channels).
    pub fn rebuild(&self, c: &Config) -> std::io::Result<Option<Arc<ChannelHub>>> {
        if c.channels == self.raw {
            return Ok(None);
        }
        ChannelHub::build(c).map(Some)
    }

    pub fn channel(&self, id: &str) -> Option<&dyn Channel> {
        match id {
            super::webhook::CHANNEL_ID => self.webhook.as_deref().map(|w| w as &dyn Channel),
            _ => None,
        }
    }

    /// The longest a delivery through this account can take with all its retries (so a
    /// waiting `send` can give up on a lost report).
    pub fn delivery_budget_ms(&self, channel: &str, account: Option<&str>) -> u64 {
        const FALLBACK_MS: u64 = 15 * 60_000;
        let acc = match (channel, &self.webhook) {
            (super::webhook::CHANNEL_ID, Some(w)) => {
                w.account_config(account.unwrap_or(w.default_account_id()))
            }
            _ => None,
        };
        acc.map(|a| u64::from(a.max_attempts) * (a.timeout_ms + a.max_backoff_ms) + 10_000)
            .unwrap_or(FALLBACK_MS)
    }

    pub fn ids(&self) -> Vec<&'static str> {
        self.webhook
            .iter()
            .map(|_| super::webhook::CHANNEL_ID)
            .collect()
    }

    /// `channels.status {channel?}` in the original's `ChannelsStatusResult` shape.
    pub fn status(&self, only: Option<&str>, now: u64) -> Value {
        let mut order = Vec::new();
        let mut labels = Map::new();
        let mut meta = Vec::new();
        let mut summaries = Map::new();
        let mut accounts = Map::new();
        let mut defaults = Map::new();
        let mut issues = Vec::new();
        for id in self.ids() {
            if only.is_some_and(|o| o != id) {
                continue;
            }
            let ch = self.channel(id).expect("listed channel");
            let snaps = ch.accounts();
            order.push(id);
            labels.insert(id.into(), json!(ch.label()));
            meta.push(json!({"id": id, "label": ch.label(), "detailLabel": ch.label()}));
            summaries.insert(id.into(), ch.status());
            accounts.insert(
                id.into(),
                Value::Array(snaps.iter().map(|a| account_json(id, a)).collect()),
            );
            defaults.insert(id.into(), json!(ch.default_account_id()));
            issues.extend(snaps.iter().filter_map(|a| issue(id, a)));
        }
        json!({
            "ts": now,
            "channelOrder": order,
            "channelLabels": labels,
            "channelDetailLabels": labels,
            "channelSystemImages": {},
            "channelMeta": meta,
            "channels": summaries,
            "channelAccounts": accounts,
            "channelDefaultAccountId": defaults,
            "statusIssues": issues,
        })
    }
}

fn account_json(channel: &str, a: &AccountSnapshot) -> Value {
    let mut v = a.to_value();
    v["webhookPath"] = json!(format!("/channels/{channel}/{}", a.account_id));
    v
}

/// A configuration problem worth showing in `openclaw channels status`.
fn issue(channel: &str, a: &AccountSnapshot) -> Option<Value> {
    let message = if !a.configured {
        "set url (outbound) and secret (both directions) under ringgate.channels.webhook"
    } else if !a.enabled {
        return None;
    } else if let Some(e) = &a.last_error {
        return Some(
            json!({"channel": channel, "accountId": a.account_id, "kind": "runtime",
                           "message": format!("last delivery failed: {e}")}),
        );
    } else {
        return None;
    };
    Some(
        json!({"channel": channel, "accountId": a.account_id, "kind": "config", "message": message}),
    )
}

/// Delivers a run's final reply through the channel its message came from. The outcome is
/// logged and counted in the account's status (`channels.status`); the reply is already in the
/// session either way.
pub fn forward_reply(
    hub: &ChannelHub,
    route: &ReplyRoute,
    session_key: &str,
    run_id: &str,
    text: &str,
) {
    let Some(ch) = hub.channel(route.channel) else {
        tracing::warn!(
            channel = route.channel,
            run_id,
            "reply not forwarded: channel no longer configured"
        );
        return;
    };
    let msg = super::OutboundMessage {
        account_id: Some(route.account_id.clone()),
        to: route.to.clone(),
        text: text.to_owned(),
        session_key: Some(session_key.to_owned()),
        run_id: Some(run_id.to_owned()),
        // Run ids can be long or carry characters a delivery id may not: hash them.
        delivery_id: Some(format!(
            "reply-{:016x}",
            crate::fingerprint::fingerprint(&[run_id])
        )),
    };
    let run = run_id.to_owned();
    let report: super::ReportFn = Box::new(move |r: super::DeliveryReport| {
        if r.is_delivered() {
            tracing::info!(run_id = %run, attempts = r.attempts, "reply delivered");
        } else {
            tracing::warn!(run_id = %run, report = %r.to_value(), "reply delivery failed");
        }
    });
    if let Err(e) = ch.send(msg, report) {
        tracing::warn!(channel = route.channel, run_id, error = %e, "reply not forwarded");
    }
}
