//! The S-PC-05-001 §10 monitor: the share of operations that should have been served by Redis
//! and fell back because of the tier (never those SQL serves by design), and the p95 of
//! fallback lock operations over a sliding window, judged against the warning and critical
//! thresholds, with hysteresis — once raised, the level holds until the window has been at or
//! under the warning thresholds for `normal_after_ms`, so values near a threshold never flap.
//! Recording an answer costs one or two relaxed atomic additions, and one more for a lock call
//! (whose latency is kept per mode, for the p95 per mode of S-PC-05-001 §9.4).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::GuardSettings;

/// Upper bounds of the fallback lock latency buckets, ms (the last is unbounded).
const BOUNDS_MS: [u64; 20] = [
    1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 600, 800, 1_000, 1_200, 1_500, 2_000, 3_000,
    5_000, 10_000,
];
const BUCKETS: usize = BOUNDS_MS.len() + 1;
/// Latency buckets of lock calls (counts per bucket of [`BOUNDS_MS`]).
#[derive(Debug)]
struct Buckets([AtomicU64; BUCKETS]);

impl Buckets {
    fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    fn record(&self, elapsed: std::time::Duration) {
        let ms = elapsed.as_millis() as u64;
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// The p95 of the calls counted in `b`, ms (the bucket's upper bound), or 0 with too few.
fn p95(b: &[u64; BUCKETS]) -> u64 {
    let calls: u64 = b.iter().sum();
    if calls < MIN_LOCK_SAMPLES {
        return 0;
    }
    let rank = (calls * 95).div_ceil(100);
    let mut seen = 0;
    let i = b.iter().position(|n| {
        seen += n;
        seen >= rank
    });
    i.map_or(0, |i| BOUNDS_MS.get(i).copied().unwrap_or(u64::MAX))
}

/// Fewest lock calls in the window before their p95 is judged.
const MIN_LOCK_SAMPLES: u64 = 20;

tokio::task_local! {
    static CURRENT: Arc<Monitor>;
}

/// Runs `fut` with `m` as the monitor its answers are recorded in.
pub async fn scope<F: std::future::Future>(m: Arc<Monitor>, fut: F) -> F::Output {
    CURRENT.scope(m, fut).await
}

/// Records one answered operation in the current request's monitor (if any).
pub fn record(op: &str, mode: &str, elapsed: std::time::Duration) {
    let _ = CURRENT.try_with(|m| m.record(op, mode, elapsed));
}

/// Records one refused side effect (a safe block) in the current request's monitor.
pub fn record_blocked(op: &'static str, key: &str, reason: &'static str) {
    let _ = CURRENT.try_with(|m| m.blocked(op, key, reason));
}

/// Sample correlation ids kept per operation and reason.
const SAMPLES: usize = 5;

/// Refusals of one operation for one reason, as this instance saw them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BlockedOps {
    /// How many.
    pub count: u64,
    /// The first refusal, epoch ms.
    pub first_at: i64,
    /// The last refusal, epoch ms.
    pub last_at: i64,
    /// Correlation ids of the last few.
    pub sample_correlation_ids: VecDeque<String>,
    /// Keys, streams or SKUs of the last few.
    pub sample_keys: VecDeque<String>,
}

/// The §10 level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// At or under the warning thresholds.
    Normal,
    /// Over a warning threshold (5 %, 500 ms).
    Warning,
    /// Over a critical threshold (20 %, 1200 ms).
    Critical,
}

/// The fallback share of a window of `window_ms` of which `observed_ms` was seen, with
/// `fallback` of `total` operations seen falling back: the unseen part counts as clean, at the
/// volume seen.
fn window_rate(fallback: u64, total: u64, observed_ms: u64, window_ms: u64) -> f64 {
    if total == 0 || window_ms == 0 {
        return 0.0;
    }
    let seen = observed_ms.min(window_ms) as f64 / window_ms as f64;
    fallback as f64 / total as f64 * seen
}

/// What the window shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Operations whose tier decision was Redis or SQL, answered in the window.
    pub total: u64,
    /// Of them, those served by SQL or memory because of the tier.
    pub fallback: u64,
    /// How much of the window this instance has seen, ms (at most a tick more than it).
    pub observed_ms: u64,
    /// The share of the window's operations that fell back (the unseen part of the window
    /// counted as clean).
    pub fallback_rate: f64,
    /// p95 of fallback lock calls, ms (the bucket's upper bound; 0 with too few calls).
    pub lock_p95_ms: u64,
    /// p95 of primary lock calls, ms (likewise): the other mode, for comparison.
    pub primary_lock_p95_ms: u64,
    /// The level the thresholds give (before hysteresis).
    pub level: Level,
}

#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    at: i64,
    total: u64,
    fallback: u64,
    lock: [u64; BUCKETS],
    primary_lock: [u64; BUCKETS],
}

#[derive(Debug, Default)]
struct Held {
    level: Option<Level>,
    good_since: i64,
}

/// Counts answers by mode and fallback lock latency; judged on every health tick.
#[derive(Debug)]
pub struct Monitor {
    total: AtomicU64,
    fallback: AtomicU64,
    lock: Buckets,
    primary_lock: Buckets,
    window: Mutex<VecDeque<Snapshot>>,
    held: Mutex<Held>,
    refused: Mutex<std::collections::BTreeMap<(&'static str, &'static str), BlockedOps>>,
    cfg: GuardSettings,
}

impl Monitor {
    /// A monitor with the thresholds of `cfg`.
    pub fn new(cfg: &GuardSettings) -> Self {
        Self {
            total: AtomicU64::new(0),
            fallback: AtomicU64::new(0),
            lock: Buckets::new(),
            primary_lock: Buckets::new(),
            window: Mutex::new(VecDeque::new()),
            held: Mutex::new(Held::default()),
            refused: Mutex::default(),
            cfg: cfg.clone(),
        }
    }

    /// Records one answer of `op` in `mode`. Only answers whose tier decision was Redis or
    /// SQL count: `primary` toward the total, `fallback` (SQL because of the tier) and `local`
    /// (this instance's memory because Redis is down) toward the total and the fallback.
    /// `durable` answers (SQL by design, on any tier) and `none` (no tier acted) are not
    /// counted: a workload heavy in session events or incident reads is no outage.
    pub fn record(&self, op: &str, mode: &str, elapsed: std::time::Duration) {
        let lock = op.starts_with("lock_");
        match mode {
            "primary" => {
                self.total.fetch_add(1, Ordering::Relaxed);
                if lock {
                    self.primary_lock.record(elapsed);
                }
            }
            "fallback" | "local" => {
                self.total.fetch_add(1, Ordering::Relaxed);
                self.fallback.fetch_add(1, Ordering::Relaxed);
                if lock {
                    self.lock.record(elapsed);
                }
            }
            _ => {}
        }
    }

    /// Records a refusal of `op` on `key` for `reason`.
    pub fn blocked(&self, op: &'static str, key: &str, reason: &'static str) {
        let now = crate::runtime::clock::now_ms();
        let mut all = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let b = all.entry((op, reason)).or_default();
        b.count += 1;
        if b.first_at == 0 {
            b.first_at = now;
        }
        b.last_at = now;
        if b.sample_keys.len() == SAMPLES {
            b.sample_keys.pop_front();
            b.sample_correlation_ids.pop_front();
        }
        b.sample_keys.push_back(key.to_owned());
        b.sample_correlation_ids
            .push_back(crate::runtime::correlation::current());
    }

    /// Puts back refusals that could not be written (merged with any recorded since).
    pub fn restore(&self, op: &'static str, reason: &'static str, b: BlockedOps) {
        let mut all = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let now = all.entry((op, reason)).or_default();
        now.count += b.count;
        if now.first_at == 0 || (b.first_at != 0 && b.first_at < now.first_at) {
            now.first_at = b.first_at;
        }
        now.last_at = now.last_at.max(b.last_at);
        if now.sample_keys.is_empty() {
            now.sample_keys = b.sample_keys;
            now.sample_correlation_ids = b.sample_correlation_ids;
        }
    }

    /// The refusals recorded since the last call, by operation and reason (the guard writes
    /// them to SQL every health tick, where the evidence pack reads every instance's).
    pub fn drain_refusals(&self) -> Vec<(&'static str, &'static str, BlockedOps)> {
        let mut all = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *all)
            .into_iter()
            .map(|((op, reason), b)| (op, reason, b))
            .collect()
    }

    fn snapshot(&self, at: i64) -> Snapshot {
        Snapshot {
            at,
            total: self.total.load(Ordering::Relaxed),
            fallback: self.fallback.load(Ordering::Relaxed),
            lock: self.lock.snapshot(),
            primary_lock: self.primary_lock.snapshot(),
        }
    }

    /// Reads the window ending `now` (epoch ms). The rate is judged over the whole
    /// configured window: while this instance has seen less of it (it started recently), the
    /// part it did not see counts as clean, at the volume it did see — so a new instance
    /// reads a short burst of fallback as the share of the window it is, as an instance with
    /// a full window would. Below `min_samples` operations or `rate_min_coverage_ms` of
    /// history the rate is not judged at all.
    pub fn read(&self, now: i64) -> Reading {
        let newest = self.snapshot(now);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.push_back(newest);
        // Keep the newest snapshot at or before the window's start, so a full window's
        // difference spans all of it.
        let from = now - self.cfg.rate_window_ms as i64;
        while w.len() > 1 && w.get(1).is_some_and(|s| s.at <= from) {
            w.pop_front();
        }
        let oldest = *w.front().expect("just pushed");
        drop(w);
        let total = newest.total - oldest.total;
        let fallback = newest.fallback - oldest.fallback;
        let lock: [u64; BUCKETS] = std::array::from_fn(|i| newest.lock[i] - oldest.lock[i]);
        let primary: [u64; BUCKETS] =
            std::array::from_fn(|i| newest.primary_lock[i] - oldest.primary_lock[i]);
        let c = &self.cfg;
        let observed_ms = (newest.at - oldest.at).max(0) as u64;
        let fallback_rate = window_rate(fallback, total, observed_ms, c.rate_window_ms);
        let lock_p95_ms = p95(&lock);
        let rate_judged = total >= c.min_samples && observed_ms >= c.rate_min_coverage_ms;
        let over = |rate: f64, p95: u64| (rate_judged && fallback_rate > rate) || lock_p95_ms > p95;
        let level = if over(c.fallback_rate_critical, c.fallback_p95_critical_ms) {
            Level::Critical
        } else if over(c.fallback_rate_warning, c.fallback_p95_warning_ms) {
            Level::Warning
        } else {
            Level::Normal
        };
        Reading {
            total,
            fallback,
            observed_ms,
            fallback_rate,
            lock_p95_ms,
            primary_lock_p95_ms: p95(&primary),
            level,
        }
    }

    /// The level held after `r` at `now`: a raised level holds (or rises) until the readings
    /// have stayed normal for `normal_after_ms`; `None` while nothing is raised.
    pub fn hold(&self, r: &Reading, now: i64) -> Option<Level> {
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if r.level > Level::Normal {
            h.good_since = 0;
            h.level = Some(h.level.map_or(r.level, |l| l.max(r.level)));
        } else if h.level.is_some() {
            if h.good_since == 0 {
                h.good_since = now;
            }
            if now - h.good_since >= self.cfg.normal_after_ms as i64 {
                h.level = None;
                h.good_since = 0;
            }
        }
        h.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> GuardSettings {
        GuardSettings {
            rate_window_ms: 1_000,
            normal_after_ms: 500,
            min_samples: 10,
            rate_min_coverage_ms: 0,
            ..GuardSettings::default()
        }
    }

    fn feed_in(m: &Monitor, mode: &str, n: u32, lock_ms: u64) {
        for _ in 0..n {
            m.record("lock_acquire", mode, Duration::from_millis(lock_ms));
        }
    }

    fn feed(m: &Monitor, primary: u32, fallback: u32, lock_ms: u64) {
        feed_in(m, "primary", primary, 1);
        feed_in(m, "fallback", fallback, lock_ms);
    }

    /// A monitor that has seen one whole window, fed `primary` and `fallback` lock calls.
    fn full_window(primary: u32, fallback: u32, lock_ms: u64) -> Reading {
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, primary, fallback, lock_ms);
        m.read(1_000)
    }

    #[test]
    fn the_thresholds_of_section_10_give_the_levels() {
        assert_eq!(full_window(97, 3, 1).level, Level::Normal);
        let r = full_window(90, 10, 1);
        assert_eq!((r.level, r.fallback_rate), (Level::Warning, 0.1));
        assert_eq!(full_window(70, 30, 1).level, Level::Critical);
        let r = full_window(1_000, 30, 1_300);
        assert_eq!((r.level, r.lock_p95_ms), (Level::Critical, 1_500));
        // The primary calls' p95 is kept apart (here every one took 1 ms).
        assert_eq!(r.primary_lock_p95_ms, 1);
    }

    #[test]
    fn answers_sql_gives_by_design_are_not_counted() {
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 100, 0, 1);
        // Session events, incident reads, fence checks: SQL on every tier.
        feed_in(&m, "durable", 10_000, 1);
        feed_in(&m, "none", 500, 1);
        let r = m.read(1_000);
        assert_eq!((r.total, r.fallback, r.level), (100, 0, Level::Normal));
        assert_eq!(r.fallback_rate, 0.0);
    }

    #[test]
    fn an_instance_memory_standing_in_for_redis_is_a_fallback() {
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 70, 0, 1);
        feed_in(&m, "local", 30, 1);
        let r = m.read(1_000);
        assert_eq!((r.fallback, r.level), (30, Level::Critical));
    }

    #[test]
    fn a_new_instance_judges_what_it_saw_as_its_share_of_the_window() {
        // A quarter of the window seen, 30 % of it in fallback: 7.5 % of the window.
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 70, 30, 1);
        let r = m.read(250);
        assert_eq!(r.observed_ms, 250);
        assert!((r.fallback_rate - 0.075).abs() < 1e-9, "{r:?}");
        assert_eq!(r.level, Level::Warning);
        // The same share over the whole window is critical.
        feed(&m, 70, 30, 1);
        let r = m.read(1_000);
        assert!((r.fallback_rate - 0.3).abs() < 1e-9, "{r:?}");
        assert_eq!(r.level, Level::Critical);
    }

    #[test]
    fn too_little_history_or_too_few_operations_are_not_judged() {
        let cfg = GuardSettings {
            rate_min_coverage_ms: 500,
            ..settings()
        };
        let m = Monitor::new(&cfg);
        m.read(0);
        feed(&m, 0, 100, 1);
        // 40 % of the window seen, all of it fallback: not judged yet.
        assert_eq!(m.read(400).level, Level::Normal);
        assert_eq!(m.read(600).level, Level::Critical);
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 0, 9, 1);
        assert_eq!(m.read(1_000).level, Level::Normal);
    }

    #[test]
    fn the_window_slides() {
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 0, 100, 1);
        assert_eq!(m.read(1_000).level, Level::Critical);
        feed(&m, 100, 0, 1);
        m.read(1_500);
        feed(&m, 100, 0, 1);
        // The window ending at 2 500 starts at the snapshot of 1 500: the fallback burst
        // before 1 000 is out of it.
        let r = m.read(2_500);
        assert_eq!((r.total, r.fallback, r.level), (100, 0, Level::Normal));
        assert_eq!(r.observed_ms, 1_000);
    }

    #[test]
    fn a_raised_level_holds_until_the_window_stays_normal_long_enough() {
        let m = Monitor::new(&settings());
        let r = full_window(90, 10, 1);
        assert_eq!(m.hold(&r, 100), Some(Level::Warning));
        // Values dipping under the threshold do not clear it at once (no flapping).
        let calm = Reading {
            level: Level::Normal,
            ..r
        };
        assert_eq!(m.hold(&calm, 200), Some(Level::Warning));
        assert_eq!(m.hold(&r, 300), Some(Level::Warning));
        assert_eq!(m.hold(&calm, 400), Some(Level::Warning));
        assert_eq!(m.hold(&calm, 899), Some(Level::Warning));
        assert_eq!(m.hold(&calm, 900), None);
    }
}
