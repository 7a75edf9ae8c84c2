//! Tier router: exactly one tier grants at a time (G2), chosen by a row in SQL that every
//! instance shares, cached under a short lease; every switch bumps the durable epoch (G1) and
//! opens a grace during which the new epoch grants nothing.

mod backend;
mod breaker;
mod supervisor;

pub use backend::{Backend, Mode};
pub use breaker::{Breaker, BreakerState};

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::key::Key;
use crate::metrics_names as m;
use crate::store::redis::RedisStore;
use crate::store::sql::{SqlStore, TierRow};
use crate::store::{bounded, StoreError};

/// Tier name of Redis in the shared row.
pub const REDIS: &str = "redis";
/// Tier name of SQL in the shared row.
pub const SQL: &str = "sql";

/// Switch reasons (metric label values; details go to the log line).
pub mod reason {
    /// The breaker opened on Redis failures.
    pub const REDIS_UNREACHABLE: &str = "redis_unreachable";
    /// A probe found Redis healthy again (or at first start).
    pub const REDIS_RECOVERED: &str = "redis_recovered";
    /// Redis lost the epoch gate it had been armed with: its counters may have reset.
    pub const REDIS_DATA_LOSS: &str = "redis_data_loss";
    /// An epoch used all 2^32 - 1 counter values of a slot (Redis) or key (SQL).
    pub const COUNTER_EXHAUSTED: &str = "counter_exhausted";
    /// The database epoch was found behind Redis's gate.
    pub const EPOCH_BEHIND: &str = "epoch_behind";
}

/// Tier settings.
#[derive(Debug, Clone)]
pub struct TierConfig {
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open.
    pub breaker_open: Duration,
    /// Fixed failover grace, or `None` for the longest lock TTL granted.
    pub failover_grace: Option<Duration>,
    /// Tier lease.
    pub tier_lease: Duration,
    /// Safe mode at start.
    pub safe_mode: bool,
}

/// Why no tier may act now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// An operator put Warden in safe mode.
    SafeMode,
    /// No tier can be used: the reason says why.
    Unavailable(String),
    /// The current epoch grants nothing yet: old-tier leases may be live.
    Grace {
        /// How long until grants are allowed, in milliseconds.
        retry_after_ms: i64,
    },
}

impl Blocked {
    /// A short reason for answers and logs.
    pub fn reason(&self) -> String {
        match self {
            Self::SafeMode => "safe_mode".into(),
            Self::Unavailable(r) => r.clone(),
            Self::Grace { .. } => "failover_grace".into(),
        }
    }
}

impl From<StoreError> for Blocked {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The tier an operation runs on, at a known epoch.
pub struct Active<'a> {
    /// The backend.
    pub backend: Backend<'a>,
    /// The epoch grants are made in.
    pub epoch: i64,
}

/// A snapshot for `/v1/status` and `/readyz`.
#[derive(Debug, Clone)]
pub struct Status {
    /// `redis` or `sql`, if known.
    pub tier: Option<String>,
    /// Current epoch, if known.
    pub epoch: Option<i64>,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Safe mode.
    pub safe_mode: bool,
    /// Whether this instance may act (lease valid, tier usable, not in grace).
    pub ready: Result<(), Blocked>,
    /// Reason of the last switch.
    pub reason: Option<String>,
    /// Start of grants in this epoch (epoch ms).
    pub grants_from: Option<i64>,
    /// Whether Redis is configured here.
    pub redis_configured: bool,
}

#[derive(Debug, Clone)]
struct Cached {
    row: TierRow,
    lease_until: Instant,
}

/// The tier router shared by every request.
pub struct Tier {
    sql: SqlStore,
    redis: Option<RedisStore>,
    breaker: Breaker,
    cfg: TierConfig,
    cached: RwLock<Option<Cached>>,
    /// Database clock minus local clock, in ms, measured at each refresh.
    clock_offset: AtomicI64,
    safe_mode: AtomicBool,
    wake: Notify,
    /// Serializes this instance's switches and armings.
    switching: tokio::sync::Mutex<()>,
}

impl Tier {
    /// A router over `sql` and an optional Redis tier. Call [`Tier::refresh`] (or run the
    /// supervisor) before serving.
    pub fn new(cfg: TierConfig, sql: SqlStore, redis: Option<RedisStore>) -> Self {
        Self {
            sql,
            redis,
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_open),
            safe_mode: AtomicBool::new(cfg.safe_mode),
            cfg,
            cached: RwLock::new(None),
            clock_offset: AtomicI64::new(0),
            wake: Notify::new(),
            switching: tokio::sync::Mutex::new(()),
        }
    }

    /// The durable tier (fences and other business facts always live there). Callers bound
    /// their calls with [`SqlStore::timeout`].
    pub fn durable(&self) -> &SqlStore {
        &self.sql
    }

    fn cached(&self) -> Option<Cached> {
        self.cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `call` on the durable tier, bounded by its per-call timeout; a failure blocks the
    /// request that needed it.
    pub async fn on_durable<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Blocked> {
        Ok(bounded(self.sql.timeout(), call).await?)
    }

    /// The tier to act on now. `granting` operations also respect the failover grace.
    pub fn active(&self, granting: bool) -> Result<Active<'_>, Blocked> {
        self.pick(granting, false)
    }

    /// The tier for operations whose every decision is a conditional SQL write (idempotency
    /// and other business facts): Redis serves as the hot copy when it is the active tier and
    /// its breaker is closed; otherwise SQL answers alone — without waiting for a switch or a
    /// failover grace, since SQL arbitrates either way. Still refused in safe mode and without
    /// a valid tier lease (G2, G7).
    pub fn active_durable(&self) -> Result<Active<'_>, Blocked> {
        self.pick(false, true)
    }

    fn pick(&self, granting: bool, sql_fallback: bool) -> Result<Active<'_>, Blocked> {
        if self.safe_mode.load(Ordering::Relaxed) {
            return Err(Blocked::SafeMode);
        }
        let slot = self.cached.read().unwrap_or_else(|p| p.into_inner());
        let Some(c) = slot.as_ref() else {
            return Err(Blocked::Unavailable("tier state not loaded yet".into()));
        };
        if Instant::now() > c.lease_until {
            return Err(Blocked::Unavailable(
                "tier lease expired: database unreachable".into(),
            ));
        }
        let redis_usable = self.redis.is_some() && self.breaker.state() == BreakerState::Closed;
        let backend = if c.row.tier == REDIS && sql_fallback && !redis_usable {
            Backend::Sql(&self.sql)
        } else if c.row.tier == REDIS {
            let Some(redis) = &self.redis else {
                return Err(Blocked::Unavailable(
                    "active tier is redis but this instance has no redis_url".into(),
                ));
            };
            if self.breaker.state() != BreakerState::Closed {
                return Err(Blocked::Unavailable("redis breaker open".into()));
            }
            Backend::Redis(redis)
        } else {
            Backend::Sql(&self.sql)
        };
        let now = self.now();
        if granting && now < c.row.grants_from {
            return Err(Blocked::Grace {
                retry_after_ms: c.row.grants_from - now,
            });
        }
        let epoch = c.row.epoch;
        Ok(Active { backend, epoch })
    }

    /// Feeds a store result to the breaker. Only Redis infrastructure errors count.
    pub fn record<T>(&self, mode: Mode, result: &Result<T, StoreError>) {
        if mode != Mode::Primary {
            return;
        }
        match result {
            Ok(_) => self.breaker.success(),
            Err(e) => {
                let kind = match e {
                    StoreError::Timeout => "timeout",
                    StoreError::Unavailable(_) => "unavailable",
                };
                metrics::counter!(m::REDIS_FAILURES, "kind" => kind).increment(1);
                if self.breaker.failure(&e.to_string()) {
                    tracing::warn!(error = %e, "redis breaker opened");
                    self.publish_gauges();
                    self.wake.notify_one();
                }
            }
        }
    }

    /// The database's clock, as estimated here: every instant shared between instances
    /// (lease expiries, `grants_from`) is measured on it, so skewed host clocks cannot shorten
    /// a grace.
    pub fn now(&self) -> i64 {
        now_ms() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// Database clock minus local clock, in ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset.load(Ordering::Relaxed)
    }

    /// Rereads the shared tier row and renews this instance's lease on it.
    pub async fn refresh(&self) -> Result<TierRow, StoreError> {
        let started = Instant::now();
        let limit = self.cfg.tier_lease / 2;
        let before = now_ms();
        let db_now = bounded(limit, self.sql.db_now()).await?;
        let after = now_ms();
        self.clock_offset
            .store(db_now - (before + after) / 2, Ordering::Relaxed);
        let row = bounded(limit, self.sql.tier_row()).await?;
        self.install(row.clone(), started);
        Ok(row)
    }

    fn install(&self, row: TierRow, read_at: Instant) {
        let mut slot = self.cached.write().unwrap_or_else(|p| p.into_inner());
        // Never step back to an older epoch (a slow read can finish after a switch).
        if slot.as_ref().is_some_and(|c| c.row.epoch > row.epoch) {
            return;
        }
        *slot = Some(Cached {
            row,
            lease_until: read_at + self.cfg.tier_lease,
        });
        drop(slot);
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        let c = self.cached();
        metrics::gauge!(m::BREAKER_STATE).set(self.breaker.state().gauge());
        if let Some(c) = c {
            metrics::gauge!(m::TIER_EPOCH).set(c.row.epoch as f64);
            for t in [REDIS, SQL] {
                let on = if c.row.tier == t { 1.0 } else { 0.0 };
                metrics::gauge!(m::TIER_ACTIVE, "tier" => t).set(on);
            }
        }
    }

    /// Records that a lock with `ttl_ms` is about to be granted, so a later failover waits
    /// long enough (only when the grace is not fixed by configuration).
    pub async fn note_ttl(&self, ttl_ms: i64) -> Result<(), StoreError> {
        if self.cfg.failover_grace.is_some() {
            return Ok(());
        }
        let known = self
            .cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |c| c.row.max_ttl_ms);
        if ttl_ms <= known {
            return Ok(());
        }
        bounded(self.sql.timeout(), self.sql.raise_max_ttl(ttl_ms)).await?;
        if let Some(c) = self
            .cached
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            c.row.max_ttl_ms = c.row.max_ttl_ms.max(ttl_ms);
        }
        Ok(())
    }

    /// Handles a Redis gate that is not at `epoch` for `key`'s slot (or a fixed slot): refreshes
    /// a stale cache, arms Redis for the current epoch, or — when Redis lost a gate it had been
    /// armed with — switches to a new epoch so no token can repeat (G1).
    ///
    /// Concurrent callers are coalesced: while one handles a mismatch (or a switch is under
    /// way), the others wait for it and return, to retry against what it found. A burst of
    /// requests meeting an unarmed gate then costs one check, not one check each in turn
    /// (measured: begin p95 about 40 ms for the seconds after Redis came back empty).
    pub async fn on_epoch_mismatch(&self, epoch: i64, key: Option<&Key>) {
        let Some(redis) = &self.redis else { return };
        let Ok(_guard) = self.switching.try_lock() else {
            drop(self.switching.lock().await);
            return;
        };
        let row = match self.refresh().await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reread tier state");
                return;
            }
        };
        if row.epoch != epoch || row.tier != REDIS {
            return;
        }
        // Reread under the lock: another request may have armed the gate meanwhile.
        let found = match redis.gate_epoch(key.map(Key::as_str)).await {
            Ok(found) => found,
            Err(e) => {
                self.record(Mode::Primary, &Err::<(), _>(e));
                return;
            }
        };
        match found {
            Some(f) if f == row.epoch => {}
            Some(f) if f > row.epoch => {
                // The database is behind Redis (restored from a backup?): move the epoch past
                // the gate one switch at a time; Redis grants nothing until it catches up.
                tracing::error!(
                    redis_epoch = f,
                    sql_epoch = row.epoch,
                    "database epoch behind redis"
                );
                let detail = format!("redis gate {f} ahead of database epoch {}", row.epoch);
                self.switch(&row, REDIS, reason::EPOCH_BEHIND, &detail)
                    .await;
            }
            // Another instance is still writing this epoch's gates: a missing one is not
            // evidence of data loss. Slots without a gate grant nothing meanwhile; an arming
            // that never finishes (its instance died) counts as lost after the window.
            _ if row.redis_armed_epoch >= row.epoch
                && row.redis_arming_since > 0
                && self.now() - row.redis_arming_since < self.arming_window() => {}
            _ if row.redis_armed_epoch >= row.epoch => {
                let detail = format!("epoch gate {found:?}, armed for {}", row.epoch);
                self.switch(&row, REDIS, reason::REDIS_DATA_LOSS, &detail)
                    .await;
            }
            _ if self.now() >= row.grants_from => self.arm(row.epoch).await,
            _ => {}
        }
    }

    /// Moves the active tier to a new epoch because `epoch` ran out of counter values, so no
    /// token ever spills into the next epoch's range (G1).
    pub async fn on_counter_exhausted(&self, epoch: i64) {
        let _guard = self.switching.lock().await;
        match self.refresh().await {
            Ok(row) if row.epoch == epoch => {
                let tier = if row.tier == REDIS { REDIS } else { SQL };
                let detail = "2^32 - 1 grants in one epoch";
                self.switch(&row, tier, reason::COUNTER_EXHAUSTED, detail)
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reread tier state"),
        }
    }

    /// Arms Redis for `epoch`: records it in SQL, copies every live SQL lease into Redis so
    /// no SQL-granted lease is ignored, then raises the gate that lets Redis grant.
    async fn arm(&self, epoch: i64) {
        let Some(redis) = &self.redis else { return };
        let result: Result<usize, StoreError> = async {
            let limit = self.sql.timeout();
            if !bounded(limit, self.sql.mark_redis_armed(epoch, self.now())).await? {
                return Ok(0);
            }
            let now = self.now();
            let mut copied = 0;
            for (key, lease) in bounded(limit, self.sql.live_leases(now)).await? {
                copied += usize::from(redis.seed_lease(&key, &lease, now).await?);
            }
            redis.arm_epoch(epoch).await?;
            bounded(limit, self.sql.finish_arming(epoch)).await?;
            Ok(copied)
        }
        .await;
        match result {
            Ok(copied) => {
                tracing::info!(epoch, copied_sql_leases = copied, "redis armed for epoch");
                // Arming all slots can outlast the tier lease while the supervisor waits on
                // the switch lock: renew it now rather than at the next tick.
                let _ = self.refresh().await;
            }
            Err(e) => {
                tracing::warn!(epoch, error = %e, "arming redis failed");
                self.record(Mode::Primary, &Err::<(), _>(e));
            }
        }
    }

    /// How long after an arming began, unfinished, a missing gate is taken for one not
    /// written yet.
    fn arming_window(&self) -> i64 {
        (self.cfg.tier_lease * 4)
            .max(Duration::from_secs(10))
            .as_millis() as i64
    }

    fn grace_for(&self, to: &str, why: &str, row: &TierRow) -> Duration {
        let lease = self.cfg.tier_lease;
        // Leases of the old epoch stay visible to the new one when the tier keeps its data
        // (same tier) or copies it (SQL leases into Redis at fail-back): only other instances'
        // tier leases must run out. Otherwise old leases may be live where nobody can see them.
        let visible = (to == REDIS && why == reason::REDIS_RECOVERED)
            || why == reason::COUNTER_EXHAUSTED
            || why == reason::EPOCH_BEHIND;
        if visible {
            return lease;
        }
        let grace = self
            .cfg
            .failover_grace
            .unwrap_or(Duration::from_millis(row.max_ttl_ms.max(0) as u64));
        lease.max(grace)
    }

    /// Switches the shared tier to `to` with a new epoch, unless another instance already
    /// moved past `row.epoch`.
    async fn switch(&self, row: &TierRow, to: &str, why: &'static str, detail: &str) {
        let now = self.now();
        let grace = self.grace_for(to, why, row);
        let grants_from = now + grace.as_millis() as i64;
        let started = Instant::now();
        match self
            .sql
            .switch_tier(row.epoch, to, why, now, grants_from)
            .await
        {
            Ok(Some(new)) => {
                tracing::warn!(
                    from = %row.tier, to, reason = why, detail, old_epoch = row.epoch,
                    epoch = new.epoch, grace_ms = grace.as_millis() as u64, "tier switch"
                );
                metrics::counter!(m::TIER_SWITCHES, "reason" => why).increment(1);
                self.install(new, started);
            }
            Ok(None) => {
                let _ = self.refresh().await;
            }
            Err(e) => tracing::warn!(error = %e, to, reason = why, "tier switch failed"),
        }
    }

    /// Puts the instance in or out of safe mode.
    pub fn set_safe_mode(&self, on: bool) {
        self.safe_mode.store(on, Ordering::Relaxed);
    }

    /// A snapshot of the tier state.
    pub fn status(&self) -> Status {
        let c = self.cached();
        Status {
            tier: c.as_ref().map(|c| c.row.tier.clone()),
            epoch: c.as_ref().map(|c| c.row.epoch),
            breaker: self.breaker.state(),
            safe_mode: self.safe_mode.load(Ordering::Relaxed),
            ready: self.active(true).map(drop),
            reason: c.as_ref().map(|c| c.row.reason.clone()),
            grants_from: c.as_ref().map(|c| c.row.grants_from),
            redis_configured: self.redis.is_some(),
        }
    }
}
