//! Cache entries and invalidations as the stores keep them: an entry is served only while no
//! invalidation newer than it applies, and every invalidation is recorded durably first.

use std::future::Future;

use crate::store::StoreError;

/// What a read found, as stored (the value possibly compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRead {
    /// Fresh, written in the active epoch.
    Hit {
        /// The stored bytes.
        value: Vec<u8>,
        /// Whether they are zstd-compressed.
        compressed: bool,
        /// ms since written.
        age_ms: i64,
    },
    /// Past its TTL (within its stale TTL) or written under another epoch.
    Stale {
        /// The stored bytes.
        value: Vec<u8>,
        /// Whether they are zstd-compressed.
        compressed: bool,
        /// ms since written.
        age_ms: i64,
    },
    /// Absent, expired or invalidated.
    Miss,
}

/// What a read-through read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFetched {
    /// As [`CacheRead`] (hit or stale), with the lease of an early recompute if this caller
    /// was picked for one.
    Found {
        /// The read.
        read: CacheRead,
        /// `Some` when this caller should reload the entry (`refresh`).
        refresh: Option<i64>,
    },
    /// No usable entry: this caller holds the lease and loads it.
    Lease(i64),
    /// Another caller holds the lease for this long, ms.
    Wait(i64),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheWrite {
    /// Stored; entries evicted to stay under the namespace's `max_bytes`.
    Stored(i64),
    /// The lease it named is not the entry's live one, or was voided by a delete or an
    /// invalidation: nothing stored.
    LeaseInvalid,
}

/// A namespace's counters, cluster-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fresh reads.
    pub hits: i64,
    /// Reads that found nothing usable.
    pub misses: i64,
    /// Stale reads.
    pub stale: i64,
    /// Read-through reads told to wait for another caller's load.
    pub waits: i64,
    /// Leases granted.
    pub leases: i64,
    /// Early recomputes handed out.
    pub refreshes: i64,
    /// Entries evicted for `max_bytes`.
    pub evictions: i64,
    /// Bytes held.
    pub bytes: i64,
    /// Entries held (expired ones not yet reclaimed included).
    pub entries: i64,
    /// Bytes of values stored, before compression.
    pub raw_bytes: i64,
    /// The same after compression.
    pub kept_bytes: i64,
}

/// An entry to store.
#[derive(Debug, Clone)]
pub struct CacheEntry<'a> {
    /// The stored bytes (compressed when `compressed`).
    pub value: &'a [u8],
    /// Whether they are zstd-compressed.
    pub compressed: bool,
    /// Their size before compression.
    pub raw_len: usize,
    /// Fresh for this long, ms.
    pub ttl_ms: i64,
    /// Then stale for this long, ms.
    pub stale_ttl_ms: i64,
    /// How long the value took to compute, ms (early recompute scales with it).
    pub compute_ms: i64,
    /// Its tags.
    pub tags: &'a [String],
}

/// An invalidation kept for Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheInvalidation {
    /// Its id.
    pub id: String,
    /// The namespace.
    pub ns: String,
    /// `key`, `tag` or `namespace`.
    pub kind: String,
    /// The key or tag (`""` for a namespace).
    pub target: String,
}

/// The primary tier's cache entries: reads, read-through leases, writes, invalidations and memory, one atomic step each, on Redis's clock.
pub trait CacheCopy: Send + Sync {
    /// Reads entry `key` of `ns` as of `epoch` (`allow_stale`: a stale entry is answered).
    fn cache_get(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        allow_stale: bool,
    ) -> impl Future<Output = Result<CacheRead, StoreError>> + Send;
    /// Reads entry `key` of `ns` for a caller who loads on a miss: a lease of `lease_ms` when
    /// no one else holds one. `draw` is a uniform random in (0, 1] (early recompute).
    #[allow(clippy::too_many_arguments)]
    fn cache_fetch(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        allow_stale: bool,
        lease_ms: i64,
        draw: f64,
        beta: f64,
    ) -> impl Future<Output = Result<CacheFetched, StoreError>> + Send;
    /// Stores `entry` as `key` of `ns` in `epoch`, under `lease` when given; evicts the
    /// namespace's oldest entries beyond `max_bytes`. `max_lease_ms`: the longest lease.
    fn cache_put(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        entry: &CacheEntry<'_>,
        lease: Option<i64>,
        limits: (i64, i64),
    ) -> impl Future<Output = Result<CacheWrite, StoreError>> + Send;
    /// Deletes entry `key` of `ns` and voids its lease.
    fn cache_delete(
        &self,
        ns: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Invalidates tag `tag` of `ns` (`None`: the whole namespace), in O(1).
    fn cache_invalidate(
        &self,
        ns: &str,
        tag: Option<&str>,
        max_lease_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Forgets up to `batch` expired or invalidated entries of `ns` written after stamp
    /// `from`: how many, and the stamp to go on from (0 when the walk wrapped).
    fn cache_reclaim(
        &self,
        ns: &str,
        from: i64,
        batch: i64,
    ) -> impl Future<Output = Result<(i64, i64), StoreError>> + Send;
    /// The counters of `ns`.
    fn cache_stats(&self, ns: &str) -> impl Future<Output = Result<CacheStats, StoreError>> + Send;
}
