//! The settings of the key-value store, sessions and rate limits: each a section of
//! [`super::Config`] with its defaults; validated with the rest in `Config::validate`.

use serde::{Deserialize, Serialize};

use super::WriterSettings;

/// `kv.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvSettings {
    /// How long a record's hot copy stays in Redis after its last write or read from SQL, ms
    /// (at most until the record expires).
    pub copy_ttl_ms: u64,
    /// How long a write keeps the copy out of service if it never finishes, ms: longer than
    /// any write can take.
    pub hold_ms: u64,
    /// How long tombstones and expired records are kept (so versions only grow), ms.
    pub tombstone_ms: u64,
    /// How often they are reaped, ms.
    pub reap_every_ms: u64,
    /// Rows reaped per pass, at most.
    pub reap_batch: usize,
    /// Writes and deletes made durable together (group commit).
    pub writer: WriterSettings,
}

impl Default for KvSettings {
    fn default() -> Self {
        Self {
            copy_ttl_ms: 3_600_000,
            hold_ms: 300_000,
            tombstone_ms: 7 * 24 * 3_600_000,
            reap_every_ms: 60_000,
            reap_batch: 10_000,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 2,
            },
        }
    }
}

/// `sessions.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Largest session data, bytes of JSON.
    pub max_data_bytes: usize,
    /// How long a session's hot copy stays in Redis after its last write or read from SQL, ms
    /// (a live one's at most until its absolute expiry).
    pub copy_ttl_ms: u64,
    /// How long a write keeps the copy out of service if it never finishes, ms: longer than
    /// any write can take.
    pub hold_ms: u64,
    /// How often the sweeper marks sessions past an expiry as expired, ms.
    pub sweep_every_ms: u64,
    /// Sessions marked (and old rows forgotten) per sweep, at most.
    pub sweep_batch: usize,
    /// How long an ended session's row is kept after its absolute expiry, ms (a tombstone:
    /// until then a late write finds it ended).
    pub retention_ms: u64,
    /// Creates made durable together (group commit).
    pub writer: WriterSettings,
    /// How often the live sessions per tenant are counted for `/metrics`, ms.
    pub gauge_every_ms: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            max_data_bytes: 64 * 1024,
            copy_ttl_ms: 3_600_000,
            hold_ms: 300_000,
            sweep_every_ms: 1_000,
            sweep_batch: 1_000,
            retention_ms: 24 * 3_600_000,
            gauge_every_ms: 10_000,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 2,
            },
        }
    }
}

/// `ratelimit.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// How often every instance refreshes its in-memory copy of every saved policy from SQL,
    /// ms (one read of all revisions, then only the changed policies). The instance that
    /// saves a policy applies it on its next check; a check never reads SQL for a policy held.
    pub policy_cache_ms: u64,
    /// How often this instance renews its row in the instance table and, in `local` mode,
    /// flushes its per-policy decision counts to SQL (one statement per policy), ms.
    pub flush_every_ms: u64,
    /// After a fail-back to Redis, how long limits take to ramp from the degraded factor back
    /// to the full rate, ms.
    pub ramp_ms: u64,
    /// In-memory buckets kept per instance in `local` mode, at most (idle ones go first).
    pub local_max_buckets: usize,
    /// Per-subject overrides one policy may have (every instance holds them all).
    pub max_overrides: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            policy_cache_ms: 1_000,
            flush_every_ms: 2_000,
            ramp_ms: 60_000,
            local_max_buckets: 100_000,
            max_overrides: 10_000,
        }
    }
}
