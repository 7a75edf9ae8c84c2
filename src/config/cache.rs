//! `cache.*`: the cache's limits and timings, with their defaults; validated with the rest in
//! `Config::validate`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `cache.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Values of at least this many bytes are stored zstd-compressed when that is smaller.
    pub compress_min_bytes: usize,
    /// Bytes a namespace may hold in Redis (values as stored); beyond, its oldest entries are
    /// evicted.
    pub max_bytes: u64,
    /// `max_bytes` of particular namespaces (`warden.toml`: `[cache.namespace_max_bytes]`).
    pub namespace_max_bytes: BTreeMap<String, u64>,
    /// Lease of a read-through read that names none, ms.
    pub lease_ms: u64,
    /// Longest lease a caller may ask for, ms.
    pub max_lease_ms: u64,
    /// Longest TTL, and longest stale TTL, ms.
    pub max_ttl_ms: u64,
    /// Largest value, bytes of JSON.
    pub max_value_bytes: usize,
    /// Most tags of one entry.
    pub max_tags: usize,
    /// Early recompute (XFetch) beta: above 1 reloads earlier, 0 never early.
    pub xfetch_beta: f64,
    /// How often each namespace this instance uses is walked for expired and invalidated
    /// entries, ms.
    pub reclaim_every_ms: u64,
    /// Entries looked at per namespace per walk, at most.
    pub reclaim_batch: usize,
    /// How often invalidations made while failed over are looked for and applied to Redis,
    /// ms (also right after every switch back to Redis, before the cache answers).
    pub replay_every_ms: u64,
    /// How long an invalidation made while failed over is kept in SQL after it was applied to
    /// Redis, ms; then the replay pass forgets it, so the table stays bounded.
    pub invalidations_kept_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            compress_min_bytes: 1024,
            max_bytes: 64 * 1024 * 1024,
            namespace_max_bytes: BTreeMap::new(),
            lease_ms: 2_000,
            max_lease_ms: 60_000,
            max_ttl_ms: 7 * 24 * 3_600_000,
            max_value_bytes: 1024 * 1024,
            max_tags: 16,
            xfetch_beta: 1.0,
            reclaim_every_ms: 1_000,
            reclaim_batch: 1_000,
            replay_every_ms: 1_000,
            invalidations_kept_ms: 3_600_000,
        }
    }
}

impl CacheSettings {
    /// The `max_bytes` of namespace `ns`.
    pub fn max_bytes_of(&self, ns: &str) -> u64 {
        self.namespace_max_bytes
            .get(ns)
            .copied()
            .unwrap_or(self.max_bytes)
    }
}
