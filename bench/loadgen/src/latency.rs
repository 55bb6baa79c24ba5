//! Latency samples and the summary every scenario prints: percentiles plus a quantile curve
//! for the plots, all in milliseconds.

use std::time::Duration;

use serde::Serialize;

/// Quantiles written out for the latency distribution plots.
const CURVE: [f64; 16] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
];

/// Collected durations, kept in microseconds (a few million fit easily in memory).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u32>,
}

/// What a set of samples says, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// `[quantile, ms]` pairs for plotting the distribution.
    pub curve: Vec<(f64, f64)>,
}

impl Samples {
    /// Adds one duration (saturating at about 71 minutes).
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.micros.push(micros);
    }

    /// Moves every sample of `other` into `self`.
    pub fn absorb(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Sorts the samples and summarises them.
    pub fn summary(mut self) -> Summary {
        self.micros.sort_unstable();
        let sorted = &self.micros;
        let at = |q: f64| quantile(sorted, q);
        let mean_ms = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().map(|&m| f64::from(m)).sum::<f64>() / sorted.len() as f64 / 1000.0
        };
        Summary {
            count: sorted.len(),
            mean_ms,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
            curve: CURVE.iter().map(|&q| (q, at(q))).collect(),
        }
    }
}

/// Nearest-rank quantile of sorted microseconds, in milliseconds (0 when empty).
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let last = sorted.len() - 1;
    let rank = ((q * sorted.len() as f64).ceil() as usize)
        .saturating_sub(1)
        .min(last);
    f64::from(sorted[rank]) / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples = Samples::default();
        for ms in 1..=100 {
            samples.record(Duration::from_millis(ms));
        }
        let summary = samples.summary();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        assert!((summary.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn an_empty_set_summarises_to_zeroes() {
        let summary = Samples::default().summary();
        assert_eq!(summary.count, 0);
        assert_eq!(summary.p99_ms, 0.0);
    }
}
