//! Configuration: one nested tree, merged once — the defaults here, then `warden.toml`, then
//! environment variables, then flags — and validated before anything starts. Every setting is
//! a field below with its default in its section's `Default`; its environment variable is
//! derived from its path (`redis.timeout_ms` is `WARDEN_REDIS_TIMEOUT_MS`), so adding a
//! setting is one field, one default and one line in `docs/configuration.md` (a test checks
//! the document lists every variable).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod cache;
mod capabilities;
mod coordination;
pub use cache::CacheSettings;
pub use capabilities::{KvSettings, RateLimitSettings, SessionSettings};
pub use coordination::{IdempotencySettings, LockSettings, ReservationSettings, StreamSettings};
mod guard;
mod layers;
#[cfg(test)]
mod tests;

pub use guard::{GuardSettings, NotifySettings};
pub use layers::{documented_variables, Flags};

use crate::runtime::group_commit::GroupCommitConfig;
/// Resolved configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address.
    pub listen: String,
    /// Largest request body, bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// Enter safe mode at start-up (an audited manual entry, as `POST /v1/guard/enter`).
    pub safe_mode: bool,
    /// `protected`: while no token was ever created, loopback requests are served as tenant
    /// `default` with every scope; `required`: every request needs a token.
    pub auth: String,
    /// HTTPS.
    pub tls: TlsSettings,
    /// The primary tier.
    pub redis: RedisSettings,
    /// The durable tier.
    pub database: DatabaseSettings,
    /// The Redis breaker.
    pub breaker: BreakerSettings,
    /// Tier leases, failover and arming.
    pub tier: TierSettings,
    /// Idempotency keys.
    pub idempotency: IdempotencySettings,
    /// Locks.
    pub locks: LockSettings,
    /// Reservations.
    pub reservations: ReservationSettings,
    /// Causal streams.
    pub streams: StreamSettings,
    /// Rate limits.
    pub ratelimit: RateLimitSettings,
    /// The key-value store.
    pub kv: KvSettings,
    /// Sessions.
    pub sessions: SessionSettings,
    /// The cache.
    pub cache: CacheSettings,
    /// Logging.
    pub log: LogSettings,
    /// Metrics.
    pub metrics: MetricsSettings,
    /// The operational guard.
    pub guard: GuardSettings,
    /// Incident notifications.
    pub notify: NotifySettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            safe_mode: false,
            auth: "protected".into(),
            tls: TlsSettings::default(),
            redis: RedisSettings::default(),
            database: DatabaseSettings::default(),
            breaker: BreakerSettings::default(),
            tier: TierSettings::default(),
            idempotency: IdempotencySettings::default(),
            locks: LockSettings::default(),
            reservations: ReservationSettings::default(),
            streams: StreamSettings::default(),
            ratelimit: RateLimitSettings::default(),
            kv: KvSettings::default(),
            sessions: SessionSettings::default(),
            cache: CacheSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            guard: GuardSettings::default(),
            notify: NotifySettings::default(),
        }
    }
}

/// `tls.*`: HTTPS on the main listener when both are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain; reread on SIGHUP.
    pub cert: String,
    /// PEM private key; reread on SIGHUP.
    pub key: String,
}

impl TlsSettings {
    /// The certificate and key paths, when HTTPS is configured.
    pub fn files(&self) -> Option<(&str, &str)> {
        (!self.cert.is_empty() && !self.key.is_empty()).then_some((&self.cert, &self.key))
    }
}

/// `redis.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://…` enables the primary tier (a comma-separated list selects Redis Cluster);
    /// empty runs on SQL alone.
    pub url: String,
    /// Per-call timeout, ms; a timeout counts as a failure.
    pub timeout_ms: u64,
    /// Slot gates armed at once when a new epoch is armed.
    pub arm_concurrency: usize,
    /// PEM file of the root a `rediss://` server's certificate must chain to; empty for the
    /// system's roots.
    pub tls_ca: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 50,
            arm_concurrency: 64,
            tls_ca: String::new(),
        }
    }
}

/// `database.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…` (created if missing).
    pub url: String,
    /// Connection pool size (SQLite uses at most 4).
    pub pool: u32,
    /// Per-call timeout on request paths, ms (also the pool's acquire timeout).
    pub timeout_ms: u64,
    /// A connection idle longer than this is pinged before use, ms.
    pub ping_if_idle_ms: u64,
    /// How often table sizes are compared with PostgreSQL's planner statistics, ms.
    pub planner_stats_every_ms: u64,
    /// How long a starting instance waits for its database while it is out of reach or too
    /// slow to answer (still starting, briefly overloaded), ms; other errors end the start.
    pub startup_wait_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://./warden.db".into(),
            pool: 16,
            timeout_ms: 2_000,
            ping_if_idle_ms: 250,
            planner_stats_every_ms: 1_000,
            startup_wait_ms: 60_000,
        }
    }
}

/// `breaker.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive Redis failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before probing, ms; also how long SQL serves (from the end of
    /// its grace) before fail-back.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 3,
            open_ms: 30_000,
        }
    }
}

/// `tier.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierSettings {
    /// How long an instance acts on its cached tier and epoch, ms.
    pub lease_ms: u64,
    /// How long an old tier's lease may outlive a failover, ms; unset: the longest lock TTL
    /// ever granted.
    pub failover_grace_ms: Option<u64>,
    /// How often a waiting instance rechecks an arming in progress, ms.
    pub arming_poll_ms: u64,
    /// SQL leases copied into Redis at once while arming.
    pub seed_concurrency: usize,
    /// How often ended SQL lease rows are deleted, ms.
    pub lease_reap_every_ms: u64,
}

impl Default for TierSettings {
    fn default() -> Self {
        Self {
            lease_ms: 2_000,
            failover_grace_ms: None,
            arming_poll_ms: 10,
            seed_concurrency: 64,
            lease_reap_every_ms: 30_000,
        }
    }
}

/// The batching of one group-commit writer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterSettings {
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once.
    pub concurrency: usize,
}

impl From<WriterSettings> for GroupCommitConfig {
    fn from(w: WriterSettings) -> Self {
        Self {
            max_batch: w.max_batch,
            concurrency: w.concurrency,
        }
    }
}

/// `log.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Log filter (JSON lines on stderr); `info,warden=debug` adds one line per answer.
    pub filter: String,
    /// Lines queued for the writer thread; lines beyond are dropped and counted.
    pub buffer_lines: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            buffer_lines: 65_536,
        }
    }
}

/// `metrics.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// How often derived gauges (queue depths, upkeep) are refreshed, ms.
    pub upkeep_ms: u64,
    /// An address serving `/metrics` alone, without a token (for a Prometheus on a private
    /// network); empty for none (then `/metrics` needs scope `metrics`).
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            upkeep_ms: 5_000,
            listen: String::new(),
        }
    }
}

/// Milliseconds as a duration.
pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file exists but cannot be read or parsed.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A value is out of range, of the wrong type, or names no setting.
    #[error("{0}")]
    Invalid(String),
}

/// How requests without a token are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// While no token was ever created, requests from loopback are served as tenant `default`
    /// with every scope (like Redis's protected mode); everything else needs a token.
    Protected,
    /// Every request needs a token.
    Required,
}

impl AuthMode {
    /// The mode named `name` (`protected` or `required`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "protected" => Some(Self::Protected),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// Replay TTLs per `intent_type`, with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlTable {
    /// TTL of types not listed, ms.
    pub default_ms: i64,
    /// TTL by type, ms.
    pub by_type: std::collections::HashMap<String, i64>,
}

impl TtlTable {
    /// The TTL of `intent_type`, ms.
    pub fn of(&self, intent_type: &str) -> i64 {
        self.by_type
            .get(intent_type)
            .copied()
            .unwrap_or(self.default_ms)
    }
}

/// Parses `type=ms,type=ms` into a TTL table over `default_ms`.
fn ttl_table(spec: &str, default_ms: u64) -> Result<TtlTable, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(m);
    let ms = |v: u64, what: &str| {
        i64::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid(format!("{what} must be a positive number of ms")))
    };
    let mut by_type = std::collections::HashMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (ty, v) = entry
            .split_once('=')
            .ok_or_else(|| invalid(format!("intent_ttls entry {entry:?} is not type=ms")))?;
        let v: u64 = v
            .trim()
            .parse()
            .map_err(|_| invalid(format!("intent_ttls entry {entry:?}: not a number of ms")))?;
        by_type.insert(ty.trim().to_owned(), ms(v, "an intent TTL")?);
    }
    Ok(TtlTable {
        default_ms: ms(default_ms, "intent_ttl_default_ms")?,
        by_type,
    })
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.breaker.failures == 0 {
            return invalid("breaker.failures must be at least 1");
        }
        let positive = [
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("database.timeout_ms", self.database.timeout_ms),
            ("tier.lease_ms", self.tier.lease_ms),
            (
                "streams.causal_wait_timeout_ms",
                self.streams.causal_wait_timeout_ms,
            ),
            ("idempotency.wait_poll_ms", self.idempotency.wait_poll_ms),
            ("locks.wait_poll_ms", self.locks.wait_poll_ms),
            ("locks.deadlock_check_ms", self.locks.deadlock_check_ms),
            ("tier.arming_poll_ms", self.tier.arming_poll_ms),
            ("streams.tick_ms", self.streams.tick_ms),
            ("streams.wait_poll_copy_ms", self.streams.wait_poll_copy_ms),
            ("streams.wait_poll_sql_ms", self.streams.wait_poll_sql_ms),
            ("metrics.upkeep_ms", self.metrics.upkeep_ms),
            (
                "reservations.reap_every_ms",
                self.reservations.reap_every_ms,
            ),
            (
                "reservations.reconcile_every_ms",
                self.reservations.reconcile_every_ms,
            ),
            ("tier.lease_reap_every_ms", self.tier.lease_reap_every_ms),
            (
                "database.planner_stats_every_ms",
                self.database.planner_stats_every_ms,
            ),
            ("guard.notify_interval_ms", self.guard.notify_interval_ms),
            ("guard.health_tick_ms", self.guard.health_tick_ms),
            ("guard.rate_window_ms", self.guard.rate_window_ms),
            ("notify.timeout_ms", self.notify.timeout_ms),
            ("notify.backoff_ms", self.notify.backoff_ms),
            ("notify.poll_ms", self.notify.poll_ms),
            ("ratelimit.policy_cache_ms", self.ratelimit.policy_cache_ms),
            ("ratelimit.flush_every_ms", self.ratelimit.flush_every_ms),
            ("kv.copy_ttl_ms", self.kv.copy_ttl_ms),
            ("kv.hold_ms", self.kv.hold_ms),
            ("kv.reap_every_ms", self.kv.reap_every_ms),
            ("sessions.copy_ttl_ms", self.sessions.copy_ttl_ms),
            ("cache.lease_ms", self.cache.lease_ms),
            ("cache.max_lease_ms", self.cache.max_lease_ms),
            ("cache.max_ttl_ms", self.cache.max_ttl_ms),
            ("cache.reclaim_every_ms", self.cache.reclaim_every_ms),
            ("cache.replay_every_ms", self.cache.replay_every_ms),
            (
                "cache.invalidations_kept_ms",
                self.cache.invalidations_kept_ms,
            ),
            ("sessions.hold_ms", self.sessions.hold_ms),
            ("sessions.sweep_every_ms", self.sessions.sweep_every_ms),
            ("sessions.gauge_every_ms", self.sessions.gauge_every_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be positive")));
        }
        let counts = [
            ("database.pool", self.database.pool as usize),
            ("redis.arm_concurrency", self.redis.arm_concurrency),
            ("tier.seed_concurrency", self.tier.seed_concurrency),
            ("log.buffer_lines", self.log.buffer_lines),
            (
                "idempotency.reap_batch",
                self.idempotency.reap_batch.max(0) as usize,
            ),
            (
                "reservations.reap_batch",
                self.reservations.reap_batch.max(0) as usize,
            ),
            (
                "streams.sweep_batch",
                self.streams.sweep_batch.max(0) as usize,
            ),
            (
                "ratelimit.local_max_buckets",
                self.ratelimit.local_max_buckets,
            ),
            ("ratelimit.max_overrides", self.ratelimit.max_overrides),
            ("kv.reap_batch", self.kv.reap_batch),
            ("sessions.sweep_batch", self.sessions.sweep_batch),
            ("cache.max_value_bytes", self.cache.max_value_bytes),
            ("cache.max_tags", self.cache.max_tags),
            ("cache.reclaim_batch", self.cache.reclaim_batch),
            ("sessions.max_data_bytes", self.sessions.max_data_bytes),
        ];
        let writers = [
            ("idempotency.writer", self.idempotency.writer),
            ("reservations.writer", self.reservations.writer),
            ("streams.writer", self.streams.writer),
            ("sessions.writer", self.sessions.writer),
            ("kv.writer", self.kv.writer),
        ];
        let writer_counts = writers
            .iter()
            .flat_map(|(name, w)| [(*name, w.max_batch), (*name, w.concurrency)]);
        if let Some((name, _)) = counts
            .into_iter()
            .chain(writer_counts)
            .find(|(_, v)| *v == 0)
        {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
        let url = &self.database.url;
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return invalid("database.url must start with postgres:// or sqlite:");
        }
        self.streams.ttl_table()?;
        self.auth_mode()?;
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return invalid("tls.cert and tls.key go together");
        }
        Ok(())
    }

    /// The authentication mode (`auth`).
    pub fn auth_mode(&self) -> Result<AuthMode, ConfigError> {
        AuthMode::parse(&self.auth)
            .ok_or_else(|| ConfigError::Invalid("auth must be protected or required".into()))
    }

    /// The root certificate `redis.tls_ca` names, read (`None` when unset).
    pub fn redis_ca(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if self.redis.tls_ca.is_empty() {
            return Ok(None);
        }
        std::fs::read(&self.redis.tls_ca)
            .map(Some)
            .map_err(|e| file_error(Path::new(&self.redis.tls_ca), e))
    }

    /// The Redis URL, if the primary tier is configured.
    pub fn redis_url(&self) -> Option<&str> {
        Some(self.redis.url.as_str()).filter(|u| !u.is_empty())
    }
}
