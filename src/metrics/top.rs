//! `ringgate top`: a terminal view of one gateway's per-shard figures, from two scrapes of its
//! metrics endpoint (rates are the difference over the interval). Pure: the command fetches,
//! this module renders text.

use std::fmt::Write;

use super::text::Sample;

/// Two scrapes `dt` seconds apart.
pub struct View<'a> {
    pub prev: &'a [Sample],
    pub cur: &'a [Sample],
    pub dt: f64,
}

fn matches(s: &Sample, name: &str, filter: &[(&str, &str)]) -> bool {
    s.name == name && filter.iter().all(|(k, v)| s.label(k) == Some(*v))
}

fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| matches(s, name, filter))
        .map(|s| s.value)
        .sum()
}

impl View<'_> {
    fn now(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        sum(self.cur, name, filter)
    }

    /// Per-second increase of a counter (a restart in between reads as 0).
    fn rate(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        let d = sum(self.cur, name, filter) - sum(self.prev, name, filter);
        if d < 0.0 || self.dt <= 0.0 {
            0.0
        } else {
            d / self.dt
        }
    }

    /// The shards the scrape names, in order.
    fn shards(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .cur
            .iter()
            .filter(|s| s.name == "ringgate_shard_up")
            .filter_map(|s| s.label("shard").map(str::to_owned))
            .collect();
        v.sort_by_key(|s| s.parse::<u64>().unwrap_or(u64::MAX));
        v
    }

    /// The `q` quantile of a histogram's observations over the interval (Prometheus's
    /// `histogram_quantile` over the bucket increases), or `None` without observations.
    fn quantile(&self, name: &str, filter: &[(&str, &str)], q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut les: Vec<(f64, f64)> = Vec::new();
        for s in self.cur.iter().filter(|s| matches(s, &bucket, filter)) {
            let Some(le) = s.label("le").and_then(parse_le) else {
                continue;
            };
            let mut f: Vec<(&str, &str)> = filter.to_vec();
            let le_label = s.label("le").unwrap_or_default();
            f.push(("le", le_label));
            let before = sum(self.prev, &bucket, &f);
            let d = (s.value - before).max(0.0);
            match les.iter_mut().find(|(l, _)| *l == le) {
                Some(x) => x.1 += d,
                None => les.push((le, d)),
            }
        }
        les.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = les.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lo, mut below) = (0.0, 0.0);
        for (le, count) in les {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lo);
                }
                let inside = count - below;
                let frac = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return Some(lo + (le - lo) * frac);
            }
            lo = le;
            below = count;
        }
        Some(lo)
    }

    /// The whole screen.
    pub fn render(&self, target: &str) -> String {
        let mut out = String::new();
        let info = self
            .cur
            .iter()
            .find(|s| s.name == "ringgate_build_info")
            .map(|s| {
                format!(
                    "ringgate {} on {}",
                    s.label("version").unwrap_or("?"),
                    s.label("driver").unwrap_or("?")
                )
            })
            .unwrap_or_else(|| "ringgate".into());
        let _ = writeln!(
            out,
            "{info} — {target} — up {} — every {:.1}s",
            duration(self.now("ringgate_uptime_seconds", &[])),
            self.dt
        );
        let _ = writeln!(
            out,
            "process: cpu {:.2} cores, rss {}, fds {}/{}, store queue {}, commit p99 {}, panics contained {}",
            self.now("ringgate_process_cpu_cores", &[]),
            bytes(self.now("openclaw_memory_bytes", &[("kind", "rss")])),
            self.now("ringgate_open_fds", &[]),
            self.now("ringgate_max_fds", &[]),
            self.now("ringgate_store_queue_depth", &[]),
            self.quantile("ringgate_store_commit_seconds", &[], 0.99)
                .map_or("-".into(), millis),
            self.now("ringgate_panics_contained_total", &[]),
        );
        out.push('\n');
        let cols = [
            "SHARD",
            "UP",
            "CONNS",
            "HS/s",
            "REFUSED/s",
            "FRAMES IN/s",
            "OUT/s",
            "BYTES IN/s",
            "OUT/s",
            "EVENTS/s",
            "DELIVER/s",
            "OUTBOX",
            "INBOX",
            "LOOP p99",
            "BUSY",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        let shards = self.shards();
        let mut all: Vec<&str> = shards.iter().map(String::as_str).collect();
        all.push("all");
        for sh in all {
            let f: Vec<(&str, &str)> = if sh == "all" {
                vec![]
            } else {
                vec![("shard", sh)]
            };
            let up = if sh == "all" {
                format!("{}/{}", self.now("ringgate_shard_up", &[]), shards.len())
            } else if self.now("ringgate_shard_up", &f) >= 1.0 {
                "yes".into()
            } else {
                "NO".into()
            };
            let loop_p99 = if sh == "all" {
                self.cur
                    .iter()
                    .filter(|s| s.name == "ringgate_loop_delay_p99_seconds")
                    .map(|s| s.value)
                    .fold(0.0, f64::max)
            } else {
                self.now("ringgate_loop_delay_p99_seconds", &f)
            };
            let busy = if sh == "all" {
                self.now("ringgate_loop_busy_ratio", &[]) / shards.len().max(1) as f64
            } else {
                self.now("ringgate_loop_busy_ratio", &f)
            };
            let mut hs = f.clone();
            hs.push(("outcome", "accepted"));
            let mut refused = f.clone();
            refused.push(("outcome", "refused"));
            rows.push(vec![
                sh.to_owned(),
                up,
                num(self.now("ringgate_connections", &f)),
                num(self.rate("ringgate_handshakes_total", &hs)),
                num(self.rate("ringgate_handshakes_total", &refused)
                    + self.rate("ringgate_preauth_refusals_total", &f)),
                num(self.rate("ringgate_frames_received_total", &f)),
                num(self.rate("ringgate_frames_sent_total", &f)),
                bytes(self.rate("ringgate_received_bytes_total", &f)),
                bytes(self.rate("ringgate_sent_bytes_total", &f)),
                num(self.rate("ringgate_events_fanned_out_total", &f)),
                num(self.rate("ringgate_event_deliveries_total", &f)),
                bytes(self.now("ringgate_outbox_bytes", &f)),
                num(self.now("ringgate_bus_inbox_messages", &f)),
                millis(loop_p99),
                format!("{:.0}%", busy * 100.0),
            ]);
        }
        table(&mut out, &cols, &rows);

        // The busiest methods over the interval.
        let mut methods: Vec<(String, f64)> = self
            .cur
            .iter()
            .filter(|s| s.name == "openclaw_gateway_rpc_requests_total")
            .filter_map(|s| s.label("method").map(str::to_owned))
            .map(|m| {
                let r = self.rate("openclaw_gateway_rpc_requests_total", &[("method", &m)]);
                (m, r)
            })
            .filter(|(_, r)| *r > 0.0)
            .collect();
        methods.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.push('\n');
        let rows: Vec<Vec<String>> = methods
            .iter()
            .take(8)
            .map(|(m, r)| {
                let f = [("method", m.as_str())];
                let q = |name: &str, p: f64| self.quantile(name, &f, p).map_or("-".into(), millis);
                vec![
                    m.clone(),
                    num(*r),
                    q("openclaw_gateway_rpc_first_response_seconds", 0.5),
                    q("openclaw_gateway_rpc_first_response_seconds", 0.99),
                    q("openclaw_gateway_rpc_handler_seconds", 0.99),
                ]
            })
            .collect();
        if rows.is_empty() {
            out.push_str("no RPC requests in this interval\n");
        } else {
            table(
                &mut out,
                &["METHOD", "REQ/s", "FIRST p50", "FIRST p99", "HANDLER p99"],
                &rows,
            );
        }
        out
    }
}

fn parse_le(s: &str) -> Option<f64> {
    if s == "+Inf" {
        Some(f64::INFINITY)
    } else {
        s.parse().ok()
    }
}

/// Left-aligned first column, right-aligned figures.
fn table(out: &mut String, cols: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain(std::iter::once(cols[i].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "{c:<w$}", w = widths[i]);
            } else {
                let _ = write!(out, "  {c:>w$}", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(out, cols);
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(out, &cells);
    }
}

fn num(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1_000.0)
    } else if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        format!("{:.1}M", v / (1024.0 * 1024.0))
    } else if v >= 1024.0 {
        format!("{:.1}K", v / 1024.0)
    } else {
        format!("{v:.0}")
    }
}

fn millis(s: f64) -> String {
    if s < 0.001 {
        format!("{:.0}µs", s * 1e6)
    } else {
        format!("{:.1}ms", s * 1e3)
    }
}

fn duration(s: f64) -> String {
    let s = s as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::text::parse;

    const PREV: &str = "ringgate_shard_up{shard=\"0\"} 1\nringgate_shard_up{shard=\"1\"} 1\n\
        ringgate_frames_received_total{shard=\"0\"} 100\nringgate_frames_received_total{shard=\"1\"} 0\n\
        openclaw_gateway_rpc_requests_total{method=\"health\"} 10\n\
        openclaw_gateway_rpc_first_response_seconds_bucket{method=\"health\",le=\"0.001\"} 10\n\
        openclaw_gateway_rpc_first_response_seconds_bucket{method=\"health\",le=\"0.01\"} 10\n\
        openclaw_gateway_rpc_first_response_seconds_bucket{method=\"health\",le=\"+Inf\"} 10\n";
    const CUR: &str = "ringgate_shard_up{shard=\"0\"} 1\nringgate_shard_up{shard=\"1\"} 0\n\
        ringgate_frames_received_total{shard=\"0\"} 300\nringgate_frames_received_total{shard=\"1\"} 50\n\
        ringgate_connections{shard=\"0\",role=\"operator\",phase=\"open\"} 3\n\
        openclaw_gateway_rpc_requests_total{method=\"health\"} 110\n\
        openclaw_gateway_rpc_first_response_seconds_bucket{method=\"health\",le=\"0.001\"} 60\n\
        openclaw_gateway_rpc_first_response_seconds_bucket{method=\"health\",le=\"0.01\"} 110\n\
        openclaw_gateway_rpc_first_response_seconds_bucket{method=\"health\",le=\"+Inf\"} 110\n";

    #[test]
    fn rates_per_shard_and_quantiles_over_the_interval() {
        let (prev, cur) = (parse(PREV), parse(CUR));
        let v = View {
            prev: &prev,
            cur: &cur,
            dt: 2.0,
        };
        assert_eq!(
            v.rate("ringgate_frames_received_total", &[("shard", "0")]),
            100.0
        );
        assert_eq!(v.rate("ringgate_frames_received_total", &[]), 125.0);
        // 100 requests in the interval: 50 under 1 ms, 50 between 1 and 10 ms.
        let p99 = v
            .quantile(
                "openclaw_gateway_rpc_first_response_seconds",
                &[("method", "health")],
                0.99,
            )
            .unwrap();
        assert!((p99 - 0.00982).abs() < 1e-4, "{p99}");
        let screen = v.render("http://x");
        assert!(screen.contains("SHARD"), "{screen}");
        let shard1 = screen.lines().find(|l| l.starts_with("1 ")).unwrap();
        assert!(
            shard1.contains("NO"),
            "a shard that missed the scrape: {shard1}"
        );
        let health = screen.lines().find(|l| l.starts_with("health")).unwrap();
        assert!(health.contains(" 50 "), "{health}");
    }
}
