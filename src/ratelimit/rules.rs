//! The arithmetic of a check, as pure functions: how a limit is applied in each mode (the
//! degraded share in `local` mode, the ramp after a fail-back) and the GCRA step that `local`
//! mode runs in memory — the same step `lua/rl_check.lua` runs on Redis for `gcra` limits.

use super::policy::{Algorithm, Limit};
use crate::store::ratelimit::{Applied, Counted, Left, Step};

/// `max(1, floor(n · factor / live))`: one instance's share of `n` in `local` mode.
pub fn degraded(n: i64, factor: f64, live: i64) -> i64 {
    ((n as f64 * factor / live.max(1) as f64).floor() as i64).max(1)
}

/// The share of the full rate `elapsed_ms` after a fail-back: from `factor` up to 1, linearly
/// over `ramp_ms`.
pub fn ramp_share(factor: f64, elapsed_ms: i64, ramp_ms: i64) -> f64 {
    if ramp_ms <= 0 || elapsed_ms >= ramp_ms {
        return 1.0;
    }
    let done = elapsed_ms.max(0) as f64 / ramp_ms as f64;
    factor + (1.0 - factor) * done
}

/// `limit` as the primary tier applies it, at `share` of its rate.
pub fn primary(limit: &Limit, share: f64) -> Applied {
    Applied {
        algorithm: limit.algorithm.code(),
        rate: limit.rate as f64 * share,
        period_us: limit.period_ms * 1000,
        capacity: limit.capacity(),
    }
}

/// `limit` as one of `live` instances applies it in `local` mode: a GCRA bucket holding this
/// instance's share of the capacity, draining at its share of the rate.
pub fn local(limit: &Limit, factor: f64, live: i64) -> Applied {
    Applied {
        algorithm: Algorithm::Gcra.code(),
        rate: degraded(limit.rate, factor, live) as f64,
        period_us: limit.period_ms * 1000,
        capacity: degraded(limit.capacity(), factor, live),
    }
}

/// One GCRA bucket: units in use as of `at_us`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Units in use.
    pub level: f64,
    /// When `level` was measured, µs.
    pub at_us: i64,
}

impl Bucket {
    /// A bucket that admits one unit now and then only the steady rate: a failover never
    /// releases a burst.
    pub fn fresh(capacity: i64, now_us: i64) -> Self {
        Self {
            level: (capacity - 1).max(0) as f64,
            at_us: now_us,
        }
    }

    /// Units in use at `now_us`.
    pub fn level_at(&self, a: &Applied, now_us: i64) -> f64 {
        let drained = (now_us - self.at_us).max(0) as f64 * a.rate / a.period_us as f64;
        (self.level - drained).max(0.0)
    }
}

/// Runs `step` for `cost` over `buckets` (`buckets[i]` counts `limits[i]`), as the Redis step
/// does: every limit is read first, and a check charges them only if all admit the cost.
pub fn count(
    step: Step,
    buckets: &mut [Bucket],
    limits: &[Applied],
    cost: i64,
    now_us: i64,
) -> Counted {
    let used: Vec<f64> = buckets
        .iter()
        .zip(limits)
        .map(|(b, a)| b.level_at(a, now_us))
        .collect();
    let retry_us = used
        .iter()
        .zip(limits)
        .map(|(u, a)| {
            let over = u + cost as f64 - a.capacity as f64;
            if over <= 0.0 {
                0
            } else {
                (over * a.period_us as f64 / a.rate).ceil() as i64
            }
        })
        .max()
        .unwrap_or(0);
    let admitted = retry_us == 0;
    let after: Vec<f64> = used
        .iter()
        .map(|u| match step {
            Step::Check if admitted => u + cost as f64,
            Step::Refund => (u - cost as f64).max(0.0),
            _ => *u,
        })
        .collect();
    if step != Step::Peek {
        for (b, level) in buckets.iter_mut().zip(&after) {
            // A caller that read the clock before another took the bucket must not move the
            // bucket back in time: the interval between would drain twice.
            *b = Bucket {
                level: *level,
                at_us: now_us.max(b.at_us),
            };
        }
    }
    let limits = after
        .iter()
        .zip(limits)
        .map(|(u, a)| Left {
            remaining: ((a.capacity as f64 - u).floor() as i64).clamp(0, a.capacity),
            reset_us: (u * a.period_us as f64 / a.rate).ceil() as i64,
        })
        .collect();
    Counted {
        admitted: admitted || step == Step::Refund,
        retry_us: if step == Step::Refund { 0 } else { retry_us },
        limits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcra(rate: i64, period_ms: i64, burst: i64) -> Limit {
        Limit {
            name: "l".into(),
            algorithm: Algorithm::Gcra,
            rate,
            period_ms,
            burst: Some(burst),
        }
    }

    #[test]
    fn the_local_share_is_never_zero_and_divides_between_instances() {
        assert_eq!(degraded(18, 0.5, 1), 9);
        assert_eq!(degraded(18, 0.5, 2), 4);
        assert_eq!(degraded(1, 0.1, 10), 1);
        let a = local(&gcra(100, 1000, 20), 0.5, 2);
        assert_eq!((a.rate, a.capacity), (25.0, 5));
    }

    #[test]
    fn the_ramp_goes_from_the_factor_to_the_full_rate() {
        assert_eq!(ramp_share(0.5, 0, 60_000), 0.5);
        assert_eq!(ramp_share(0.5, 30_000, 60_000), 0.75);
        assert_eq!(ramp_share(0.5, 60_000, 60_000), 1.0);
    }

    #[test]
    fn eighteen_a_minute_admits_eighteen_then_one_every_3333_ms() {
        let a = [primary(&gcra(18, 60_000, 18), 1.0)];
        let mut b = [Bucket {
            level: 0.0,
            at_us: 0,
        }];
        for i in 0..18 {
            let c = count(Step::Check, &mut b, &a, 1, 0);
            assert!(c.admitted, "{i}");
        }
        let refused = count(Step::Check, &mut b, &a, 1, 0);
        assert!(!refused.admitted);
        assert_eq!(refused.retry_us, 3_333_334);
        assert!(!count(Step::Check, &mut b, &a, 1, 3_333_000).admitted);
        assert!(count(Step::Check, &mut b, &a, 1, 3_333_334).admitted);
        assert!(!count(Step::Check, &mut b, &a, 1, 3_333_334).admitted);
    }

    #[test]
    fn a_refusal_charges_no_limit_and_a_refund_never_goes_above_capacity() {
        let a = [
            primary(&gcra(18, 60_000, 18), 1.0),
            primary(&gcra(100, 86_400_000, 100), 1.0),
        ];
        let mut b = [
            Bucket {
                level: 18.0,
                at_us: 0,
            },
            Bucket {
                level: 18.0,
                at_us: 0,
            },
        ];
        let refused = count(Step::Check, &mut b, &a, 1, 0);
        assert!(!refused.admitted);
        assert_eq!(b[1].level, 18.0, "the day limit was not charged");
        let back = count(Step::Refund, &mut b, &a, 50, 0);
        assert_eq!(back.limits[0].remaining, 18);
        assert_eq!(b[0].level, 0.0);
        let peek = count(Step::Peek, &mut b, &a, 1, 0);
        assert!(peek.admitted);
        assert_eq!(b[0].level, 0.0, "a peek writes nothing");
    }

    #[test]
    fn a_late_clock_reading_never_moves_a_bucket_back() {
        let a = [primary(&gcra(1_000_000, 1_000, 1), 1.0)];
        let mut b = [Bucket {
            level: 0.0,
            at_us: 0,
        }];
        assert!(count(Step::Check, &mut b, &a, 1, 100).admitted);
        // Read the clock at 90 but got the bucket after the check at 100: no credit for 90..100
        // again.
        assert!(!count(Step::Check, &mut b, &a, 1, 90).admitted);
        assert_eq!(b[0].at_us, 100);
        assert!(!count(Step::Check, &mut b, &a, 1, 100).admitted);
    }

    #[test]
    fn a_fresh_bucket_admits_one_then_only_the_rate() {
        let a = [local(&gcra(100, 1000, 100), 0.5, 1)];
        let mut b = [Bucket::fresh(a[0].capacity, 0)];
        assert!(count(Step::Check, &mut b, &a, 1, 0).admitted);
        assert!(!count(Step::Check, &mut b, &a, 1, 0).admitted);
        assert!(count(Step::Check, &mut b, &a, 1, 20_000).admitted);
    }
}
