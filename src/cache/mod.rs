//! The cache (DESIGN §4.8, G12): entries live in Redis only, one namespace per Cluster slot.
//! At most one caller per key holds a lease to load it at a time; a put under a lease voided
//! by a delete or an invalidation stores nothing; tag and namespace invalidations are one stamp
//! each. While failed over the cache answers `miss`, leases are per instance, invalidations
//! are kept in SQL and applied to Redis before it answers again, and entries of an older epoch
//! are at best `stale` — so the cache never writes SQL per read and never serves what was
//! invalidated.

pub mod load;
mod local;
mod maintain;
pub mod outcome;
pub mod rules;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

pub use outcome::{Fetch, Invalidated, Put, Read, Warmed, STATS};

use crate::config::CacheSettings;
use crate::metrics_names as m;
use crate::outcome::Terminal;
use crate::store::cache::{
    CacheCopy, CacheEntry, CacheFetched, CacheInvalidation, CacheRead, CacheWrite,
};
use crate::tier::{Blocked, Mode, Primary, Tier};

/// Puts of one warm-up in flight at once.
const WARM_CONCURRENCY: usize = 16;

/// An entry to store.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// The value, JSON text.
    pub value: String,
    /// Fresh for this long, ms.
    pub ttl_ms: i64,
    /// Then stale for this long, ms.
    pub stale_ttl_ms: i64,
    /// Its tags.
    pub tags: Vec<String>,
    /// The lease it was loaded under, if any.
    pub lease_token: Option<i64>,
    /// How long it took to compute, ms.
    pub compute_ms: i64,
}

/// A namespace's counters: cluster-wide from Redis, or (failed over) this instance's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// The counters.
    pub counts: crate::store::cache::CacheStats,
    /// Raw bytes over stored bytes of the values written (1 without compression).
    pub compression_ratio: f64,
}

/// The cache service.
pub struct Cache {
    tier: Arc<Tier>,
    cfg: CacheSettings,
    /// Leases while failed over: one loader per key per instance.
    local: local::Leases,
    /// The epoch whose pending invalidations this instance applied to Redis last.
    replayed: AtomicI64,
    replaying: tokio::sync::Mutex<()>,
    /// Namespaces this instance used (the reclaimer walks them), with each walk's position.
    seen: Mutex<std::collections::BTreeMap<String, i64>>,
    /// In-process loads in flight (`get_or_load`).
    flights: load::Flights,
}

/// The namespace as Redis and SQL know it: the tenant's namespace.
fn scoped(tenant: &str, ns: &str) -> String {
    format!("{tenant}/{ns}")
}

impl Cache {
    /// The service over `tier`.
    pub fn new(tier: Arc<Tier>, cfg: &CacheSettings) -> Arc<Self> {
        Arc::new(Self {
            tier,
            cfg: cfg.clone(),
            local: local::Leases::default(),
            replayed: AtomicI64::new(0),
            replaying: tokio::sync::Mutex::new(()),
            seen: Mutex::new(Default::default()),
            flights: load::Flights::default(),
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &CacheSettings {
        &self.cfg
    }

    /// The primary tier when it is active and every invalidation made while failed over has
    /// been applied to it; with the mode and epoch. `None` primary: answer as failed over.
    async fn tier_for(&self, ns: &str) -> Result<(Option<Primary<'_>>, Mode, i64), Blocked> {
        let active = self.tier.active_durable()?;
        let (mode, epoch) = (active.mode(), active.epoch);
        let Some(p) = active.primary() else {
            return Ok((None, mode, epoch));
        };
        self.note(ns);
        if self.replayed.load(Ordering::Acquire) < epoch && !self.replay(p, epoch, false).await {
            // Invalidations may be missing from Redis: serve nothing from it yet.
            return Err(Blocked::RedisUnavailable);
        }
        Ok((Some(p), mode, epoch))
    }

    fn note(&self, ns: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains_key(ns) {
            seen.insert(ns.to_owned(), 0);
        }
    }

    /// Reads `key` of `ns` (of `tenant`).
    pub async fn get(
        &self,
        tenant: &str,
        ns: &str,
        key: &str,
        allow_stale: bool,
    ) -> Result<(Read, Mode), Blocked> {
        let ns = scoped(tenant, ns);
        let (primary, mode, epoch) = self.tier_for(&ns).await?;
        let read = match primary {
            None => Read::Miss,
            Some(p) => {
                let found = p
                    .settle(|s| s.cache_get(&ns, key, epoch, allow_stale))
                    .await?;
                match found {
                    CacheRead::Hit {
                        value,
                        compressed,
                        age_ms,
                    } => Read::Hit(decode(&value, compressed), age_ms),
                    CacheRead::Stale {
                        value,
                        compressed,
                        age_ms,
                    } => Read::Stale(decode(&value, compressed), age_ms),
                    CacheRead::Miss => Read::Miss,
                }
            }
        };
        count_read(&ns, read.state());
        Ok((read, mode))
    }

    /// Reads `key` of `ns` for a caller who loads it on a miss (`lease_ms`: its lease if it
    /// gets one).
    pub async fn fetch(
        &self,
        tenant: &str,
        ns: &str,
        key: &str,
        lease_ms: i64,
        allow_stale: bool,
    ) -> Result<(Fetch, Mode), Blocked> {
        let ns = scoped(tenant, ns);
        let (primary, mode, epoch) = self.tier_for(&ns).await?;
        let fetched = match primary {
            None => match self.local.grant(&ns, key, epoch, lease_ms, self.tier.now()) {
                Ok(token) => Fetch::MissLease(token),
                Err(wait_ms) => Fetch::MissWait(wait_ms),
            },
            Some(p) => {
                let beta = self.cfg.xfetch_beta.max(0.0);
                let found = p
                    .settle(|s| s.cache_fetch(&ns, key, epoch, allow_stale, lease_ms, draw(), beta))
                    .await?;
                match found {
                    CacheFetched::Lease(t) => Fetch::MissLease(t),
                    CacheFetched::Wait(ms) => Fetch::MissWait(ms),
                    CacheFetched::Found { read, refresh } => match (read, refresh) {
                        (
                            CacheRead::Hit {
                                value,
                                compressed,
                                age_ms,
                            },
                            Some(t),
                        ) => Fetch::Refresh(decode(&value, compressed), age_ms, t),
                        (
                            CacheRead::Hit {
                                value,
                                compressed,
                                age_ms,
                            },
                            None,
                        ) => Fetch::Hit(decode(&value, compressed), age_ms),
                        (
                            CacheRead::Stale {
                                value,
                                compressed,
                                age_ms,
                            },
                            _,
                        ) => Fetch::Stale(decode(&value, compressed), age_ms),
                        (CacheRead::Miss, _) => Fetch::MissWait(1),
                    },
                }
            }
        };
        count_read(&ns, fetched.state());
        Ok((fetched, mode))
    }

    /// Stores an entry of `ns` (under its lease, when it names one).
    pub async fn put(
        &self,
        tenant: &str,
        ns: &str,
        key: &str,
        req: &PutRequest,
    ) -> Result<(Put, Mode), Blocked> {
        let ns = scoped(tenant, ns);
        let (primary, mode, epoch) = self.tier_for(&ns).await?;
        let Some(p) = primary else {
            let valid = req
                .lease_token
                .is_none_or(|t| self.local.settle(&ns, key, t, self.tier.now()));
            let put = if valid {
                Put::Stored {
                    kept: false,
                    evicted: 0,
                }
            } else {
                Put::LeaseInvalid
            };
            return Ok((put, mode));
        };
        let (stored, compressed) = encode(&req.value, self.cfg.compress_min_bytes);
        let entry = CacheEntry {
            value: &stored,
            compressed,
            raw_len: req.value.len(),
            ttl_ms: req.ttl_ms,
            stale_ttl_ms: req.stale_ttl_ms,
            compute_ms: req.compute_ms,
            tags: &req.tags,
        };
        let limits = (
            self.cfg.max_bytes_of(&ns) as i64,
            self.cfg.max_lease_ms as i64,
        );
        let written = p
            .settle(|s| s.cache_put(&ns, key, epoch, &entry, req.lease_token, limits))
            .await?;
        Ok((
            match written {
                CacheWrite::Stored(evicted) => {
                    if evicted > 0 {
                        metrics::counter!(m::CACHE_EVICTIONS, "ns" => ns.clone())
                            .increment(evicted as u64);
                    }
                    metrics::counter!(m::CACHE_STORED_BYTES, "ns" => ns.clone(), "form" => "raw")
                        .increment(req.value.len() as u64);
                    metrics::counter!(m::CACHE_STORED_BYTES, "ns" => ns, "form" => "kept")
                        .increment(stored.len() as u64);
                    Put::Stored {
                        kept: true,
                        evicted,
                    }
                }
                CacheWrite::LeaseInvalid => {
                    metrics::counter!(m::CACHE_LEASE_INVALID, "ns" => ns).increment(1);
                    Put::LeaseInvalid
                }
            },
            mode,
        ))
    }

    /// Deletes `key` of `ns` and voids its lease.
    pub async fn delete(
        &self,
        tenant: &str,
        ns: &str,
        key: &str,
    ) -> Result<(Invalidated, Mode), Blocked> {
        self.invalidate_as(tenant, ns, "key", key).await
    }

    /// Invalidates tag `tag` of `ns` (`None`: all of `ns`), in O(1).
    pub async fn invalidate(
        &self,
        tenant: &str,
        ns: &str,
        tag: Option<&str>,
    ) -> Result<(Invalidated, Mode), Blocked> {
        match tag {
            Some(t) => self.invalidate_as(tenant, ns, "tag", t).await,
            None => self.invalidate_as(tenant, ns, "namespace", "").await,
        }
    }

    async fn invalidate_as(
        &self,
        tenant: &str,
        ns: &str,
        kind: &'static str,
        target: &str,
    ) -> Result<(Invalidated, Mode), Blocked> {
        let ns = scoped(tenant, ns);
        let (primary, mode, _) = self.tier_for(&ns).await?;
        match primary {
            Some(p) => {
                p.settle(|s| apply(s, &ns, kind, target, self.max_lease()))
                    .await?
            }
            None => {
                // Kept for Redis, which holds entries of before the switch.
                let inv = CacheInvalidation {
                    id: new_id(),
                    ns: ns.clone(),
                    kind: kind.to_owned(),
                    target: target.to_owned(),
                };
                let sql = self.tier.durable();
                metrics::counter!(m::CACHE_SQL, "statement" => "invalidation").increment(1);
                let at = self.tier.now();
                self.tier
                    .on_durable(sql.cache_invalidation(&inv, at))
                    .await?;
                self.local.void(&ns, (kind == "key").then_some(target));
            }
        }
        metrics::counter!(m::CACHE_INVALIDATIONS, "ns" => ns, "kind" => kind).increment(1);
        Ok((Invalidated, mode))
    }

    /// Stores `entries` of `ns` without leases (nothing while failed over).
    pub async fn warm(
        &self,
        tenant: &str,
        ns: &str,
        entries: &[(String, PutRequest)],
    ) -> Result<(Warmed, Mode), Blocked> {
        let mut mode = self.tier.active_durable()?.mode();
        let mut n = 0;
        for chunk in entries.chunks(WARM_CONCURRENCY) {
            let puts = chunk
                .iter()
                .map(|(key, req)| self.put(tenant, ns, key, req));
            for (put, m) in futures::future::try_join_all(puts).await? {
                mode = m;
                n += usize::from(matches!(put, Put::Stored { kept: true, .. }));
            }
        }
        Ok((Warmed(n), mode))
    }

    /// The counters of `ns`.
    pub async fn stats(&self, tenant: &str, ns: &str) -> Result<(Stats, Mode), Blocked> {
        let ns = scoped(tenant, ns);
        let (primary, mode, _) = self.tier_for(&ns).await?;
        let counts = match primary {
            Some(p) => p.settle(|s| s.cache_stats(&ns)).await?,
            None => Default::default(),
        };
        let ratio = publish(&ns, &counts);
        Ok((
            Stats {
                counts,
                compression_ratio: ratio,
            },
            mode,
        ))
    }

    fn max_lease(&self) -> i64 {
        self.cfg.max_lease_ms as i64
    }
}

/// Applies one invalidation to Redis.
async fn apply(
    s: &impl CacheCopy,
    ns: &str,
    kind: &str,
    target: &str,
    max_lease_ms: i64,
) -> Result<(), crate::store::StoreError> {
    match kind {
        "key" => s.cache_delete(ns, target).await,
        "tag" => s
            .cache_invalidate(ns, Some(target), max_lease_ms)
            .await
            .map(|_| ()),
        _ => s.cache_invalidate(ns, None, max_lease_ms).await.map(|_| ()),
    }
}

/// Publishes the size gauges of `ns`: its compression ratio (raw over stored bytes, 1 with
/// nothing stored).
fn publish(ns: &str, counts: &crate::store::cache::CacheStats) -> f64 {
    let ratio = if counts.kept_bytes > 0 {
        counts.raw_bytes as f64 / counts.kept_bytes as f64
    } else {
        1.0
    };
    metrics::gauge!(m::CACHE_BYTES, "ns" => ns.to_owned()).set(counts.bytes as f64);
    metrics::gauge!(m::CACHE_COMPRESSION, "ns" => ns.to_owned()).set(ratio);
    ratio
}

fn count_read(ns: &str, state: &'static str) {
    metrics::counter!(m::CACHE_READS, "ns" => ns.to_owned(), "result" => state).increment(1);
}

/// `value` as stored: zstd-compressed when at least `min` bytes and smaller so.
fn encode(value: &str, min: usize) -> (Vec<u8>, bool) {
    if value.len() >= min {
        if let Ok(z) = zstd::bulk::compress(value.as_bytes(), 3) {
            if z.len() < value.len() {
                return (z, true);
            }
        }
    }
    (value.as_bytes().to_vec(), false)
}

/// A stored value as JSON text (`null` if it cannot be read back, which only a foreign
/// writer could cause).
fn decode(stored: &[u8], compressed: bool) -> String {
    let bytes = if compressed {
        match zstd::stream::decode_all(stored) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cache value does not decompress");
                return "null".into();
            }
        }
    } else {
        stored.to_vec()
    };
    String::from_utf8(bytes).unwrap_or_else(|_| "null".into())
}

/// A uniform random in (0, 1].
fn draw() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 1.0;
    }
    ((u64::from_le_bytes(b) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}
