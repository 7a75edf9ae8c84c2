//! Tier router: exactly one tier grants at a time (G2), chosen by a row in SQL that every
//! instance shares, cached under a short lease; every switch bumps the durable epoch (G1), and
//! a new epoch grants nothing while leases it cannot see may be live (see `switch`).

mod backend;
mod blocked;
mod breaker;
mod copy;
mod grant;
mod identity;
mod lease;
mod primary;
mod supervisor;
mod switch;

pub use backend::{Backend, Mode};
pub use blocked::Blocked;
pub use breaker::{Breaker, BreakerState};
pub use copy::Looked;
pub use grant::{GrantReply, GrantStep, Verdict, EPOCH_RETRIES};
pub use primary::Primary;

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics_names as m;
use crate::store::redis::RedisStore;
use crate::store::sql::{SqlStore, TierRow};
pub use crate::store::TierName;
use crate::store::{bounded, GuardState, StoreError};

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
    /// An end committed in SQL could not be written over Redis's hot copies, so no copy of
    /// the epoch may be trusted again.
    pub const COPY_UNSETTLED: &str = "copy_unsettled";
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
    /// How often a waiting instance rechecks an arming in progress.
    pub arming_poll: Duration,
    /// SQL leases copied into Redis at once while arming.
    pub seed_concurrency: usize,
    /// How often ended SQL lease rows are deleted.
    pub lease_reap_every: Duration,
    /// How often PostgreSQL's planner statistics are checked against table growth.
    pub planner_stats_every: Duration,
}

impl TierConfig {
    /// The tier settings of `c`.
    pub fn from_config(c: &crate::config::Config) -> Self {
        use crate::config::ms;
        Self {
            breaker_failures: c.breaker.failures,
            breaker_open: ms(c.breaker.open_ms),
            failover_grace: c.tier.failover_grace_ms.map(ms),
            tier_lease: ms(c.tier.lease_ms),
            arming_poll: ms(c.tier.arming_poll_ms),
            seed_concurrency: c.tier.seed_concurrency,
            lease_reap_every: ms(c.tier.lease_reap_every_ms),
            planner_stats_every: ms(c.database.planner_stats_every_ms),
        }
    }
}

impl TierConfig {
    /// How long after an arming began, unfinished, a missing gate is taken for one not
    /// written yet (and a release racing the arming is remembered in Redis).
    pub fn arming_window(&self) -> Duration {
        (self.tier_lease * 4).max(Duration::from_secs(10))
    }
}

/// The tier an operation runs on, at a known epoch.
pub struct Active<'a> {
    /// The backend.
    pub backend: Backend<'a>,
    /// The epoch grants are made in.
    pub epoch: i64,
    tier: &'a Tier,
}

impl<'a> Active<'a> {
    /// The primary tier, when it is the one to act on (every call through it feeds the
    /// breaker).
    pub fn primary(&self) -> Option<Primary<'a>> {
        match self.backend {
            Backend::Redis(store) => Some(Primary::new(store, self.tier)),
            Backend::Sql(_) => None,
        }
    }

    /// The mode this operation answers in.
    pub fn mode(&self) -> Mode {
        self.backend.mode()
    }

    /// Runs one lock-store call on the active backend (bounded by its timeout), feeds the
    /// result to the breaker, and turns a failure into the stable reason of the tier that
    /// failed.
    pub async fn settle<'s, T, Fut>(
        &'s self,
        f: impl FnOnce(&'s Backend<'a>) -> Fut,
    ) -> Result<T, Blocked>
    where
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let result = f(&self.backend).await;
        self.tier.settle(self.mode(), result)
    }
}

/// A snapshot for `/v1/status` and `/readyz`.
#[derive(Debug, Clone)]
pub struct Status {
    /// The active tier, if known.
    pub tier: Option<TierName>,
    /// Current epoch, if known.
    pub epoch: Option<i64>,
    /// Breaker state.
    pub breaker: BreakerState,
    /// The guard's state as this instance acts on it.
    pub guard: GuardState,
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
    /// The guard state of the cached row (a [`GuardState`] as `u8`), read by every side
    /// effect: one atomic load.
    guard: AtomicU8,
    wake: Notify,
    /// Whether the Redis behind the connection is known to be the process the epoch was
    /// armed on; cleared by every Redis error (see [`identity`]).
    redis_verified: std::sync::atomic::AtomicBool,
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
            guard: AtomicU8::new(GuardState::Normal as u8),
            cfg,
            cached: RwLock::new(None),
            clock_offset: AtomicI64::new(0),
            wake: Notify::new(),
            // Start-up's first supervision step checks the run id before anything is served.
            redis_verified: std::sync::atomic::AtomicBool::new(true),
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

    /// Runs `call` on the durable tier, bounded by its per-call timeout, for a caller that
    /// handles the failure itself (a background task, a write it retries or undoes). Domain
    /// modules reach SQL only through this and [`Tier::on_durable`]: no timeout is applied by
    /// hand anywhere else.
    pub async fn durably<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        bounded(self.sql.timeout(), call).await
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

    /// Refuses a side effect while the guard holds safe mode (G10): one atomic load, so
    /// operations outside safe mode pay nothing more. Ingestion, releases and reads do not
    /// ask.
    pub fn effects_allowed(&self) -> Result<(), Blocked> {
        if self.guard().blocks_effects() {
            return Err(Blocked::SafeMode);
        }
        Ok(())
    }

    /// The guard state of the tier row this instance last read.
    pub fn guard(&self) -> GuardState {
        match self.guard.load(Ordering::Relaxed) {
            x if x == GuardState::Normal as u8 => GuardState::Normal,
            x if x == GuardState::Degraded as u8 => GuardState::Degraded,
            x if x == GuardState::Recovering as u8 => GuardState::Recovering,
            _ => GuardState::SafeMode,
        }
    }

    fn pick(&self, granting: bool, sql_fallback: bool) -> Result<Active<'_>, Blocked> {
        let redis_usable = self.redis.is_some() && self.breaker.state() == BreakerState::Closed;
        let slot = self.cached.read().unwrap_or_else(|p| p.into_inner());
        let lease_valid = slot
            .as_ref()
            .is_some_and(|c| Instant::now() <= c.lease_until);
        let Some(c) = slot.as_ref().filter(|_| lease_valid) else {
            return Err(if self.redis.is_some() && !redis_usable {
                Blocked::BothTiersDown
            } else {
                Blocked::TierLeaseExpired
            });
        };
        let now = self.now();
        let grace = (granting && now < c.row.grants_from).then(|| Blocked::Grace {
            retry_after_ms: c.row.grants_from - now,
        });
        // After a broken connection, until the supervisor (woken at once) has checked that
        // Redis did not restart with older data: no grant (its counters may be behind) and no
        // hot copy (it may predate a revocation). Releases, extends and reads of leases go
        // on; an epoch not armed yet is refused by the gate itself.
        let armed = c.row.redis_armed_epoch >= c.row.epoch && c.row.redis_arming_since == 0;
        let unchecked = !self.redis_verified() && armed;
        let backend = match (c.row.tier == TierName::Redis, &self.redis) {
            (false, _) => Backend::Sql(&self.sql),
            (true, Some(_)) if redis_usable && unchecked && sql_fallback => Backend::Sql(&self.sql),
            // Redis cannot be trusted yet: unreachable, or not yet shown to be the same process.
            (true, Some(_)) if redis_usable && unchecked && granting => {
                return Err(grace.unwrap_or(Blocked::RedisUnavailable))
            }
            (true, Some(redis)) if redis_usable => Backend::Redis(redis),
            (true, _) if sql_fallback => Backend::Sql(&self.sql),
            (true, _) => return Err(Blocked::RedisUnavailable),
        };
        if let Some(grace) = grace {
            return Err(grace);
        }
        let epoch = c.row.epoch;
        Ok(Active {
            backend,
            epoch,
            tier: self,
        })
    }

    /// When Redis became the active tier again after a spell on SQL (database clock, ms), if
    /// it did: rate limits ramp back up from then on. The first switch to Redis at a fresh
    /// start (epoch 2) had no spell on SQL before it.
    pub fn fail_back_at(&self) -> Option<i64> {
        let slot = self.cached.read().unwrap_or_else(|p| p.into_inner());
        let row = &slot.as_ref()?.row;
        let failed_back =
            row.tier == TierName::Redis && row.reason == reason::REDIS_RECOVERED && row.epoch > 2;
        failed_back.then_some(row.changed_at.max(row.grants_from))
    }

    /// Whether this instance can grant now: a tier it can act on, past any grace, and — on
    /// Redis — with every gate of the epoch armed (before that Redis grants nothing).
    fn ready(&self) -> Result<(), Blocked> {
        let active = self.active(true)?;
        if let Backend::Redis(_) = active.backend {
            let armed = self.cached().is_some_and(|c| {
                c.row.redis_armed_epoch >= c.row.epoch && c.row.redis_arming_since == 0
            });
            if !armed {
                return Err(Blocked::EpochChanging);
            }
        }
        Ok(())
    }

    /// Feeds a store result to the breaker and turns a failure into the stable reason of the
    /// tier that failed (its text goes to the log).
    fn settle<T>(&self, mode: Mode, result: Result<T, StoreError>) -> Result<T, Blocked> {
        self.record(mode, &result);
        result.map_err(|e| Blocked::store(mode, &e))
    }

    /// Feeds a store result to the breaker. Only Redis infrastructure errors count.
    fn record<T>(&self, mode: Mode, result: &Result<T, StoreError>) {
        if mode != Mode::Primary {
            return;
        }
        match result {
            Ok(_) => self.breaker.success(),
            Err(e) => {
                // A broken connection may have been a restart: Redis is checked before it is
                // used again.
                if e.lost_redis_connection() {
                    self.set_redis_verified(false);
                    self.wake.notify_one();
                }
                let kind = match e {
                    StoreError::Timeout => "timeout",
                    _ => "unavailable",
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

    /// A snapshot of the tier state.
    pub fn status(&self) -> Status {
        let c = self.cached();
        Status {
            tier: c.as_ref().map(|c| c.row.tier),
            epoch: c.as_ref().map(|c| c.row.epoch),
            breaker: self.breaker.state(),
            guard: self.guard(),
            ready: self.ready(),
            reason: c.as_ref().map(|c| c.row.reason.clone()),
            grants_from: c.as_ref().map(|c| c.row.grants_from),
            redis_configured: self.redis.is_some(),
        }
    }
}
