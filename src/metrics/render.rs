//! One scrape rendered in the Prometheus text format (0.0.4) by `prometheus-client`: the
//! original's `openclaw_*` families (names, types and labels as its `diagnostics-prometheus`
//! plugin writes them) and ringgate's own `ringgate_*` families, per shard.
//!
//! The figures arrive gathered ([`Scrape`]); this module only names and encodes them.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

use super::{gather::Snapshot, hist::Hist, labels, shard::ShardMetrics};

/// The exposition's `Content-Type`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Process-wide figures read by the scraping shard.
#[derive(Debug, Clone, Default)]
pub struct Process {
    pub instance_id: String,
    pub build_id: &'static str,
    pub version: &'static str,
    pub driver: &'static str,
    pub shards: usize,
    pub uptime_seconds: f64,
    pub rss_bytes: u64,
    pub heap_used_bytes: u64,
    pub heap_total_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub cpu_cores: f64,
    pub panics_contained: u64,
    pub accept_errors: u64,
    pub slow_closes: u64,
    pub budget_closes: u64,
    pub logs_suppressed: u64,
}

/// One shard's loop gauges (`state::vitals`), by shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loop {
    pub delay_p99_seconds: f64,
    pub delay_max_seconds: f64,
    pub busy_ratio: f64,
}

/// The storage thread's figures.
#[derive(Debug, Clone)]
pub struct Store {
    pub queue_depth: u64,
    pub batch_size: Hist,
    pub commit_seconds: Hist,
    pub failed_commits: u64,
}

/// Everything one scrape exports.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub process: Process,
    /// The shards that answered, in shard order.
    pub shards: Vec<Snapshot>,
    pub loops: Vec<Loop>,
    pub store: Store,
    /// The cluster as this host sees it (`None`: not in a cluster).
    pub cluster: Option<std::sync::Arc<crate::cluster::View>>,
}

impl Scrape {
    /// The exposition text.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail, and every name and label here is ours.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    fn total(&self) -> ShardMetrics {
        let mut t = ShardMetrics::new();
        for s in &self.shards {
            t.merge(&s.metrics);
        }
        t
    }
}

type Labels = Vec<(&'static str, String)>;

/// Every reason a socket is refused before its handshake (exported from zero, so a rate
/// exists before the first refusal).
/// `ringgate_tls_handshakes` outcomes (a TLS port only).
const TLS_OUTCOMES: [&str; 5] = ["full", "resumed", "failed", "plain_http", "gone"];

const PREAUTH_REASONS: [&str; 4] = [
    "per_ip_cap",
    "shard_budget",
    "draining",
    "proxy_attribution",
];

fn l<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn shard(s: usize) -> Labels {
    vec![("shard", s.to_string())]
}

fn counter<V: prometheus_client::encoding::EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, V, u64>(&v, None)?;
    }
    Ok(())
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn histogram<'h>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, &'h Hist)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            h.sum(),
            h.count(),
            &h.buckets(),
            None,
        )?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.encode_openclaw(&mut enc)?;
        self.encode_ringgate(&mut enc)
    }
}

impl Scrape {
    /// The original's families.
    fn encode_openclaw(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let p = &self.process;
        let t = self.total();
        gauge(
            enc,
            "openclaw_gateway_build_info",
            "Gateway process identity: the process instance id (as system.info reports it) and the loaded build.",
            [(
                l([
                    ("process_instance_id", &p.instance_id),
                    ("build_id", p.build_id),
                ]),
                1u64,
            )],
        )?;
        let methods = || {
            t.methods
                .iter()
                .enumerate()
                .filter(|(_, m)| m.requests > 0)
                .map(|(i, m)| (l([("method", labels::method_name(i))]), m))
        };
        counter(
            enc,
            "openclaw_gateway_rpc_requests",
            "Gateway RPC requests received (valid, authenticated request frames), by method.",
            methods().map(|(l, m)| (l, m.requests)),
        )?;
        histogram(
            enc,
            "openclaw_gateway_rpc_first_response_seconds",
            "Gateway RPC time from receipt to the first response frame queued for the client.",
            methods()
                .filter(|(_, m)| m.first_response.count() > 0)
                .map(|(l, m)| (l, &m.first_response)),
        )?;
        histogram(
            enc,
            "openclaw_gateway_rpc_handler_seconds",
            "Gateway RPC handler invocation time, through its return.",
            methods().map(|(l, m)| (l, &m.handler)),
        )?;
        counter(
            enc,
            "openclaw_gateway_rpc_outcomes",
            "Gateway RPC outcomes by phase and outcome.",
            super::shard::Phase::ALL.iter().flat_map(|ph| {
                super::shard::Outcome::ALL.iter().filter_map(move |o| {
                    let n = t.rpc_outcomes[*ph as usize][*o as usize];
                    (n > 0).then(|| (l([("phase", ph.as_str()), ("outcome", o.as_str())]), n))
                })
            }),
        )?;
        counter(
            enc,
            "openclaw_run_completed",
            "Agent runs completed.",
            t.runs.iter().map(|r| (run_labels(&r.key), r.count)),
        )?;
        histogram(
            enc,
            "openclaw_run_duration_seconds",
            "Agent run duration.",
            t.runs.iter().map(|r| (run_labels(&r.key), &r.seconds)),
        )?;
        counter(
            enc,
            "openclaw_model_tokens",
            "Model tokens used by agent runs.",
            t.tokens.iter().map(|(k, n)| {
                (
                    l([
                        ("agent", &k.agent),
                        ("channel", &k.channel),
                        ("model", &k.model),
                        ("provider", &k.provider),
                        ("token_type", k.token_type),
                    ]),
                    *n,
                )
            }),
        )?;
        counter(
            enc,
            "openclaw_model_cost_usd",
            "Model spend in USD, where ringgate.pricing prices the model.",
            t.cost_usd.iter().map(|(k, usd)| {
                (
                    l([
                        ("agent", &k.agent),
                        ("channel", &k.channel),
                        ("model", &k.model),
                        ("provider", &k.provider),
                    ]),
                    *usd,
                )
            }),
        )?;
        let hook = |c: &String| l([("channel", c), ("webhook", "inbound")]);
        counter(
            enc,
            "openclaw_webhook_received",
            "Inbound channel webhook requests received.",
            t.webhooks.iter().map(|w| (hook(&w.key), w.count)),
        )?;
        counter(
            enc,
            "openclaw_webhook_error",
            "Inbound channel webhook requests that failed.",
            t.webhooks.iter().map(|w| (hook(&w.key), w.errors)),
        )?;
        histogram(
            enc,
            "openclaw_webhook_duration_seconds",
            "Inbound channel webhook request handling time.",
            t.webhooks.iter().map(|w| (hook(&w.key), &w.seconds)),
        )?;
        counter(
            enc,
            "openclaw_message_received",
            "Channel messages received.",
            t.messages_received
                .iter()
                .map(|((c, s), n)| (l([("channel", c), ("source", s)]), *n)),
        )?;
        let delivery = |k: &(String, &'static str, &'static str, &'static str)| {
            l([
                ("channel", &k.0),
                ("delivery_kind", k.1),
                ("error_category", k.2),
                ("outcome", k.3),
            ])
        };
        counter(
            enc,
            "openclaw_message_delivery",
            "Outbound channel message deliveries finished.",
            t.deliveries.iter().map(|d| (delivery(&d.key), d.count)),
        )?;
        histogram(
            enc,
            "openclaw_message_delivery_duration_seconds",
            "Outbound channel message delivery time, first attempt to final outcome.",
            t.deliveries.iter().map(|d| (delivery(&d.key), &d.seconds)),
        )?;
        let active: u64 = self.shards.iter().map(|s| s.runs_active).sum();
        gauge(
            enc,
            "openclaw_session_queue_depth",
            "Sessions with a run in progress (a new turn interrupts the active run, so none queue).",
            [(l([("state", "processing")]), active)],
        )?;
        histogram(
            enc,
            "openclaw_gateway_event_loop_delay_max_seconds",
            "Maximum event-loop delay of each completed monitor window, per shard loop.",
            self.shards
                .iter()
                .map(|s| (shard(s.shard), &s.metrics.loop_delay_max)),
        )?;
        counter(
            enc,
            "openclaw_gateway_event_loop_observed_seconds",
            "Seconds represented by completed event-loop monitor windows, per shard loop.",
            self.shards
                .iter()
                .map(|s| (shard(s.shard), s.metrics.loop_observed_seconds)),
        )?;
        gauge(
            enc,
            "openclaw_memory_bytes",
            "Process memory: rss, and the heap in use and held (resident anonymous memory and the data mappings).",
            [
                (l([("kind", "rss")]), p.rss_bytes),
                (l([("kind", "heap_used")]), p.heap_used_bytes),
                (l([("kind", "heap_total")]), p.heap_total_bytes),
            ],
        )?;
        counter(
            enc,
            "openclaw_prometheus_series_dropped",
            "Label sets refused by the per-family series cap.",
            [(Labels::new(), t.series_dropped)],
        )
    }

    /// ringgate's own families.
    fn encode_ringgate(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let p = &self.process;
        gauge(
            enc,
            "ringgate_build_info",
            "ringgate version and the IO driver its shards run on.",
            [(l([("version", p.version), ("driver", p.driver)]), 1u64)],
        )?;
        gauge(
            enc,
            "ringgate_shard_up",
            "1 when the shard answered this scrape in time, 0 when it did not (stalled).",
            (0..p.shards).map(|i| {
                let up = self.shards.iter().any(|s| s.shard == i);
                (shard(i), u64::from(up))
            }),
        )?;
        gauge(
            enc,
            "ringgate_uptime_seconds",
            "Seconds since the gateway started.",
            [(Labels::new(), p.uptime_seconds)],
        )?;
        let per = |f: fn(&Snapshot) -> u64| {
            self.shards
                .iter()
                .map(move |s| (shard(s.shard), f(s)))
                .collect::<Vec<_>>()
        };
        gauge(
            enc,
            "ringgate_connections",
            "WebSocket connections by role (operator, node, worker, none before connect) and phase.",
            self.shards.iter().flat_map(|s| {
                s.connections.iter().map(move |((role, phase), n)| {
                    let mut ls = shard(s.shard);
                    ls.push(("role", (*role).to_owned()));
                    ls.push(("phase", (*phase).to_owned()));
                    (ls, *n)
                })
            }),
        )?;
        counter(
            enc,
            "ringgate_handshakes",
            "Connect handshakes decided, by outcome.",
            self.shards.iter().flat_map(|s| {
                let refused: u64 = s.metrics.handshakes_refused.iter().map(|x| x.1).sum();
                [
                    (
                        with(shard(s.shard), "outcome", "accepted"),
                        s.metrics.handshakes_accepted,
                    ),
                    (with(shard(s.shard), "outcome", "refused"), refused),
                ]
            }),
        )?;
        counter(
            enc,
            "ringgate_handshake_refusals",
            "Refused connect handshakes, by reason.",
            self.by_reason(|m| &m.handshakes_refused),
        )?;
        counter(
            enc,
            "ringgate_preauth_refusals",
            "Sockets refused before a handshake: per-IP unauthenticated-socket cap, shard send-buffer budget (503), draining, proxied without attribution.",
            self.every_label("reason", &PREAUTH_REASONS, |m| &m.preauth_refused),
        )?;
        counter(
            enc,
            "ringgate_tls_handshakes",
            "TLS handshakes on the gateway port by outcome: full, resumed (a session ticket), failed, plain_http (plain HTTP to the TLS port, answered 400), gone (closed or timed out mid-handshake).",
            self.every_label("outcome", &TLS_OUTCOMES, |m| &m.tls_handshakes),
        )?;
        counter(
            enc,
            "ringgate_frames_received",
            "WebSocket frames received.",
            per(|s| s.metrics.frames_in),
        )?;
        counter(
            enc,
            "ringgate_frames_sent",
            "WebSocket frames queued or sent.",
            per(|s| s.metrics.frames_out),
        )?;
        counter(
            enc,
            "ringgate_received_bytes",
            "Bytes read from WebSocket connections.",
            per(|s| s.metrics.bytes_in),
        )?;
        counter(
            enc,
            "ringgate_sent_bytes",
            "Bytes written to WebSocket connections.",
            per(|s| s.metrics.bytes_out),
        )?;
        counter(
            enc,
            "ringgate_events_fanned_out",
            "Events fanned out on this shard (its own broadcasts and those arriving over the bus).",
            per(|s| s.metrics.events_fanned_out),
        )?;
        counter(
            enc,
            "ringgate_event_deliveries",
            "Event frames delivered to connections by fan-out.",
            per(|s| s.metrics.event_deliveries),
        )?;
        counter(
            enc,
            "ringgate_slow_consumer_events",
            "Events not delivered whole to slow consumers: dropped (droppable events) or coalesced (live text).",
            self.shards.iter().flat_map(|s| {
                [
                    (with(shard(s.shard), "action", "dropped"), s.metrics.events_dropped),
                    (with(shard(s.shard), "action", "coalesced"), s.metrics.events_coalesced),
                ]
            }),
        )?;
        counter(
            enc,
            "ringgate_closes",
            "WebSocket close frames sent, by close code.",
            self.shards.iter().flat_map(|s| {
                s.metrics
                    .closes
                    .iter()
                    .map(move |(code, n)| (with(shard(s.shard), "code", &code.to_string()), *n))
            }),
        )?;
        counter(
            enc,
            "ringgate_slow_consumer_closes",
            "Connections closed as slow consumers (all shards); budget: because their shard was over its send-buffer budget.",
            [
                (l([("cause", "connection")]), p.slow_closes.saturating_sub(p.budget_closes)),
                (l([("cause", "budget")]), p.budget_closes),
            ],
        )?;
        gauge(
            enc,
            "ringgate_outbox_bytes",
            "Bytes queued for connections and not yet accepted by their sockets.",
            per(|s| s.outbox_bytes),
        )?;
        gauge(
            enc,
            "ringgate_bus_inbox_messages",
            "Messages waiting in the shard's bus inbox.",
            per(|s| s.inbox_depth),
        )?;
        counter(
            enc,
            "ringgate_bus_inbox_full",
            "Pushes that found the shard's bus inbox full (retried from the sender's overflow).",
            per(|s| s.inbox_full_events),
        )?;
        gauge(
            enc,
            "ringgate_bus_overflow_messages",
            "Messages this shard holds for full inboxes of other shards.",
            per(|s| s.overflow_len),
        )?;
        let loops = || self.loops.iter().enumerate();
        gauge(
            enc,
            "ringgate_loop_delay_p99_seconds",
            "p99 event-loop delay of the shard's last completed window.",
            loops().map(|(i, x)| (shard(i), x.delay_p99_seconds)),
        )?;
        gauge(
            enc,
            "ringgate_loop_delay_max_seconds",
            "Maximum event-loop delay of the shard's last completed window.",
            loops().map(|(i, x)| (shard(i), x.delay_max_seconds)),
        )?;
        gauge(
            enc,
            "ringgate_loop_busy_ratio",
            "Fraction of the shard thread's wall time spent on CPU over its last window.",
            loops().map(|(i, x)| (shard(i), x.busy_ratio)),
        )?;
        gauge(
            enc,
            "ringgate_node_invokes_pending",
            "node.invoke requests waiting for their node.",
            per(|s| s.invokes_pending),
        )?;
        counter(
            enc,
            "ringgate_node_invokes",
            "node.invoke requests finished, by outcome.",
            self.by_label("outcome", |m| &m.invokes),
        )?;
        if let Some(c) = &self.cluster {
            gauge(
                enc,
                "ringgate_cluster_link_up",
                "1 while this host's link to NATS is connected.",
                [(Labels::new(), u64::from(c.connected))],
            )?;
            let alive = c.members.iter().filter(|m| m.alive).count() as u64;
            gauge(
                enc,
                "ringgate_cluster_members",
                "Hosts of the cluster as this host sees them (itself included in alive).",
                [
                    (vec![("state", "alive".to_owned())], alive + 1),
                    (
                        vec![("state", "dead".to_owned())],
                        c.members.len() as u64 - alive,
                    ),
                ],
            )?;
            counter(
                enc,
                "ringgate_cluster_messages_dropped",
                "Messages for other hosts that were dropped (link queue full, or NATS refused them).",
                [(Labels::new(), c.dropped)],
            )?;
            counter(
                enc,
                "ringgate_cluster_messages_malformed",
                "Messages from the cluster refused as malformed.",
                [(Labels::new(), c.malformed)],
            )?;
        }
        let st = &self.store;
        gauge(
            enc,
            "ringgate_store_queue_depth",
            "Operations waiting for the storage thread.",
            [(Labels::new(), st.queue_depth)],
        )?;
        histogram(
            enc,
            "ringgate_store_batch_size",
            "Write operations per group commit.",
            [(Labels::new(), &st.batch_size)],
        )?;
        histogram(
            enc,
            "ringgate_store_commit_seconds",
            "SQLite COMMIT time of a group commit (synchronous=FULL: the fsyncs).",
            [(Labels::new(), &st.commit_seconds)],
        )?;
        counter(
            enc,
            "ringgate_store_failed_commits",
            "Group commits that failed and were rolled back.",
            [(Labels::new(), st.failed_commits)],
        )?;
        gauge(
            enc,
            "ringgate_open_fds",
            "Open file descriptors of the process.",
            [(Labels::new(), p.open_fds)],
        )?;
        gauge(
            enc,
            "ringgate_max_fds",
            "The process's soft limit on open file descriptors.",
            [(Labels::new(), p.max_fds)],
        )?;
        gauge(
            enc,
            "ringgate_process_cpu_cores",
            "Process CPU use over the last second, in cores.",
            [(Labels::new(), p.cpu_cores)],
        )?;
        counter(
            enc,
            "ringgate_panics_contained",
            "Panics confined to the connection or request that caused them.",
            [(Labels::new(), p.panics_contained)],
        )?;
        counter(
            enc,
            "ringgate_accept_errors",
            "Failed accept(2) calls (descriptor or memory exhaustion).",
            [(Labels::new(), p.accept_errors)],
        )?;
        counter(
            enc,
            "ringgate_logs_suppressed",
            "Client-triggered log lines suppressed by the log rate limit.",
            [(Labels::new(), p.logs_suppressed)],
        )
    }

    fn by_label(
        &self,
        name: &'static str,
        f: fn(&ShardMetrics) -> &Vec<(&'static str, u64)>,
    ) -> Vec<(Labels, u64)> {
        self.shards
            .iter()
            .flat_map(|s| {
                f(&s.metrics)
                    .iter()
                    .map(move |(r, n)| (with(shard(s.shard), name, r), *n))
            })
            .collect()
    }

    fn by_reason(&self, f: fn(&ShardMetrics) -> &Vec<(&'static str, u64)>) -> Vec<(Labels, u64)> {
        self.by_label("reason", f)
    }

    /// Every shard's count for each of a fixed set of label values (zero where none), so a
    /// series exists before its first event.
    fn every_label(
        &self,
        name: &'static str,
        values: &'static [&'static str],
        f: fn(&ShardMetrics) -> &Vec<(&'static str, u64)>,
    ) -> Vec<(Labels, u64)> {
        self.shards
            .iter()
            .flat_map(|s| {
                values.iter().map(move |v| {
                    let n = f(&s.metrics)
                        .iter()
                        .find(|(k, _)| k == v)
                        .map_or(0, |x| x.1);
                    (with(shard(s.shard), name, v), n)
                })
            })
            .collect()
    }
}

fn with(mut ls: Labels, k: &'static str, v: &str) -> Labels {
    ls.push((k, v.to_owned()));
    ls
}

fn run_labels(k: &super::shard::RunKey) -> Labels {
    l([
        ("channel", &k.channel),
        ("model", &k.model),
        ("outcome", k.outcome),
        ("provider", &k.provider),
        ("trigger", k.trigger),
    ])
}
