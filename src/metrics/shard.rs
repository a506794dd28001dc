//! One shard's counters, kept in a thread-local of the shard's own thread.
//!
//! Every shard is one OS thread, so a thread-local *is* per-shard state: plain integers that
//! only their own core writes, with no atomics shared across cores and no lock. Recording is a
//! borrow flag and an add. The figures leave the thread only when a scrape asks for them: the
//! shard answers a [`super::gather::Gather`] with a copy ([`snapshot`]).
//!
//! Labels are bounded by construction: methods index a fixed table, reasons and outcomes are
//! `&'static str` from ringgate's own code, and free-text labels (channel, model, provider,
//! agent) pass [`label`] and a per-family series cap.

use std::cell::{Cell, RefCell};

use super::hist::{Hist, LATENCY_SECONDS, LOOP_DELAY_SECONDS, RUN_SECONDS};

/// Series one labelled family may hold per shard; new label sets beyond it are dropped and
/// counted (`openclaw_prometheus_series_dropped_total`), as the original's cap does.
pub const MAX_SERIES_PER_FAMILY: usize = 256;

/// Per-method RPC figures (`openclaw_gateway_rpc_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct MethodStats {
    pub requests: u64,
    pub first_response: Hist,
    pub handler: Hist,
}

impl MethodStats {
    const fn new() -> MethodStats {
        MethodStats {
            requests: 0,
            first_response: Hist::new(LATENCY_SECONDS),
            handler: Hist::new(LATENCY_SECONDS),
        }
    }
}

/// Where an RPC outcome was decided (`openclaw_gateway_rpc_outcomes_total{phase}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The permission gate (role and scope).
    Admission,
    /// The handler returned.
    Handler,
    /// The first response frame was queued for the client.
    Response,
}

/// How (`openclaw_gateway_rpc_outcomes_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Rejected,
    UnknownMethod,
    /// Answered later: by the storage thread, another shard's owner, or the chat layer.
    Deferred,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Admission, Phase::Handler, Phase::Response];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Admission => "admission",
            Phase::Handler => "handler",
            Phase::Response => "response",
        }
    }
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Rejected,
        Outcome::UnknownMethod,
        Outcome::Deferred,
    ];

    pub fn ok(ok: bool) -> Outcome {
        if ok {
            Outcome::Ok
        } else {
            Outcome::Error
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::UnknownMethod => "unknown_method",
            Outcome::Deferred => "deferred",
        }
    }
}

/// A counter and a duration histogram under one label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<K> {
    pub key: K,
    pub count: u64,
    pub errors: u64,
    pub seconds: Hist,
}

/// The labels of a finished agent run (`openclaw_run_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    pub channel: String,
    pub model: String,
    pub outcome: &'static str,
    pub provider: String,
    pub trigger: &'static str,
}

/// The labels of `openclaw_model_tokens_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub agent: String,
    pub channel: String,
    pub model: String,
    pub provider: String,
    pub token_type: &'static str,
}

/// The labels of `openclaw_model_cost_usd_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostKey {
    pub agent: String,
    pub channel: String,
    pub model: String,
    pub provider: String,
}

/// Everything one shard counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardMetrics {
    /// By [`super::labels::method_index`]; grown on first use.
    pub methods: Vec<MethodStats>,
    /// `openclaw_gateway_rpc_outcomes_total`, by [`Phase`] and [`Outcome`].
    pub rpc_outcomes: [[u64; 5]; 3],
    pub handshakes_accepted: u64,
    /// Refused connects by reason.
    pub handshakes_refused: Vec<(&'static str, u64)>,
    /// Sockets refused before any handshake (per-IP cap, shard budget, draining, …).
    pub preauth_refused: Vec<(&'static str, u64)>,
    /// TLS handshakes by outcome (`full`, `resumed`, `failed`, `plain_http`, `gone`).
    pub tls_handshakes: Vec<(&'static str, u64)>,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Events this shard fanned out (its own and those from other shards), and the frames
    /// that fan-out queued or sent to its connections.
    pub events_fanned_out: u64,
    pub event_deliveries: u64,
    /// Droppable events skipped for slow consumers, and live text held back (coalesced).
    pub events_dropped: u64,
    pub events_coalesced: u64,
    /// WebSocket closes this shard sent, by close code.
    pub closes: Vec<(u16, u64)>,
    /// `openclaw_gateway_event_loop_delay_max_seconds`: each completed window's maximum.
    pub loop_delay_max: Hist,
    /// Seconds those windows represent.
    pub loop_observed_seconds: f64,
    /// `node.invoke` requests that ended, by outcome.
    pub invokes: Vec<(&'static str, u64)>,
    pub runs: Vec<Timed<RunKey>>,
    pub tokens: Vec<(TokenKey, u64)>,
    /// USD spent, where `ringgate.pricing` prices the model.
    pub cost_usd: Vec<(CostKey, f64)>,
    /// Inbound webhook requests by channel (`openclaw_webhook_*`, webhook `inbound`).
    pub webhooks: Vec<Timed<String>>,
    /// Channel messages received, by (channel, source).
    pub messages_received: Vec<((String, &'static str), u64)>,
    /// Outbound deliveries by (channel, delivery kind, error category, outcome).
    pub deliveries: Vec<Timed<(String, &'static str, &'static str, &'static str)>>,
    /// Label sets refused by [`MAX_SERIES_PER_FAMILY`].
    pub series_dropped: u64,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardMetrics {
    pub const fn new() -> ShardMetrics {
        ShardMetrics {
            methods: Vec::new(),
            rpc_outcomes: [[0; 5]; 3],
            handshakes_accepted: 0,
            handshakes_refused: Vec::new(),
            preauth_refused: Vec::new(),
            tls_handshakes: Vec::new(),
            frames_in: 0,
            bytes_in: 0,
            frames_out: 0,
            bytes_out: 0,
            events_fanned_out: 0,
            event_deliveries: 0,
            events_dropped: 0,
            events_coalesced: 0,
            closes: Vec::new(),
            loop_delay_max: Hist::new(LOOP_DELAY_SECONDS),
            loop_observed_seconds: 0.0,
            invokes: Vec::new(),
            runs: Vec::new(),
            tokens: Vec::new(),
            cost_usd: Vec::new(),
            webhooks: Vec::new(),
            messages_received: Vec::new(),
            deliveries: Vec::new(),
            series_dropped: 0,
        }
    }

    /// The stats of method label `i`.
    pub fn method(&mut self, i: usize) -> &mut MethodStats {
        if self.methods.len() <= i {
            self.methods.resize(i + 1, MethodStats::new());
        }
        &mut self.methods[i]
    }

    /// Adds `n` to the series `key` of a small labelled family (bounded by
    /// [`MAX_SERIES_PER_FAMILY`]).
    pub fn bump<K: PartialEq>(v: &mut Vec<(K, u64)>, dropped: &mut u64, key: K, n: u64) {
        if let Some(slot) = v.iter_mut().find(|(k, _)| *k == key) {
            slot.1 += n;
        } else if v.len() < MAX_SERIES_PER_FAMILY {
            v.push((key, n));
        } else {
            *dropped += 1;
        }
    }

    /// The timed series `key`, created when there is room.
    pub fn timed<'a, K: PartialEq>(
        v: &'a mut Vec<Timed<K>>,
        dropped: &mut u64,
        key: K,
        bounds: &'static [f64],
    ) -> Option<&'a mut Timed<K>> {
        match v.iter().position(|t| t.key == key) {
            Some(i) => Some(&mut v[i]),
            None if v.len() < MAX_SERIES_PER_FAMILY => {
                v.push(Timed {
                    key,
                    count: 0,
                    errors: 0,
                    seconds: Hist::new(bounds),
                });
                v.last_mut()
            }
            None => {
                *dropped += 1;
                None
            }
        }
    }

    #[inline]
    pub fn rpc_outcome(&mut self, phase: Phase, outcome: Outcome) {
        self.rpc_outcomes[phase as usize][outcome as usize] += 1;
    }

    pub fn refused(&mut self, reason: &'static str) {
        Self::bump(
            &mut self.handshakes_refused,
            &mut self.series_dropped,
            reason,
            1,
        );
    }

    pub fn preauth_refused(&mut self, reason: &'static str) {
        Self::bump(
            &mut self.preauth_refused,
            &mut self.series_dropped,
            reason,
            1,
        );
    }

    pub fn tls_handshake(&mut self, outcome: &'static str) {
        Self::bump(
            &mut self.tls_handshakes,
            &mut self.series_dropped,
            outcome,
            1,
        );
    }

    pub fn closed(&mut self, code: u16) {
        Self::bump(&mut self.closes, &mut self.series_dropped, code, 1);
    }

    pub fn invoke_ended(&mut self, outcome: &'static str) {
        Self::bump(&mut self.invokes, &mut self.series_dropped, outcome, 1);
    }

    pub fn run_ended(&mut self, key: RunKey, seconds: f64) {
        if let Some(t) = Self::timed(&mut self.runs, &mut self.series_dropped, key, RUN_SECONDS) {
            t.count += 1;
            t.seconds.observe(seconds);
        }
    }

    pub fn tokens(&mut self, key: TokenKey, n: u64) {
        if n > 0 {
            Self::bump(&mut self.tokens, &mut self.series_dropped, key, n);
        }
    }

    pub fn cost(&mut self, key: CostKey, usd: f64) {
        if !(usd > 0.0 && usd.is_finite()) {
            return;
        }
        match self.cost_usd.iter().position(|(k, _)| *k == key) {
            Some(i) => self.cost_usd[i].1 += usd,
            None if self.cost_usd.len() < MAX_SERIES_PER_FAMILY => self.cost_usd.push((key, usd)),
            None => self.series_dropped += 1,
        }
    }

    pub fn webhook(&mut self, channel: &str, ok: bool, seconds: f64) {
        if let Some(t) = Self::timed(
            &mut self.webhooks,
            &mut self.series_dropped,
            label(channel).to_owned(),
            LATENCY_SECONDS,
        ) {
            t.count += 1;
            t.errors += u64::from(!ok);
            t.seconds.observe(seconds);
        }
    }

    pub fn message_received(&mut self, channel: &str, source: &'static str) {
        Self::bump(
            &mut self.messages_received,
            &mut self.series_dropped,
            (label(channel).to_owned(), source),
            1,
        );
    }

    pub fn delivery(
        &mut self,
        channel: &str,
        kind: &'static str,
        error_category: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        if let Some(t) = Self::timed(
            &mut self.deliveries,
            &mut self.series_dropped,
            (label(channel).to_owned(), kind, error_category, outcome),
            RUN_SECONDS,
        ) {
            t.count += 1;
            t.seconds.observe(seconds);
        }
    }

    /// Adds another shard's figures (the scrape's gateway-wide view).
    pub fn merge(&mut self, o: &ShardMetrics) {
        for (i, m) in o.methods.iter().enumerate() {
            let s = self.method(i);
            s.requests += m.requests;
            s.first_response.merge(&m.first_response);
            s.handler.merge(&m.handler);
        }
        for (mine, theirs) in self.rpc_outcomes.iter_mut().zip(o.rpc_outcomes.iter()) {
            for (a, b) in mine.iter_mut().zip(theirs.iter()) {
                *a += b;
            }
        }
        let d = &mut self.series_dropped;
        for (k, n) in &o.handshakes_refused {
            Self::bump(&mut self.handshakes_refused, d, *k, *n);
        }
        for (k, n) in &o.preauth_refused {
            Self::bump(&mut self.preauth_refused, d, *k, *n);
        }
        for (k, n) in &o.tls_handshakes {
            Self::bump(&mut self.tls_handshakes, d, *k, *n);
        }
        for (k, n) in &o.closes {
            Self::bump(&mut self.closes, d, *k, *n);
        }
        for (k, n) in &o.invokes {
            Self::bump(&mut self.invokes, d, *k, *n);
        }
        for (k, n) in &o.tokens {
            Self::bump(&mut self.tokens, d, k.clone(), *n);
        }
        for (k, usd) in &o.cost_usd {
            self.cost(k.clone(), *usd);
        }
        let d = &mut self.series_dropped;
        for (k, n) in &o.messages_received {
            Self::bump(&mut self.messages_received, d, k.clone(), *n);
        }
        merge_timed(&mut self.runs, d, &o.runs);
        merge_timed(&mut self.webhooks, d, &o.webhooks);
        merge_timed(&mut self.deliveries, d, &o.deliveries);
        self.handshakes_accepted += o.handshakes_accepted;
        self.frames_in += o.frames_in;
        self.bytes_in += o.bytes_in;
        self.frames_out += o.frames_out;
        self.bytes_out += o.bytes_out;
        self.events_fanned_out += o.events_fanned_out;
        self.event_deliveries += o.event_deliveries;
        self.events_dropped += o.events_dropped;
        self.events_coalesced += o.events_coalesced;
        self.loop_delay_max.merge(&o.loop_delay_max);
        self.loop_observed_seconds += o.loop_observed_seconds;
        self.series_dropped += o.series_dropped;
    }
}

fn merge_timed<K: PartialEq + Clone>(
    into: &mut Vec<Timed<K>>,
    dropped: &mut u64,
    from: &[Timed<K>],
) {
    for t in from {
        match into.iter().position(|x| x.key == t.key) {
            Some(i) => {
                let x = &mut into[i];
                x.count += t.count;
                x.errors += t.errors;
                x.seconds.merge(&t.seconds);
            }
            None if into.len() < MAX_SERIES_PER_FAMILY => into.push(t.clone()),
            None => *dropped += 1,
        }
    }
}

/// A free-text label value under the original's low-cardinality policy: short, of
/// `[A-Za-z0-9._:/-]`, else `other`; what looks like a scoped agent session key is `unknown`.
pub fn label(v: &str) -> &str {
    if v.starts_with("agent:") {
        return "unknown";
    }
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
    if ok {
        v
    } else {
        "other"
    }
}

thread_local! {
    static SHARD: RefCell<ShardMetrics> = const { RefCell::new(ShardMetrics::new()) };
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether this shard records (`diagnostics.enabled`).
#[inline]
pub fn enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// Turns recording on this thread on or off (at shard start and on a config reload).
pub fn set_enabled(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Records into this thread's (this shard's) metrics (nothing while diagnostics are off).
///
/// Never nested (a recording closure does not record), so the borrow always succeeds; if it
/// ever did not, the observation is skipped rather than the thread panicking.
#[inline]
pub fn record(f: impl FnOnce(&mut ShardMetrics)) {
    if !enabled() {
        return;
    }
    SHARD.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            f(&mut m)
        }
    })
}

/// A copy of this thread's metrics (for a scrape).
pub fn snapshot() -> ShardMetrics {
    SHARD.with(|m| m.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_capped_and_the_overflow_is_counted() {
        let mut m = ShardMetrics::new();
        let names: Vec<&'static str> = (0..MAX_SERIES_PER_FAMILY + 3)
            .map(|i| &*Box::leak(format!("r{i}").into_boxed_str()))
            .collect();
        for n in &names {
            m.refused(n);
        }
        m.refused(names[0]);
        assert_eq!(m.handshakes_refused.len(), MAX_SERIES_PER_FAMILY);
        assert_eq!(m.handshakes_refused[0].1, 2);
        assert_eq!(m.series_dropped, 3);
    }

    #[test]
    fn merge_adds_every_family() {
        let mut a = ShardMetrics::new();
        a.method(3).requests = 2;
        a.closed(1008);
        a.webhook("hooks", false, 0.2);
        let mut b = ShardMetrics::new();
        b.method(5).requests = 1;
        b.closed(1008);
        b.closed(1000);
        b.webhook("hooks", true, 0.1);
        a.merge(&b);
        assert_eq!(a.methods[3].requests, 2);
        assert_eq!(a.methods[5].requests, 1);
        assert_eq!(a.closes, vec![(1008, 2), (1000, 1)]);
        assert_eq!(a.webhooks[0].count, 2);
        assert_eq!(a.webhooks[0].errors, 1);
    }

    #[test]
    fn free_text_labels_are_bounded() {
        assert_eq!(label("openai/gpt-4.1"), "openai/gpt-4.1");
        assert_eq!(label("telegram:bot"), "telegram:bot");
        assert_eq!(label("agent:main:session-1"), "unknown");
        assert_eq!(label("has space"), "other");
        assert_eq!(label(""), "other");
        assert_eq!(label(&"x".repeat(65)), "other");
    }
}
