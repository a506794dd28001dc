//! `send` across shards: every send with one idempotency key is handled by one owner shard
//! (hash of the key), which remembers it, so a retry from any connection gets the first
//! attempt's result instead of a second delivery. The answer waits for the delivery's final
//! outcome (after the channel's retries).

use std::collections::{HashMap, VecDeque};

use serde_json::json;

use super::{ChannelError, DeliveryOutcome, DeliveryReport, OutboundMessage};
use crate::{
    bus::BusMsg,
    chat::{Answer, Caller},
    proto::errors::{code, ErrorShape},
    shard::ctx::ShardCtx,
};

/// How long a finished send is remembered.
const DONE_TTL_MS: u64 = 5 * 60_000;
/// Finished sends remembered at most (oldest forgotten first).
const MAX_DONE: usize = 1000;

/// A `send` for the key's owner shard.
#[derive(Debug, Clone)]
pub struct SendCall {
    pub caller: Caller,
    pub key: String,
    /// Hash of what is sent: a retry with the same key must send the same.
    pub fingerprint: u64,
    pub channel: &'static str,
    pub msg: OutboundMessage,
}

enum State {
    /// Delivering; these callers wait for the outcome.
    Pending(Vec<Caller>),
    Done(Answer),
}

struct Entry {
    fingerprint: u64,
    /// Which attempt this is: a key whose failed send was forgotten may be sent again, and
    /// the first attempt's give-up timer must not answer the second's callers.
    generation: u64,
    state: State,
}

/// The owner's table of sends.
#[derive(Default)]
pub struct Sends {
    map: HashMap<String, Entry>,
    next_generation: u64,
    /// Finished keys, oldest first, with when they finished.
    done: VecDeque<(u64, String)>,
}

impl Sends {
    /// The give-up timer of attempt `generation` of `key` fired: if that attempt is still
    /// pending, it is forgotten and its callers returned (to be told the outcome is unknown).
    /// A later attempt with the same key is not touched by an earlier attempt's timer.
    fn give_up(&mut self, key: &str, generation: u64) -> Option<Vec<Caller>> {
        let current = matches!(
            self.map.get(key),
            Some(Entry { state: State::Pending(_), generation: g, .. }) if *g == generation
        );
        if !current {
            return None;
        }
        match self.map.remove(key) {
            Some(Entry {
                state: State::Pending(waiters),
                ..
            }) => Some(waiters),
            _ => None,
        }
    }

    fn expire(&mut self, now: u64) {
        while let Some((at, key)) = self.done.front() {
            if now.saturating_sub(*at) < DONE_TTL_MS && self.done.len() <= MAX_DONE {
                break;
            }
            self.map.remove(key);
            self.done.pop_front();
        }
    }
}

/// Runs a send on its owner shard.
pub fn handle(ctx: &mut ShardCtx, call: SendCall) {
    let now = crate::state::now_ms();
    ctx.sends.expire(now);
    if let Some(e) = ctx.sends.map.get_mut(&call.key) {
        if e.fingerprint != call.fingerprint {
            let err = ErrorShape::invalid(
                "This idempotency key was already used for a different message; use a new key to send again.",
            );
            call.caller.err(ctx, &err);
            return;
        }
        match &mut e.state {
            State::Pending(waiters) => waiters.push(call.caller),
            State::Done(a) => {
                let a = a.clone();
                call.caller.answer(ctx, &a);
            }
        }
        return;
    }
    let Some(ch) = ctx.channels.channel(call.channel) else {
        call.caller.err(
            ctx,
            &ErrorShape::invalid(format!("unsupported channel: {}", call.channel)),
        );
        return;
    };
    let budget = ctx
        .channels
        .delivery_budget_ms(call.channel, call.msg.account_id.as_deref());
    let bus = ctx.sender.bus().clone();
    let (me, key) = (ctx.id, call.key.clone());
    let report = Box::new(move |report: DeliveryReport| {
        let mut m = BusMsg::ChannelReport(Box::new((key, report)));
        // The delivery thread waits for room rather than lose an outcome.
        while let Err(back) = bus.inbox(me).push(m) {
            m = back;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    match ch.send(call.msg, report) {
        Ok(_) => {
            ctx.sends.next_generation += 1;
            let generation = ctx.sends.next_generation;
            ctx.sends.map.insert(
                call.key.clone(),
                Entry {
                    fingerprint: call.fingerprint,
                    generation,
                    state: State::Pending(vec![call.caller]),
                },
            );
            give_up_after(ctx, call.key, generation, budget);
        }
        // Nothing was queued: not remembered, so a retry may try again.
        Err(e) => call.caller.err(ctx, &refusal(&e)),
    }
}

fn refusal(e: &ChannelError) -> ErrorShape {
    let mut s = ErrorShape::new(e.code(), e.to_string());
    if e.retryable() {
        s = s.with_details(json!({"retryable": true}));
    }
    s
}

/// If no report came within the delivery's whole retry budget (a lost report), answer the
/// waiting callers that the outcome is unknown and forget the send so a retry may try again.
fn give_up_after(ctx: &ShardCtx, key: String, generation: u64, budget_ms: u64) {
    let me = ctx.me.clone();
    monoio::spawn(async move {
        crate::shard::timer::sleep_ms(budget_ms).await;
        let Some(ctx) = me.upgrade() else { return };
        let mut ctx = ctx.borrow_mut();
        let Some(waiters) = ctx.sends.give_up(&key, generation) else {
            return;
        };
        tracing::warn!(key, "no delivery report within the retry budget");
        let e = ErrorShape::new(
            code::UNAVAILABLE,
            format!("delivery outcome unknown: no report within {budget_ms} ms"),
        );
        for w in waiters {
            w.err(&mut ctx, &e);
        }
    });
}

/// A delivery's final outcome, on the owner shard: answer everyone waiting. A delivered
/// message is remembered (a retry gets the same answer); a failed one is forgotten, so a retry
/// with the same key tries again.
pub fn on_report(ctx: &mut ShardCtx, key: String, r: DeliveryReport) {
    let now = crate::state::now_ms();
    let answer = match &r.outcome {
        DeliveryOutcome::Delivered { status } => Answer::Ok(json!({
            "runId": key,
            "messageId": r.delivery_id,
            "channel": r.channel,
            "accountId": r.account_id,
            "attempts": r.attempts,
            "httpStatus": status,
        })),
        DeliveryOutcome::Failed { error, .. } => Answer::Failed(
            r.to_value(),
            ErrorShape::new(
                code::UNAVAILABLE,
                format!("delivery failed after {} attempt(s): {error}", r.attempts),
            )
            .with_details(r.to_value()),
        ),
    };
    let delivered = r.is_delivered();
    let waiters = match ctx.sends.map.get_mut(&key) {
        Some(e) => match std::mem::replace(&mut e.state, State::Done(answer.clone())) {
            State::Pending(w) => w,
            State::Done(_) => Vec::new(),
        },
        None => return,
    };
    if delivered {
        ctx.sends.done.push_back((now, key));
    } else {
        ctx.sends.map.remove(&key);
    }
    for w in waiters {
        w.answer(ctx, &answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(conn: u64) -> Caller {
        Caller {
            shard: 0,
            conn,
            req_id: "1".into(),
        }
    }

    #[test]
    fn an_earlier_attempts_timer_leaves_a_retry_alone() {
        let mut s = Sends::default();
        // Attempt 1 of key k failed and was forgotten; attempt 2 is delivering.
        s.map.insert(
            "k".into(),
            Entry {
                fingerprint: 1,
                generation: 2,
                state: State::Pending(vec![caller(7)]),
            },
        );
        assert!(s.give_up("k", 1).is_none(), "attempt 1's timer");
        assert!(s.map.contains_key("k"), "attempt 2 still pending");
        let waiters = s.give_up("k", 2).expect("attempt 2's own timer");
        assert_eq!(waiters.len(), 1);
        assert_eq!(waiters[0].conn, 7);
        assert!(s.give_up("k", 2).is_none());
    }
}
