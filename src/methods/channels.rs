//! `channels.status|start|stop` and `send`. Channels are shared by every shard; a `send` goes
//! to the owner shard of its idempotency key ([`crate::channels::sends`]).

use serde_json::{json, Value};

use super::{str_param, Call, Outcome, Routed};
use crate::{
    channels::OutboundMessage,
    proto::errors::{code, ErrorShape},
    shard::ctx::ShardCtx,
};

pub const METHODS: &[&str] = &["channels.status", "channels.start", "channels.stop", "send"];

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    super::outcome(run(ctx, call))
}

fn run(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    match call.method {
        "channels.status" => {
            let mut v = ctx.channels.status(str_param(p, "channel"), call.now_ms);
            v["eventLoop"] = ctx.globals.event_loop();
            Ok(Outcome::Reply(Ok(v)))
        }
        "channels.start" | "channels.stop" => {
            let id = str_param(p, "channel").unwrap_or_default();
            let ch = ctx
                .channels
                .channel(id)
                .ok_or_else(|| ErrorShape::invalid(format!("unsupported channel: {id}")))?;
            let account = str_param(p, "accountId").filter(|a| !a.is_empty());
            let r = if call.method == "channels.start" {
                ch.start(account)
            } else {
                ch.stop(account)
            };
            r.map_err(|e| ErrorShape::new(e.code(), e.to_string()))?;
            let account = account.unwrap_or(ch.default_account_id());
            let running = ch
                .accounts()
                .iter()
                .any(|a| a.account_id == account && a.running);
            tracing::info!(channel = id, account, running, "{}", call.method);
            Ok(Outcome::Reply(Ok(
                json!({"ok": true, "channel": id, "accountId": account, "running": running}),
            )))
        }
        _ => send(ctx, p),
    }
}

/// `send {to, message, channel?, accountId?, idempotencyKey, sessionKey?}`: text only.
fn send(ctx: &ShardCtx, p: &Value) -> Result<Outcome, ErrorShape> {
    for media in ["mediaUrl", "mediaUrls", "buffer"] {
        if p.get(media).is_some() {
            return Err(ErrorShape::invalid(format!(
                "{media} is not supported: ringgate channels send text only"
            )));
        }
    }
    let text = str_param(p, "message").unwrap_or_default();
    if text.trim().is_empty() {
        return Err(ErrorShape::invalid("text or media is required"));
    }
    let ids = ctx.channels.ids();
    let channel = match str_param(p, "channel") {
        Some(c) => ids
            .iter()
            .copied()
            .find(|i| *i == c)
            .ok_or_else(|| ErrorShape::invalid(format!("unsupported channel: {c}")))?,
        None if ids.len() == 1 => ids[0],
        None if ids.is_empty() => {
            return Err(ErrorShape::new(
                code::UNAVAILABLE,
                "no channel is configured (set ringgate.channels.webhook)",
            ))
        }
        None => return Err(ErrorShape::invalid("channel is required")),
    };
    let key = str_param(p, "idempotencyKey")
        .unwrap_or_default()
        .to_owned();
    let to = str_param(p, "to").unwrap_or_default().to_owned();
    let account = str_param(p, "accountId").map(str::to_owned);
    let fingerprint =
        crate::chat::fingerprint(&[channel, account.as_deref().unwrap_or(""), &to, text]);
    let msg = OutboundMessage {
        account_id: account,
        to,
        text: text.to_owned(),
        session_key: str_param(p, "sessionKey").map(str::to_owned),
        run_id: None,
        delivery_id: Some(key.clone()),
    };
    Ok(Outcome::routed(Routed::Send {
        key,
        fingerprint,
        channel,
        msg,
    }))
}
