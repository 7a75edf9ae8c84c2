//! A running Warden inside this process: the stores, the tier router, the domain services and
//! their background tasks (tier supervisor, reapers). The HTTP server is one user of it; a Rust
//! program can embed it directly. Background tasks stop, and the pool closes, on `shutdown`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access::Access;
use crate::cache::Cache;
use crate::config::{ms, Config, ConfigError};
use crate::fence::Fences;
use crate::guard::Guard;
use crate::idem::Idempotency;
use crate::kv::Kv;
use crate::lock::Locks;
use crate::ratelimit::RateLimits;
use crate::reserve::Reservations;
use crate::runtime::tasks::{Scheduled, Scheduler};
use crate::semaphore::Semaphores;
use crate::session::Sessions;
use crate::store::redis::RedisStore;
use crate::store::sql::SqlStore;
use crate::store::StoreError;
use crate::stream::{StreamConfig, Streams};
use crate::tier::{Tier, TierConfig};

/// The services of one Warden instance.
pub struct Warden {
    /// Tokens, tenants and scopes.
    pub access: Arc<Access>,
    /// Tier router.
    pub tier: Arc<Tier>,
    /// Fenced locks.
    pub locks: Arc<Locks>,
    /// Semaphores.
    pub semaphores: Arc<Semaphores>,
    /// Fences.
    pub fences: Arc<Fences>,
    /// Idempotency keys (also the in-process [`Idempotency::run`] API).
    pub idempotency: Arc<Idempotency>,
    /// Flash-sale reservations.
    pub reservations: Arc<Reservations>,
    /// Causal streams, dispatch and the manual review queue.
    pub streams: Arc<Streams>,
    /// Rate limits (also the in-process [`RateLimits::check`] API).
    pub ratelimits: Arc<RateLimits>,
    /// The key-value store.
    pub kv: Arc<Kv>,
    /// The cache.
    pub cache: Arc<Cache>,
    /// Sessions.
    pub sessions: Arc<Sessions>,
    /// Incidents, notifications, safe mode and the audit chain.
    pub guard: Arc<Guard>,
    /// Every background task, on one scheduler.
    scheduler: tokio::sync::Mutex<Scheduler>,
}

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Warden {
    /// Connects the tiers (running SQL migrations), loads the tier state and starts the
    /// background tasks.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let wait = Instant::now() + ms(config.database.startup_wait_ms);
        let tier = open_tier(config, true, wait).await?;
        tier.start_up().await;
        let guard = Guard::new(tier.clone(), config)?;
        let sealed = waiting_for_database(wait, || tier.durable().seal_unchained_audit()).await?;
        if sealed > 0 {
            tracing::info!(
                entries = sealed,
                "audit entries from before the chain sealed into it"
            );
        }
        if config.safe_mode {
            // The start-up setting is a manual entry like any other: shared and audited.
            let reason = "safe_mode set in the configuration at start-up";
            if let Err(b) = guard.enter(reason, "warden:config").await {
                tracing::error!(
                    reason = b.reason(),
                    "safe mode requested at start-up not entered"
                );
            }
        }
        let access =
            Access::start(tier.clone(), config.auth_mode()?, ms(config.tier.lease_ms)).await;
        let idempotency = Idempotency::start(tier.clone(), &config.idempotency);
        let reservations = Reservations::start(tier.clone(), &config.reservations);
        let streams = Streams::start(tier.clone(), StreamConfig::new(&config.streams)?);
        let ratelimits = RateLimits::new(tier.clone(), &config.ratelimit);
        let kv = Kv::new(tier.clone(), &config.kv);
        let sessions = Sessions::new(tier.clone(), &config.sessions);
        let cache = Cache::new(tier.clone(), &config.cache);
        let locks = Arc::new(Locks::new(tier.clone(), &config.locks));
        let mut scheduler = Scheduler::new();
        // The registry of capabilities with background work: each schedules its own tasks,
        // at the intervals its settings give.
        let registry: [&dyn Scheduled; 10] = [
            &tier,
            &idempotency,
            &reservations,
            &streams,
            &guard,
            &ratelimits,
            &sessions,
            &kv,
            &cache,
            &locks,
        ];
        for capability in registry {
            capability.schedule(&mut scheduler);
        }
        Ok(Self {
            access,
            reservations,
            streams,
            ratelimits,
            kv,
            sessions,
            cache,
            locks,
            semaphores: Arc::new(Semaphores::new(tier.clone(), &config.locks)),
            fences: Arc::new(Fences::new(tier.clone())),
            idempotency,
            guard,
            tier,
            scheduler: tokio::sync::Mutex::new(scheduler),
        })
    }

    /// The background tasks running, by name.
    pub async fn tasks(&self) -> Vec<&'static str> {
        self.scheduler.lock().await.names()
    }

    /// Stops the background tasks and closes the database pool.
    pub async fn shutdown(&self) {
        self.scheduler.lock().await.stop().await;
        self.tier.durable().close().await;
    }
}

/// The stores of `config` and the tier row as it stands, for a one-shot command: no tier
/// supervision runs, so the command never switches or arms the tier that the serving
/// instances share, whatever Redis it is (or is not) configured with.
pub(crate) async fn open_unsupervised(
    config: &Config,
    with_redis: bool,
) -> Result<Arc<Tier>, String> {
    let wait = Instant::now() + ms(config.database.startup_wait_ms);
    open_tier(config, with_redis, wait)
        .await
        .map_err(|e| e.to_string())
}

/// Opens the stores of `config` (Redis too when `with_redis` and configured), and reads the
/// tier row once, waiting for the database until `wait`. Nothing supervises the tier yet.
async fn open_tier(
    config: &Config,
    with_redis: bool,
    wait: Instant,
) -> Result<Arc<Tier>, StartError> {
    crate::runtime::tls_provider();
    let db = &config.database;
    let sql = waiting_for_database(wait, || {
        SqlStore::connect_pinging(&db.url, db.pool, ms(db.timeout_ms), ms(db.ping_if_idle_ms))
    })
    .await?;
    let tier_cfg = TierConfig::from_config(config);
    let redis = match config.redis_url().filter(|_| with_redis) {
        Some(url) => {
            let ca = config.redis_ca()?;
            Some(
                RedisStore::connect_tls(url, ms(config.redis.timeout_ms), ca.as_deref())?
                    .marking_releases_for(tier_cfg.arming_window())
                    .arming_concurrently(config.redis.arm_concurrency),
            )
        }
        None => None,
    };
    if let Some(r) = &redis {
        if let Err(e) = r.warm_up().await {
            tracing::warn!(error = %e, "redis not reached at start-up; the supervisor keeps trying");
        }
    }
    let tier = Arc::new(Tier::new(tier_cfg, sql, redis));
    waiting_for_database(wait, || tier.refresh()).await?;
    Ok(tier)
}

/// Runs `step` again while the database is out of reach or too slow (a server still
/// starting, a machine briefly overloaded), until `until`: a starting instance waits for its
/// database, with a warning per try, instead of exiting. Any other error ends the start.
async fn waiting_for_database<T, F, Fut>(until: Instant, mut step: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match step().await {
            Err(e) if e.database_unreachable() && Instant::now() + pause < until => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64,
                    "database not reached at start-up; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}
