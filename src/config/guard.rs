//! `guard.*` and `notify.*`: the operational guard's timers and thresholds and the webhook
//! endpoints it notifies. Every timer of DESIGN §4.10 is here, so tests run them in
//! milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `guard.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    /// Repeat interval of a critical incident's notices while unacknowledged, ms.
    pub notify_interval_ms: u64,
    /// How long repeats go on; then the next-shift ticket, ms.
    pub notify_window_ms: u64,
    /// A critical incident unacknowledged this long puts Warden in safe mode, ms.
    pub safe_mode_after_ms: u64,
    /// Continuously green health needed to leave safe mode, ms.
    pub exit_green_ms: u64,
    /// How often health is sampled and escalations are advanced, ms.
    pub health_tick_ms: u64,
    /// The window over which the fallback rate and fallback lock p95 are measured, ms
    /// (S-PC-05-001 §10: 15 min).
    pub rate_window_ms: u64,
    /// How long the fallback must stay at or under the warning thresholds before Warden's
    /// own incident resolves, ms (§10: 30 min).
    pub normal_after_ms: u64,
    /// Fallback rate above which Warden raises a warning (§10: 5 %).
    pub fallback_rate_warning: f64,
    /// Fallback rate above which Warden raises a critical incident (§10: 20 %).
    pub fallback_rate_critical: f64,
    /// Fallback lock p95 above which Warden raises a warning, ms (§10: 500).
    pub fallback_p95_warning_ms: u64,
    /// Fallback lock p95 above which Warden raises a critical incident, ms (§10: 1200).
    pub fallback_p95_critical_ms: u64,
    /// Fewest operations in the window before the rate is judged (a handful of requests in
    /// fallback is not a rate).
    pub min_samples: u64,
    /// Least history, ms, an instance must have seen before its rate is judged. The rate is
    /// always a share of the whole window (the unseen part counts as clean), so a critical
    /// needs at least `fallback_rate_critical × rate_window_ms` of fallback whatever this is.
    pub rate_min_coverage_ms: u64,
    /// How long evidence rows (refusals, readings) and finished deliveries are kept, ms.
    pub retention_ms: u64,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            notify_interval_ms: 300_000,
            notify_window_ms: 1_800_000,
            safe_mode_after_ms: 900_000,
            exit_green_ms: 600_000,
            health_tick_ms: 10_000,
            rate_window_ms: 900_000,
            normal_after_ms: 1_800_000,
            fallback_rate_warning: 0.05,
            fallback_rate_critical: 0.20,
            fallback_p95_warning_ms: 500,
            fallback_p95_critical_ms: 1_200,
            min_samples: 100,
            rate_min_coverage_ms: 60_000,
            retention_ms: 30 * 24 * 3_600_000,
        }
    }
}

impl GuardSettings {
    /// The health tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.health_tick_ms)
    }
}

/// `notify.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// The owner's webhook endpoint (empty: the owner is not notified).
    pub owner_url: String,
    /// The owner's `whsec_…` signing secret.
    pub owner_secret: String,
    /// The superadmin's webhook endpoint (empty: not notified).
    pub superadmin_url: String,
    /// The superadmin's `whsec_…` signing secret.
    pub superadmin_secret: String,
    /// Per-try timeout of a delivery, ms.
    pub timeout_ms: u64,
    /// Tries before a delivery is dead (and goes to the other role).
    pub max_tries: u32,
    /// First retry delay, ms; doubled per try (with jitter), at most `backoff_max_ms`.
    pub backoff_ms: u64,
    /// Longest retry delay, ms (a receiver's `Retry-After` may ask for more, up to 1 h).
    pub backoff_max_ms: u64,
    /// How often the outbox is polled for due deliveries, ms.
    pub poll_ms: u64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            owner_url: String::new(),
            owner_secret: String::new(),
            superadmin_url: String::new(),
            superadmin_secret: String::new(),
            timeout_ms: 5_000,
            max_tries: 6,
            backoff_ms: 1_000,
            backoff_max_ms: 60_000,
            poll_ms: 250,
        }
    }
}
