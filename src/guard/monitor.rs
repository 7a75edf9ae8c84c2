//! The S-PC-05-001 §10 monitor: the share of operations served in fallback mode and the p95 of
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

/// What the window shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Operations answered in the window.
    pub total: u64,
    /// Share of them answered in fallback mode.
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

    /// Records one answer of `op` in `mode`.
    pub fn record(&self, op: &str, mode: &str, elapsed: std::time::Duration) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let lock = op.starts_with("lock_");
        match mode {
            "fallback" => {
                self.fallback.fetch_add(1, Ordering::Relaxed);
                if lock {
                    self.lock.record(elapsed);
                }
            }
            "primary" if lock => self.primary_lock.record(elapsed),
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

    /// Reads the window ending `now` (epoch ms).
    pub fn read(&self, now: i64) -> Reading {
        let newest = self.snapshot(now);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.push_back(newest);
        let from = now - self.cfg.rate_window_ms as i64;
        while w.len() > 1 && w.front().is_some_and(|s| s.at < from) {
            w.pop_front();
        }
        let oldest = *w.front().expect("just pushed");
        drop(w);
        let total = newest.total - oldest.total;
        let fallback = newest.fallback - oldest.fallback;
        let lock: [u64; BUCKETS] = std::array::from_fn(|i| newest.lock[i] - oldest.lock[i]);
        let primary: [u64; BUCKETS] =
            std::array::from_fn(|i| newest.primary_lock[i] - oldest.primary_lock[i]);
        let fallback_rate = if total == 0 {
            0.0
        } else {
            fallback as f64 / total as f64
        };
        let lock_p95_ms = p95(&lock);
        let c = &self.cfg;
        let rate_judged = total >= c.min_samples;
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
            ..GuardSettings::default()
        }
    }

    fn feed(m: &Monitor, primary: u32, fallback: u32, lock_ms: u64) {
        for _ in 0..primary {
            m.record("lock_acquire", "primary", Duration::from_millis(1));
        }
        for _ in 0..fallback {
            m.record("lock_acquire", "fallback", Duration::from_millis(lock_ms));
        }
    }

    #[test]
    fn the_thresholds_of_section_10_give_the_levels() {
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 97, 3, 1);
        assert_eq!(m.read(100).level, Level::Normal);
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 90, 10, 1);
        let r = m.read(100);
        assert_eq!((r.level, r.fallback_rate), (Level::Warning, 0.1));
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 70, 30, 1);
        assert_eq!(m.read(100).level, Level::Critical);
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 1_000, 30, 1_300);
        let r = m.read(100);
        assert_eq!((r.level, r.lock_p95_ms), (Level::Critical, 1_500));
        // The primary calls' p95 is kept apart (here every one took 1 ms).
        assert_eq!(r.primary_lock_p95_ms, 1);
    }

    #[test]
    fn a_raised_level_holds_until_the_window_stays_normal_long_enough() {
        let m = Monitor::new(&settings());
        m.read(0);
        feed(&m, 90, 10, 1);
        let r = m.read(100);
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
