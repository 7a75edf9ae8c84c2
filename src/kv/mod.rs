//! The key-value store (DESIGN §4.7, G12): every write is durable in SQL before its answer,
//! conditional on a version when asked; Redis holds a hot copy that is served only when it
//! was written in the active epoch with no write in flight, so a deleted or overwritten record
//! never comes back from it — not through a late reseed, a failed write, or a fail-back.

pub mod outcome;
pub mod rules;

use std::sync::Arc;

pub use outcome::{KvDelete, KvPut, KvRead};

use crate::config::KvSettings;
use crate::key::Key;
use crate::metrics_names as m;
use crate::runtime::correlation;
use crate::runtime::group_commit::GroupCommit;
use crate::store::copy;
use crate::store::copy::Seeder;
pub use crate::store::kv::KvExpect;
use crate::store::kv::{KvJob, KvRecords, KvWritten};
use crate::store::kv::{KvRecord, COPY_FIELDS};
use crate::store::StoreError;
use crate::tier::{Blocked, Looked, Mode, Primary, Tier};

/// Largest value, as JSON text.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Longest TTL, ms (one year).
pub const MAX_TTL_MS: i64 = 366 * 24 * 3_600_000;

/// The Redis key of `key`'s hot copy.
fn copy_key(key: &Key) -> String {
    copy::copy_key(key.as_str(), "kv")
}

/// The KV service.
pub struct Kv {
    tier: Arc<Tier>,
    cfg: KvSettings,
    /// Writes and deletes, made durable many to a transaction.
    writer: GroupCommit<KvJob, KvWritten, StoreError>,
}

impl Kv {
    /// The service over `tier`, with its group-commit writer.
    pub fn new(tier: Arc<Tier>, cfg: &KvSettings) -> Arc<Self> {
        let sql = tier.durable().clone();
        let writer = GroupCommit::start("kv", cfg.writer.into(), move |jobs| {
            let sql = sql.clone();
            async move { sql.kv_apply(jobs, rules::on_write).await }
        });
        Arc::new(Self {
            tier,
            cfg: cfg.clone(),
            writer,
        })
    }

    /// How long the copy of `r` may stay in Redis from `now`.
    fn copy_ttl(&self, r: &KvRecord, now: i64) -> i64 {
        let ttl = self.cfg.copy_ttl_ms as i64;
        if r.expires_at > 0 {
            ttl.min(r.expires_at - now).max(1)
        } else {
            ttl
        }
    }

    /// Reads `key`: from the hot copy when it is current, else from SQL (reseeding the copy).
    pub async fn get(&self, key: &Key) -> Result<(KvRead, Mode), Blocked> {
        let active = self.tier.active_durable()?;
        let (mut mode, epoch) = (active.mode(), active.epoch);
        let now = self.tier.now();
        let primary = active.primary();
        let mut reseed = false;
        if let Some(p) = primary {
            let k = copy_key(key);
            match p
                .look_copy(m::KV_COPY, &k, &COPY_FIELDS, epoch, KvRecord::from_copy)
                .await
            {
                Looked::Hit(r) => {
                    let read = if r.live(now) {
                        KvRead::Found(r)
                    } else {
                        KvRead::NotFound
                    };
                    return Ok((read, mode));
                }
                looked => {
                    reseed = matches!(looked, Looked::Miss);
                    mode = looked.sql_mode();
                }
            }
        }
        let sql = self.tier.durable();
        let row = self.tier.on_durable(sql.kv_get(key.as_str())).await?;
        if let (Some(p), Some(r), true) = (primary, &row, reseed) {
            self.seed(p, key, r, epoch, Seeder::Reader, now).await;
        }
        let read = match row {
            Some(r) if r.live(now) => KvRead::Found(r),
            _ => KvRead::NotFound,
        };
        Ok((read, mode))
    }

    /// Writes `value` (JSON text, at most [`MAX_VALUE_BYTES`]) to `key` if `expect` holds.
    pub async fn put(
        &self,
        key: &Key,
        value: &str,
        ttl_ms: Option<i64>,
        expect: KvExpect,
    ) -> Result<(KvPut, Mode), Blocked> {
        let (primary, mode, epoch) = self.hold(key).await?;
        let now = self.tier.now();
        let job = KvJob::Put {
            key: key.as_str().to_owned(),
            value: value.to_owned(),
            expires_at: ttl_ms.map_or(0, |t| now + t),
            expect,
            now,
            correlation_id: correlation::current(),
        };
        let written = self.tier.on_durable(self.writer.submit(job)).await?;
        let answer = match &written {
            KvWritten::Done(r) => KvPut::Stored(r.clone()),
            KvWritten::Conflict(v) => KvPut::Conflict(*v),
            KvWritten::Nothing => KvPut::Conflict(None),
        };
        self.finish(primary, key, epoch, now, written).await;
        Ok((answer, mode))
    }

    /// Deletes the live record of `key` (a tombstone keeps its version) if `expected` holds.
    pub async fn delete(
        &self,
        key: &Key,
        expected: Option<i64>,
    ) -> Result<(KvDelete, Mode), Blocked> {
        let (primary, mode, epoch) = self.hold(key).await?;
        let now = self.tier.now();
        let job = KvJob::Delete {
            key: key.as_str().to_owned(),
            expected,
            now,
            correlation_id: correlation::current(),
        };
        let written = self.tier.on_durable(self.writer.submit(job)).await?;
        let answer = match &written {
            KvWritten::Done(r) => KvDelete::Deleted(Some(r.version)),
            KvWritten::Nothing => KvDelete::Deleted(None),
            KvWritten::Conflict(v) => KvDelete::Conflict(*v),
        };
        self.finish(primary, key, epoch, now, written).await;
        Ok((answer, mode))
    }

    /// Before a write on the primary tier: hold the copy, so nothing stale can be served
    /// whatever happens next. A write that cannot hold it is refused (Redis is failing; the
    /// breaker will move the tier).
    async fn hold(&self, key: &Key) -> Result<(Option<Primary<'_>>, Mode, i64), Blocked> {
        let active = self.tier.active_durable()?;
        let primary = active.primary();
        if let Some(p) = primary {
            p.hold_copy(&copy_key(key), self.cfg.hold_ms as i64).await?;
        }
        Ok((primary, active.mode(), active.epoch))
    }

    /// After a write SQL answered: seed the copy with what SQL now holds, ending the hold. (A
    /// write SQL did not answer leaves the hold until it expires: the copy is bypassed, never
    /// stale.)
    async fn finish(
        &self,
        primary: Option<Primary<'_>>,
        key: &Key,
        epoch: i64,
        now: i64,
        written: KvWritten,
    ) {
        if let KvWritten::Conflict(_) = written {
            metrics::counter!(m::KV_CONFLICTS).increment(1);
        }
        if let Some(p) = primary {
            let sql = self.tier.durable();
            // What SQL holds now: this write's record, or (refused, or nothing to delete) the
            // current row, which the hold kept out of the copy meanwhile.
            let record = match written {
                KvWritten::Done(r) => Some(r),
                _ => self
                    .tier
                    .on_durable(sql.kv_get(key.as_str()))
                    .await
                    .ok()
                    .flatten(),
            };
            match record {
                Some(r) => self.seed(p, key, &r, epoch, Seeder::Writer, now).await,
                None => p.release_copy(&copy_key(key)).await,
            }
        }
    }

    async fn seed(
        &self,
        p: Primary<'_>,
        key: &Key,
        r: &KvRecord,
        epoch: i64,
        by: Seeder,
        now: i64,
    ) {
        let ttl = self.copy_ttl(r, now);
        let fields = r.copy_fields();
        let k = copy_key(key);
        let _ = p.seed_copy(&k, epoch, r.version, &fields, by, ttl).await;
    }

    /// Deletes tombstones and expired records older than `kv.tombstone_ms`.
    pub async fn reap(&self) -> Result<u64, Blocked> {
        let before = self.tier.now() - self.cfg.tombstone_ms as i64;
        let sql = self.tier.durable();
        let n = self
            .tier
            .on_durable(sql.kv_reap(before, self.cfg.reap_batch as i64))
            .await?;
        if n > 0 {
            metrics::counter!(m::KV_REAPED).increment(n);
        }
        Ok(n)
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Kv> {
    /// `kv_reaper`: old tombstones and expired records, every `kv.reap_every_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let kv = self.clone();
        s.every(
            "kv_reaper",
            crate::config::ms(self.cfg.reap_every_ms),
            move || {
                let kv = kv.clone();
                async move {
                    match kv.reap().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            deleted = n,
                            "old kv tombstones and expired records reaped"
                        ),
                        Err(b) => tracing::warn!(reason = b.reason(), "kv reaper failed"),
                    }
                }
            },
        );
    }
}
