//! A fixed-bucket histogram of plain integers: what one shard observes, merged across shards
//! at scrape time. No atomics: each shard owns its own (see [`super::shard`]).

/// RPC and short-operation latencies: the original's buckets (so a dashboard's `le="…"` query
/// finds every bound it knows) plus 10 µs … 2.5 ms below them, where most of ringgate's
/// answers fall.
pub const LATENCY_SECONDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The original's duration buckets (its plugin's `DURATION_BUCKETS_SECONDS`): runs, webhook
/// and delivery durations.
pub const RUN_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Event-loop delay window maxima: the original's buckets.
pub const LOOP_DELAY_SECONDS: &[f64] = RUN_SECONDS;

/// Count buckets for the storage thread's group-commit batch sizes.
pub const BATCH_SIZE: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The most buckets any family above has.
const MAX_BUCKETS: usize = 24;

/// The bucket a value falls in (the first bound that holds it, else `+Inf`'s slot), and the
/// value to add to the sum. Negative and NaN values count as 0: the clocks here are monotonic,
/// so they would only come from a bug, and a histogram must never go backwards.
fn bucket(bounds: &[f64], v: f64) -> (usize, f64) {
    let v = if v.is_nan() || v < 0.0 { 0.0 } else { v };
    let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
    (i, v)
}

/// Observations below each bound (not cumulative), one slot more for `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    bounds: &'static [f64],
    counts: [u64; MAX_BUCKETS + 1],
    sum: f64,
    count: u64,
}

impl Hist {
    pub const fn new(bounds: &'static [f64]) -> Hist {
        assert!(bounds.len() <= MAX_BUCKETS);
        Hist {
            bounds,
            counts: [0; MAX_BUCKETS + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let (i, v) = bucket(self.bounds, v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// Adds another shard's observations (same buckets).
    pub fn merge(&mut self, o: &Hist) {
        debug_assert_eq!(self.bounds, o.bounds);
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.sum += o.sum;
        self.count += o.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, observations in that bucket)`, `+Inf` last, as the exposition encoder
    /// takes them (it accumulates).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// A histogram written by one thread that is not a shard (the storage thread) and read by a
/// scrape: relaxed atomics, off the shards' per-message path.
#[derive(Debug)]
pub struct SharedHist {
    bounds: &'static [f64],
    counts: [std::sync::atomic::AtomicU64; MAX_BUCKETS + 1],
    /// The sum in millionths (µs for seconds).
    sum_micros: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU64,
}

impl SharedHist {
    pub fn new(bounds: &'static [f64]) -> SharedHist {
        assert!(bounds.len() <= MAX_BUCKETS);
        SharedHist {
            bounds,
            counts: Default::default(),
            sum_micros: Default::default(),
            count: Default::default(),
        }
    }

    pub fn observe(&self, v: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let (i, v) = bucket(self.bounds, v);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((v * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// A copy as a plain histogram.
    pub fn read(&self) -> Hist {
        use std::sync::atomic::Ordering::Relaxed;
        let mut h = Hist::new(self.bounds);
        for (a, b) in h.counts.iter_mut().zip(self.counts.iter()) {
            *a = b.load(Relaxed);
        }
        h.sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        h.count = h.counts.iter().sum();
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observes_into_the_first_bucket_that_holds_the_value() {
        let mut h = Hist::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0, -4.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(
            h.buckets(),
            vec![(1.0, 4), (2.0, 1), (f64::INFINITY, 1)],
            "≤1: 0.5, 1.0, and the clamped -4 and NaN"
        );
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum(), 6.0);
        let mut m = Hist::new(&[1.0, 2.0]);
        m.observe(1.7);
        m.merge(&h);
        assert_eq!(m.buckets()[1], (2.0, 2));
        assert_eq!(m.count(), 7);
    }
}
