//! One GCRA step, two writings: `ratelimit::rules::count` (what `local` mode runs in memory)
//! and `rl_check.lua` / `rl_peek.lua` / `rl_refund.lua` on Redis. A random history of checks,
//! peeks and refunds of several costs over a subject with two limits runs through both; each
//! step must admit or refuse alike, leave the same units free on every limit, and say when to
//! retry alike (Redis drains by its own clock, so its wait may be shorter by the time the
//! history took). A refused check charges no limit on either; a subject first seen after a
//! fail-back (`fresh_after`) admits one unit on both, then only the rate.

use std::time::{Duration, Instant};

use crate::support::Rng;
use warden::ratelimit::rules::{count, primary, Bucket};
use warden::ratelimit::{Algorithm, Limit};
use warden::store::ratelimit::{Applied, LimitCopy, Step};
use warden::store::redis::RedisStore;

const DAY_MS: i64 = 86_400_000;

/// Two limits slow enough that the history drains nothing that counts: 10 a day, and 3 a day
/// with a burst of 5.
fn limits() -> Vec<Applied> {
    let gcra = |name: &str, rate, burst| Limit {
        name: name.into(),
        algorithm: Algorithm::Gcra,
        rate,
        period_ms: DAY_MS,
        burst,
    };
    vec![
        primary(&gcra("day", 10, None), 1.0),
        primary(&gcra("slow", 3, Some(5)), 1.0),
    ]
}

#[tokio::test]
async fn redis_counts_every_step_as_the_rule_does() {
    let redis = crate::support::Redis::start();
    let hot = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();
    let limits = limits();
    let keys: Vec<String> = ["day", "slow"]
        .iter()
        .map(|l| format!("warden:{{rl-rule}}:{l}"))
        .collect();
    let mut buckets = [Bucket {
        level: 0.0,
        at_us: 0,
    }; 2];
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let started = Instant::now();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..80 {
        let step = match rng.below(10) {
            0..=5 => Step::Check,
            6 | 7 => Step::Peek,
            _ => Step::Refund,
        };
        let cost = 1 + rng.below(3) as i64;
        let rule = count(step, &mut buckets, &limits, cost, 0);
        let lua = hot.count(step, &keys, &limits, cost, 0).await.unwrap();
        let at = format!("step {i}: {step:?} of {cost}");
        assert_eq!(lua.admitted, rule.admitted, "{at}: {lua:?} vs {rule:?}");
        let left = |c: &warden::store::ratelimit::Counted| -> Vec<i64> {
            c.limits.iter().map(|l| l.remaining).collect()
        };
        assert_eq!(left(&lua), left(&rule), "{at}: {lua:?} vs {rule:?}");
        let drained_us = started.elapsed().as_micros() as i64 + 1;
        assert!(
            lua.retry_us <= rule.retry_us && rule.retry_us - lua.retry_us <= drained_us,
            "{at}: retry {} on Redis, {} by the rule",
            lua.retry_us,
            rule.retry_us
        );
        if step == Step::Check {
            if rule.admitted {
                admitted += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(
        admitted > 3 && refused > 3,
        "{admitted} admitted, {refused} refused"
    );
}

#[tokio::test]
async fn a_subject_first_seen_after_a_fail_back_admits_one_unit_then_the_rate_on_both() {
    let redis = crate::support::Redis::start();
    let hot = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();
    let limits = limits();
    let keys: Vec<String> = ["day", "slow"]
        .iter()
        .map(|l| format!("warden:{{rl-fresh}}:{l}"))
        .collect();
    let mut buckets = [
        Bucket::fresh(limits[0].capacity, 0),
        Bucket::fresh(limits[1].capacity, 0),
    ];
    for i in 0..3 {
        let rule = count(Step::Check, &mut buckets, &limits, 1, 0);
        let lua = hot.count(Step::Check, &keys, &limits, 1, 1).await.unwrap();
        assert_eq!(lua.admitted, rule.admitted, "check {i}");
        assert_eq!(rule.admitted, i == 0, "check {i}");
        let left: Vec<i64> = lua.limits.iter().map(|l| l.remaining).collect();
        let want: Vec<i64> = rule.limits.iter().map(|l| l.remaining).collect();
        assert_eq!(left, want, "check {i}");
    }
}
