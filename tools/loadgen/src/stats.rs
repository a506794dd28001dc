//! Per-thread statistics, merging, and the human/JSON report.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

pub fn new_hist() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 600_000_000);
    h.saturating_record(us);
}

/// What every worker thread hands back.
#[derive(Default)]
pub struct ThreadOut {
    /// Named latency histograms (µs).
    pub hists: BTreeMap<&'static str, Histogram<u64>>,
    /// Named counters (ok counts, event counts, ...).
    pub counts: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

impl ThreadOut {
    pub fn rec(&mut self, name: &'static str, d: Duration) {
        record(self.hists.entry(name).or_insert_with(new_hist), d);
    }
    pub fn rec_us(&mut self, name: &'static str, us: u64) {
        self.hists
            .entry(name)
            .or_insert_with(new_hist)
            .saturating_record(us.clamp(1, 600_000_000));
    }
    pub fn inc(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }
    pub fn err(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }
    pub fn merge(&mut self, o: ThreadOut) {
        for (k, h) in o.hists {
            match self.hists.get_mut(k) {
                Some(m) => {
                    let _ = m.add(&h);
                }
                None => {
                    self.hists.insert(k, h);
                }
            }
        }
        for (k, v) in o.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

pub fn merge_all(v: Vec<ThreadOut>) -> ThreadOut {
    let mut t = ThreadOut::default();
    for o in v {
        t.merge(o);
    }
    t
}

/// Ordered list of result fields, printed as a table and/or one JSON line.
pub struct Report {
    pub scenario: &'static str,
    rows: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            rows: Vec::new(),
        }
    }
    pub fn add(&mut self, k: &str, v: impl Into<Value>) {
        self.rows.push((k.to_string(), v.into()));
    }
    /// p50/p99/p999/max/mean/count of a histogram, keys prefixed.
    pub fn latency(&mut self, prefix: &str, h: Option<&Histogram<u64>>) {
        match h {
            Some(h) if !h.is_empty() => {
                self.add(&format!("{prefix}_count"), h.len());
                self.add(&format!("{prefix}_p50_us"), h.value_at_quantile(0.50));
                self.add(&format!("{prefix}_p99_us"), h.value_at_quantile(0.99));
                self.add(&format!("{prefix}_p999_us"), h.value_at_quantile(0.999));
                self.add(&format!("{prefix}_max_us"), h.max());
                self.add(
                    &format!("{prefix}_mean_us"),
                    (h.mean() * 10.0).round() / 10.0,
                );
            }
            _ => self.add(&format!("{prefix}_count"), 0),
        }
    }
    pub fn errors(&mut self, e: &BTreeMap<String, u64>) {
        let m: Map<String, Value> = e.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        self.add("errors", Value::Object(m));
    }
    pub fn print(&self, json_out: bool) {
        println!("== loadgen {} ==", self.scenario);
        let w = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &self.rows {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Object(m) if m.is_empty() => "none".to_string(),
                other => other.to_string(),
            };
            println!("  {k:<w$}  {s}");
        }
        if json_out {
            let mut m = Map::new();
            m.insert("scenario".into(), json!(self.scenario));
            for (k, v) in &self.rows {
                m.insert(k.clone(), v.clone());
            }
            println!("{}", Value::Object(m));
        }
    }
}

pub fn rate(n: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        ((n as f64 / secs) * 10.0).round() / 10.0
    }
}
