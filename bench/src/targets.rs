//! The throughput and latency targets the issues set, per path and mode, and how far a
//! measured row is from each: `measured / required` for a floor, `allowed / measured` for a
//! ceiling, so 1.0 or more always means met.

use super::row::Row;

/// One target of a path in a mode.
pub struct Target {
    /// As the issue states it.
    pub text: &'static str,
    min_rate: Option<f64>,
    min_ratio: Option<f64>,
    max_p99_ms: f64,
    /// Least throughput against the bare server's (judged where the summary has it).
    min_vs_bare: Option<f64>,
}

/// The target of `path` in `mode`, if one was set.
pub fn of(path: &str, mode: &str) -> Option<Target> {
    let t = |text, min_rate, min_ratio, max_p99_ms| {
        Some(Target {
            text,
            min_rate,
            min_ratio,
            max_p99_ms,
            min_vs_bare: None,
        })
    };
    match (path, mode) {
        ("lock acquire (new keys)" | "lock acquire (new keys, wrk)", "primary") => {
            t("≥ 0.6× raw EVAL, p99 < 5 ms", None, Some(0.6), 5.0)
        }
        ("idempotency begin+complete", "primary") => {
            t("≥ 10 000 pairs/s, p99 < 20 ms", Some(10_000.0), None, 20.0)
        }
        ("streams intake+commit", "primary") => {
            t("≥ 5 000 intents/s, p99 < 20 ms", Some(5_000.0), None, 20.0)
        }
        ("flash sale hot SKU", "primary") => {
            t("≥ 10 000/s, p99 < 50 ms", Some(10_000.0), None, 50.0)
        }
        ("kv get (hot)" | "session get (hot)", "primary") => Some(Target {
            min_vs_bare: Some(0.8),
            ..t("≥ 0.8× bare axum, p99 < 5 ms", None, None, 5.0)?
        }),
        // Issue 18: every durable write, creates and PUTs of sessions and KV puts alike.
        ("kv put" | "session create" | "session put", "primary") => {
            t("≥ 10 000/s, p99 < 20 ms", Some(10_000.0), None, 20.0)
        }
        ("flash sale hot SKU", "fallback") => {
            t("≥ 3 000/s, p99 < 100 ms", Some(3_000.0), None, 100.0)
        }
        _ => None,
    }
}

impl Target {
    /// Each criterion's attainment for `row` (`throughput` or `ratio`, then `p99`); ≥ 1 is met.
    /// A ratio target without a measured baseline attains 0.
    pub fn attainment(&self, row: &Row) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        if let Some(min) = self.min_rate {
            out.push(("throughput", row.rate / min));
        }
        if let Some(min) = self.min_ratio {
            out.push(("ratio to baseline", row.ratio().unwrap_or(0.0) / min));
        }
        out.push(("p99", self.max_p99_ms / row.p99_ms().max(1e-3)));
        out
    }

    /// The attainment of the bare-server criterion for throughput `vs_bare` times the bare
    /// server's, if the target has one (0 when it was not measured).
    pub fn vs_bare_attainment(&self, vs_bare: Option<f64>) -> Option<f64> {
        self.min_vs_bare.map(|min| vs_bare.unwrap_or(0.0) / min)
    }

    /// Whether every criterion is met.
    pub fn met(&self, row: &Row) -> bool {
        self.attainment(row).iter().all(|(_, a)| *a >= 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{Baseline, StepLatency};

    fn row(path: &str, rate: f64, p99: f64, base: Option<f64>) -> Row {
        Row {
            path: path.into(),
            mode: "primary".into(),
            clients: 64,
            keys: None,
            unit: "x/s".into(),
            rate,
            refused: 0,
            steps: vec![StepLatency {
                name: "call".into(),
                p50_ms: 1.0,
                p95_ms: None,
                p99_ms: p99,
            }],
            check: None,
            baseline: base.map(|rate| Baseline {
                what: "raw".into(),
                rate,
                p99_ms: 1.0,
            }),
            database: None,
            round: None,
            cpu: None,
        }
    }

    #[test]
    fn a_target_is_met_only_when_every_criterion_is() {
        let t = of("streams intake+commit", "primary").unwrap();
        assert!(t.met(&row("streams intake+commit", 5_000.0, 19.0, None)));
        assert!(!t.met(&row("streams intake+commit", 4_999.0, 19.0, None)));
        assert!(!t.met(&row("streams intake+commit", 9_000.0, 21.0, None)));
        let lock = of("lock acquire (new keys)", "primary").unwrap();
        assert!(lock.met(&row("lock acquire (new keys)", 60.0, 4.0, Some(100.0))));
        assert!(!lock.met(&row("lock acquire (new keys)", 59.0, 4.0, Some(100.0))));
        assert!(!lock.met(&row("lock acquire (new keys)", 60.0, 4.0, None)));
        assert!(of("streams intake+commit", "fallback").is_none());
        let put = of("session put", "primary").unwrap();
        assert!(put.met(&row("session put", 10_000.0, 19.0, None)));
        assert!(!put.met(&row("session put", 8_660.0, 13.0, None)));
    }
}
