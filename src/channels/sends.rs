//! `send` across shards: every send with one idempotency key is handled by one owner shard
//! ([`crate::placement`]), which remembers it, so a retry from any connection gets the first
//! attempt's result instead of a second delivery. The answer waits for the delivery's final
//! outcome (after the channel's retries).
//!
//! [`Sends`] is a sans-IO state machine ([`crate::effects`]): it decides and pushes effects;
//! the shard's driver hands a [`Delivery`] to the channel, tells the owner whether the channel
//! queued it ([`Sends::queued`]) or refused it ([`Sends::refused`]), and feeds back the final
//! report ([`Sends::report`]) and the give-up timer ([`Resume::GiveUp`]), which carries the
//! attempt's generation so an earlier attempt's timer cannot answer a retry's callers.

use std::collections::{HashMap, VecDeque};

use serde_json::json;

use super::{ChannelError, DeliveryOutcome, DeliveryReport, OutboundMessage};
use crate::{
    effects::{Answer, Caller, Effect, Effects},
    proto::errors::{code, ErrorShape},
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

/// What the owner needs to know of the gateway for one step.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    pub now_ms: u64,
    /// The whole retry budget of a delivery on the call's channel and account; `None` when
    /// ringgate has no such channel.
    pub budget_ms: Option<u64>,
}

/// Work that comes back to the owner.
#[derive(Debug)]
pub enum Resume {
    /// No report came within attempt `generation`'s retry budget.
    GiveUp {
        key: String,
        generation: u64,
        budget_ms: u64,
    },
}

/// A message for the driver to hand to its channel.
#[derive(Debug)]
pub struct Delivery {
    pub key: String,
    pub generation: u64,
    pub channel: &'static str,
    pub msg: OutboundMessage,
    pub budget_ms: u64,
}

type Fx = Effects<Resume>;

enum State {
    /// Delivering; these callers wait for the outcome.
    Pending(Vec<Caller>),
    Done(Answer),
}

struct Entry {
    fingerprint: u64,
    /// Which attempt this is: a key whose failed send was forgotten may be sent again.
    generation: u64,
    /// When the send was accepted (the delivery's duration runs from here).
    started_ms: u64,
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

/// The answer to a send the channel refused to queue.
pub fn refusal(e: &ChannelError) -> ErrorShape {
    let mut s = ErrorShape::new(e.code(), e.to_string());
    if e.retryable() {
        s = s.with_details(json!({"retryable": true}));
    }
    s
}

impl Sends {
    fn expire(&mut self, now: u64) {
        while let Some((at, key)) = self.done.front() {
            if now.saturating_sub(*at) < DONE_TTL_MS && self.done.len() <= MAX_DONE {
                break;
            }
            self.map.remove(key);
            self.done.pop_front();
        }
    }

    /// A `send` on the owner: a retry joins or gets the first attempt's answer; a new key
    /// becomes a [`Delivery`] for the driver.
    pub fn handle(&mut self, env: &Env, call: SendCall, fx: &mut Fx) -> Option<Delivery> {
        self.expire(env.now_ms);
        if let Some(e) = self.map.get_mut(&call.key) {
            if e.fingerprint != call.fingerprint {
                fx.err(
                    &call.caller,
                    ErrorShape::invalid(
                        "This idempotency key was already used for a different message; use a new key to send again.",
                    ),
                );
                return None;
            }
            match &mut e.state {
                State::Pending(waiters) => waiters.push(call.caller),
                State::Done(a) => fx.push(Effect::Answer(call.caller, a.clone())),
            }
            return None;
        }
        let Some(budget_ms) = env.budget_ms else {
            fx.err(
                &call.caller,
                ErrorShape::invalid(format!("unsupported channel: {}", call.channel)),
            );
            return None;
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        self.map.insert(
            call.key.clone(),
            Entry {
                fingerprint: call.fingerprint,
                generation,
                started_ms: env.now_ms,
                state: State::Pending(vec![call.caller]),
            },
        );
        Some(Delivery {
            key: call.key,
            generation,
            channel: call.channel,
            msg: call.msg,
            budget_ms,
        })
    }

    /// The channel queued the delivery: arm the give-up timer for its whole retry budget.
    pub fn queued(&mut self, d: &Delivery, fx: &mut Fx) {
        fx.push(Effect::Timer(
            d.budget_ms,
            Resume::GiveUp {
                key: d.key.clone(),
                generation: d.generation,
                budget_ms: d.budget_ms,
            },
        ));
    }

    /// The channel refused the delivery: nothing was queued, so the key is forgotten (a
    /// retry may try again) and its callers get the refusal.
    pub fn refused(&mut self, d: &Delivery, e: ErrorShape, fx: &mut Fx) {
        for w in self.take_pending(&d.key, d.generation) {
            fx.err(&w, e.clone());
        }
    }

    /// A delivery's final outcome: answer everyone waiting. A delivered message is remembered
    /// (a retry gets the same answer); a failed one is forgotten, so a retry tries again.
    pub fn report(&mut self, env: &Env, key: String, r: DeliveryReport, fx: &mut Fx) {
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
        let waiters = match self.map.get_mut(&key) {
            Some(e) => {
                let secs = env.now_ms.saturating_sub(e.started_ms) as f64 / 1e3;
                // The original's outcome values: `completed`, or `error` with a category.
                let (category, outcome) = match &r.outcome {
                    DeliveryOutcome::Delivered { .. } => ("none", "completed"),
                    DeliveryOutcome::Failed {
                        status: Some(_), ..
                    } => ("http_status", "error"),
                    DeliveryOutcome::Failed { status: None, .. } => ("network", "error"),
                };
                crate::metrics::record(|m| m.delivery(r.channel, "send", category, outcome, secs));
                match std::mem::replace(&mut e.state, State::Done(answer.clone())) {
                    State::Pending(w) => w,
                    State::Done(_) => Vec::new(),
                }
            }
            None => return,
        };
        if r.is_delivered() {
            self.done.push_back((env.now_ms, key));
        } else {
            self.map.remove(&key);
        }
        for w in waiters {
            fx.push(Effect::Answer(w, answer.clone()));
        }
    }

    /// Continues after a timer.
    pub fn resume(&mut self, r: Resume, fx: &mut Fx) {
        let Resume::GiveUp {
            key,
            generation,
            budget_ms,
        } = r;
        let waiters = self.take_pending(&key, generation);
        if waiters.is_empty() {
            return;
        }
        tracing::warn!(key, "no delivery report within the retry budget");
        let e = ErrorShape::new(
            code::UNAVAILABLE,
            format!("delivery outcome unknown: no report within {budget_ms} ms"),
        );
        for w in waiters {
            fx.err(&w, e.clone());
        }
    }

    /// Forgets attempt `generation` of `key` if it is still pending, returning its callers;
    /// a later attempt with the same key is left alone.
    fn take_pending(&mut self, key: &str, generation: u64) -> Vec<Caller> {
        let current = matches!(
            self.map.get(key),
            Some(Entry { state: State::Pending(_), generation: g, .. }) if *g == generation
        );
        if !current {
            return Vec::new();
        }
        match self.map.remove(key) {
            Some(Entry {
                state: State::Pending(waiters),
                ..
            }) => waiters,
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(conn: u64) -> Caller {
        Caller::conn(0, conn, format!("r{conn}"))
    }

    const ENV: Env = Env {
        now_ms: 1_000,
        budget_ms: Some(60_000),
    };

    fn call(conn: u64, key: &str, fingerprint: u64) -> SendCall {
        SendCall {
            caller: caller(conn),
            key: key.into(),
            fingerprint,
            channel: "webhook",
            msg: OutboundMessage {
                to: "x".into(),
                text: "hi".into(),
                ..Default::default()
            },
        }
    }

    fn report(delivered: bool) -> DeliveryReport {
        DeliveryReport {
            delivery_id: "d1".into(),
            channel: "webhook",
            account_id: "default".into(),
            attempts: 2,
            outcome: if delivered {
                DeliveryOutcome::Delivered { status: 200 }
            } else {
                DeliveryOutcome::Failed {
                    error: "HTTP 500".into(),
                    status: Some(500),
                }
            },
        }
    }

    /// `reply:<conn>:ok|err`, `answer:<conn>:ok|failed`, `timer:<ms>`.
    fn names(fx: &Fx) -> Vec<String> {
        fx.0.iter().map(Effect::short).collect()
    }

    fn send(s: &mut Sends, env: &Env, c: SendCall) -> (Option<Delivery>, Fx) {
        let mut fx = Fx::default();
        let d = s.handle(env, c, &mut fx);
        (d, fx)
    }

    /// Queues a new send and returns its delivery and give-up timer.
    fn start(s: &mut Sends, conn: u64, key: &str) -> (Delivery, Resume) {
        let (d, fx) = send(s, &ENV, call(conn, key, 1));
        assert!(fx.is_empty(), "{:?}", names(&fx));
        let d = d.expect("a delivery");
        let mut fx = Fx::default();
        s.queued(&d, &mut fx);
        let Some(Effect::Timer(60_000, timer)) = fx.0.pop() else {
            panic!("a give-up timer for the whole budget")
        };
        (d, timer)
    }

    #[test]
    fn a_retry_joins_the_delivery_and_gets_its_answer() {
        let mut s = Sends::default();
        start(&mut s, 1, "k");
        // The same key and message while delivering: waits, no second delivery.
        let (d, fx) = send(&mut s, &ENV, call(2, "k", 1));
        assert!(d.is_none() && fx.is_empty());
        // The same key with another message: refused.
        let (d, fx) = send(&mut s, &ENV, call(3, "k", 2));
        assert!(d.is_none());
        assert_eq!(names(&fx), ["reply:3:err"]);
        let mut fx = Fx::default();
        s.report(&ENV, "k".into(), report(true), &mut fx);
        assert_eq!(names(&fx), ["answer:1:ok", "answer:2:ok"]);
        let Effect::Answer(_, Answer::Ok(v)) = &fx.0[0] else {
            unreachable!()
        };
        assert_eq!((&v["messageId"], &v["attempts"]), (&json!("d1"), &json!(2)));
        // After delivery a retry gets the same answer, and nothing is sent again.
        let (d, fx) = send(&mut s, &ENV, call(4, "k", 1));
        assert!(d.is_none());
        assert_eq!(names(&fx), ["answer:4:ok"]);
    }

    #[test]
    fn a_failed_delivery_is_forgotten_so_a_retry_sends_again() {
        let mut s = Sends::default();
        let (first, _) = start(&mut s, 1, "k");
        let mut fx = Fx::default();
        s.report(&ENV, "k".into(), report(false), &mut fx);
        assert_eq!(names(&fx), ["answer:1:failed"]);
        let (second, _) = start(&mut s, 2, "k");
        assert!(second.generation > first.generation);
    }

    /// A lost report: the caller is told the outcome is unknown when the budget runs out — by
    /// its own attempt's timer only, never by an earlier attempt's.
    #[test]
    fn the_give_up_timer_answers_only_its_own_attempt() {
        let mut s = Sends::default();
        let (_, first_timer) = start(&mut s, 1, "k");
        let mut fx = Fx::default();
        s.report(&ENV, "k".into(), report(false), &mut fx);
        let (_, second_timer) = start(&mut s, 2, "k");
        let mut fx = Fx::default();
        s.resume(first_timer, &mut fx);
        assert!(fx.is_empty(), "{:?}", names(&fx));
        s.resume(second_timer, &mut fx);
        assert_eq!(names(&fx), ["reply:2:err"]);
        let Effect::Reply(_, Err(e)) = &fx.0[0] else {
            unreachable!()
        };
        assert_eq!(e.code, code::UNAVAILABLE);
        assert!(
            e.message.contains("no report within 60000 ms"),
            "{}",
            e.message
        );
        // Forgotten: a retry delivers again.
        assert!(send(&mut s, &ENV, call(3, "k", 1)).0.is_some());
    }

    #[test]
    fn a_refused_send_answers_its_callers_and_is_not_remembered() {
        let mut s = Sends::default();
        let (d, _) = send(&mut s, &ENV, call(1, "k", 1));
        let d = d.unwrap();
        // A retry arrives before the channel answered.
        send(&mut s, &ENV, call(2, "k", 1));
        let mut fx = Fx::default();
        s.refused(
            &d,
            refusal(&ChannelError::NotRunning("default".into())),
            &mut fx,
        );
        assert_eq!(names(&fx), ["reply:1:err", "reply:2:err"]);
        assert!(send(&mut s, &ENV, call(3, "k", 1)).0.is_some());
    }

    #[test]
    fn an_unknown_channel_is_refused_and_finished_sends_expire() {
        let mut s = Sends::default();
        let none = Env {
            budget_ms: None,
            ..ENV
        };
        let (d, fx) = send(&mut s, &none, call(1, "k", 1));
        assert!(d.is_none());
        assert_eq!(names(&fx), ["reply:1:err"]);
        start(&mut s, 2, "k");
        s.report(&ENV, "k".into(), report(true), &mut Fx::default());
        let later = Env {
            now_ms: ENV.now_ms + DONE_TTL_MS,
            ..ENV
        };
        assert!(
            send(&mut s, &later, call(3, "k", 1)).0.is_some(),
            "remembered for the TTL only"
        );
    }
}
