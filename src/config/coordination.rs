//! The settings of the coordination capabilities — idempotency, locks, reservations and
//! streams: each a section of [`super::Config`] with its defaults; validated with the rest in
//! `Config::validate`.

use serde::{Deserialize, Serialize};

use super::{ttl_table, ConfigError, TtlTable, WriterSettings};

/// `idempotency.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How often expired records are deleted, ms.
    pub reap_interval_ms: u64,
    /// Expired records deleted per statement.
    pub reap_batch: i64,
    /// How often a waiting `begin` rechecks a claim held through another instance, ms.
    pub wait_poll_ms: u64,
    /// Claims and completions: one batch in flight, since on a loaded machine PostgreSQL's
    /// CPU is the limit and one larger batch beats two overlapping ones (docs/benchmarks.md).
    pub writer: WriterSettings,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            reap_interval_ms: 10_000,
            reap_batch: 10_000,
            wait_poll_ms: 20,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 1,
            },
        }
    }
}

/// `locks.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockSettings {
    /// How often a waiting acquire retries a lock held through another instance, ms.
    pub wait_poll_ms: u64,
    /// How often the wait-for graph is swept for deadlocks that formed after their waits
    /// began, ms.
    pub deadlock_check_ms: u64,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            wait_poll_ms: 20,
            deadlock_check_ms: 1_000,
        }
    }
}

/// `reservations.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReservationSettings {
    /// How often holds past their deadline are returned to stock, ms.
    pub reap_every_ms: u64,
    /// Holds expired per reaper pass, at most.
    pub reap_batch: i64,
    /// How often Redis stock copies are compared with SQL, ms (reported; `warden reconcile
    /// --fix` corrects them).
    pub reconcile_every_ms: u64,
    /// How long a difference must last before it is reported, ms (a hold in flight).
    pub reconcile_settle_ms: u64,
    /// Holds Redis granted, made durable.
    pub writer: WriterSettings,
}

impl Default for ReservationSettings {
    fn default() -> Self {
        Self {
            reap_every_ms: 200,
            reap_batch: 1_000,
            reconcile_every_ms: 30_000,
            reconcile_settle_ms: 300,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 2,
            },
        }
    }
}

/// `streams.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// How long a parked commit waits for its predecessor before manual review, ms.
    pub causal_wait_timeout_ms: u64,
    /// Replay TTL per intent type, `type=ms,type=ms`.
    pub intent_ttls: String,
    /// Replay TTL of types not listed, ms.
    pub intent_ttl_default_ms: u64,
    /// Parked commits sent to review per sweep, at most.
    pub sweep_batch: i64,
    /// How often gauges are refreshed and overdue commits swept, at most, ms.
    pub tick_ms: u64,
    /// How often a parked commit checks the Redis copy for its turn, ms.
    pub wait_poll_copy_ms: u64,
    /// How often it checks SQL when there is no copy, ms.
    pub wait_poll_sql_ms: u64,
    /// Intakes and commits: one batch in flight (a batch is two statements however many
    /// writes it holds, so larger batches beat overlapping ones; and this instance's batches
    /// never race each other).
    pub writer: WriterSettings,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            causal_wait_timeout_ms: 30_000,
            intent_ttls: String::new(),
            intent_ttl_default_ms: 86_400_000,
            sweep_batch: 500,
            tick_ms: 250,
            wait_poll_copy_ms: 20,
            wait_poll_sql_ms: 50,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 1,
            },
        }
    }
}

impl StreamSettings {
    /// The replay TTL table.
    pub fn ttl_table(&self) -> Result<TtlTable, ConfigError> {
        ttl_table(&self.intent_ttls, self.intent_ttl_default_ms)
    }
}
