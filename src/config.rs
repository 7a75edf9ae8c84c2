//! Configuration: flags override environment variables, which override an optional
//! `warden.toml`, which overrides the built-in defaults. Every limit lives here, not in code paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::stream::rules::TtlTable;

/// Settings as given on the command line or in the environment; unset fields fall through to
/// `warden.toml`, then to the defaults.
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address.
    #[arg(long, env = "WARDEN_LISTEN")]
    pub listen: Option<String>,
    /// Redis URL of the primary tier (`redis://…`); unset runs on SQL alone.
    #[arg(long, env = "WARDEN_REDIS_URL")]
    pub redis_url: Option<String>,
    /// SQL URL of the durable tier: `postgres://…` or `sqlite://…`.
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Per-call Redis timeout in milliseconds; a timeout counts as a failure.
    #[arg(long, env = "WARDEN_REDIS_TIMEOUT_MS")]
    pub redis_timeout_ms: Option<u64>,
    /// Consecutive Redis failures that open the breaker.
    #[arg(long, env = "WARDEN_BREAKER_FAILURES")]
    pub breaker_failures: Option<u32>,
    /// How long the breaker stays open before probing, in milliseconds.
    #[arg(long, env = "WARDEN_BREAKER_OPEN_MS")]
    pub breaker_open_ms: Option<u64>,
    /// How long an old-tier lease may outlive a failover (default: the longest lock TTL ever
    /// granted); a failover grants nothing for one tier lease plus this.
    #[arg(long, env = "WARDEN_FAILOVER_GRACE_MS")]
    pub failover_grace_ms: Option<u64>,
    /// How long an instance may act on its cached tier and epoch, in milliseconds.
    #[arg(long, env = "WARDEN_TIER_LEASE_MS")]
    pub tier_lease_ms: Option<u64>,
    /// Largest request body, in bytes.
    #[arg(long, env = "WARDEN_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Start in safe mode: no grant is issued.
    #[arg(long, env = "WARDEN_SAFE_MODE")]
    pub safe_mode: Option<bool>,
    /// SQL connection pool size.
    #[arg(long, env = "WARDEN_SQL_POOL")]
    pub sql_pool: Option<u32>,
    /// Per-call SQL timeout in milliseconds on request paths (a stalled database answers 503).
    #[arg(long, env = "WARDEN_SQL_TIMEOUT_MS")]
    pub sql_timeout_ms: Option<u64>,
    /// How often expired business records (idempotency keys, …) are deleted, in milliseconds.
    #[arg(long, env = "WARDEN_REAP_INTERVAL_MS")]
    pub reap_interval_ms: Option<u64>,
    /// How long a parked causal commit waits for its predecessor before it goes to manual
    /// review, in milliseconds.
    #[arg(long, env = "WARDEN_CAUSAL_WAIT_TIMEOUT_MS")]
    pub causal_wait_timeout_ms: Option<u64>,
    /// Replay TTL per intent type: `type=ms,type=ms` (e.g. `cancel=3600000,book=86400000`).
    #[arg(long, env = "WARDEN_INTENT_TTLS")]
    pub intent_ttls: Option<String>,
    /// Replay TTL of intent types not in `intent_ttls`, in milliseconds.
    #[arg(long, env = "WARDEN_INTENT_TTL_DEFAULT_MS")]
    pub intent_ttl_default_ms: Option<u64>,
    /// Path of the optional TOML file.
    #[arg(long, env = "WARDEN_CONFIG", default_value = "warden.toml")]
    #[serde(skip)]
    pub config: PathBuf,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen: String,
    /// Primary tier, if any.
    pub redis_url: Option<String>,
    /// Durable tier.
    pub database_url: String,
    /// Per-call Redis timeout.
    pub redis_timeout: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// Breaker open period.
    pub breaker_open: Duration,
    /// Fixed failover grace, or `None` for "the longest lock TTL granted".
    pub failover_grace: Option<Duration>,
    /// Tier lease.
    pub tier_lease: Duration,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Safe mode at start.
    pub safe_mode: bool,
    /// SQL pool size.
    pub sql_pool: u32,
    /// Per-call SQL timeout on request paths.
    pub sql_timeout: Duration,
    /// Reaper period for expired business records.
    pub reap_interval: Duration,
    /// How long a parked causal commit waits before it goes to manual review.
    pub causal_wait_timeout: Duration,
    /// Replay TTLs by intent type.
    pub intent_ttls: TtlTable,
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
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Fills every unset field from `other`.
    fn or(self, other: Settings) -> Settings {
        Settings {
            listen: self.listen.or(other.listen),
            redis_url: self.redis_url.or(other.redis_url),
            database_url: self.database_url.or(other.database_url),
            redis_timeout_ms: self.redis_timeout_ms.or(other.redis_timeout_ms),
            breaker_failures: self.breaker_failures.or(other.breaker_failures),
            breaker_open_ms: self.breaker_open_ms.or(other.breaker_open_ms),
            failover_grace_ms: self.failover_grace_ms.or(other.failover_grace_ms),
            tier_lease_ms: self.tier_lease_ms.or(other.tier_lease_ms),
            max_body_bytes: self.max_body_bytes.or(other.max_body_bytes),
            safe_mode: self.safe_mode.or(other.safe_mode),
            sql_pool: self.sql_pool.or(other.sql_pool),
            sql_timeout_ms: self.sql_timeout_ms.or(other.sql_timeout_ms),
            reap_interval_ms: self.reap_interval_ms.or(other.reap_interval_ms),
            causal_wait_timeout_ms: self.causal_wait_timeout_ms.or(other.causal_wait_timeout_ms),
            intent_ttls: self.intent_ttls.or(other.intent_ttls),
            intent_ttl_default_ms: self.intent_ttl_default_ms.or(other.intent_ttl_default_ms),
            config: self.config,
        }
    }

    fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(file_error(path, e)),
        };
        toml::from_str(&text).map_err(|e| file_error(path, e))
    }

    /// Resolves flags/environment (already in `self`) over the TOML file over the defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = Settings::from_file(&self.config)?;
        let s = self.or(file);
        let config = Config {
            listen: s.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            redis_url: s.redis_url.filter(|u| !u.is_empty()),
            database_url: s
                .database_url
                .unwrap_or_else(|| "sqlite://./warden.db".into()),
            redis_timeout: Duration::from_millis(s.redis_timeout_ms.unwrap_or(50)),
            breaker_failures: s.breaker_failures.unwrap_or(3),
            breaker_open: Duration::from_millis(s.breaker_open_ms.unwrap_or(30_000)),
            failover_grace: s.failover_grace_ms.map(Duration::from_millis),
            tier_lease: Duration::from_millis(s.tier_lease_ms.unwrap_or(2_000)),
            max_body_bytes: s.max_body_bytes.unwrap_or(64 * 1024),
            safe_mode: s.safe_mode.unwrap_or(false),
            sql_pool: s.sql_pool.unwrap_or(16),
            sql_timeout: Duration::from_millis(s.sql_timeout_ms.unwrap_or(2_000)),
            reap_interval: Duration::from_millis(s.reap_interval_ms.unwrap_or(10_000).max(10)),
            causal_wait_timeout: Duration::from_millis(s.causal_wait_timeout_ms.unwrap_or(30_000)),
            intent_ttls: ttl_table(
                s.intent_ttls.as_deref().unwrap_or(""),
                s.intent_ttl_default_ms.unwrap_or(86_400_000),
            )?,
        };
        config.validate()?;
        Ok(config)
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
        if self.breaker_failures == 0 {
            return invalid("breaker_failures must be at least 1");
        }
        if self.redis_timeout.is_zero() || self.tier_lease.is_zero() || self.sql_timeout.is_zero() {
            return invalid("redis_timeout_ms, sql_timeout_ms and tier_lease_ms must be positive");
        }
        if self.causal_wait_timeout.is_zero() {
            return invalid("causal_wait_timeout_ms must be positive");
        }
        if self.sql_pool == 0 {
            return invalid("sql_pool must be at least 1");
        }
        if !(self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
            || self.database_url.starts_with("sqlite:"))
        {
            return invalid("database_url must start with postgres:// or sqlite:");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9\"\nbreaker_failures = 7\n").unwrap();
        let flags = Settings {
            listen: Some("127.0.0.1:1".into()),
            config: path,
            ..Settings::default()
        };
        let c = flags.resolve().unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.breaker_failures, 7);
        assert_eq!(c.database_url, "sqlite://./warden.db");
        assert_eq!(c.redis_timeout, Duration::from_millis(50));
    }

    #[test]
    fn intent_ttl_table() {
        let t = ttl_table(" cancel=3600000, book = 60000 ", 1000).unwrap();
        assert_eq!(
            (t.of("cancel"), t.of("book"), t.of("other")),
            (3_600_000, 60_000, 1000)
        );
        for bad in ["cancel", "cancel=x", "cancel=0"] {
            assert!(ttl_table(bad, 1000).is_err(), "{bad}");
        }
        assert!(ttl_table("", 0).is_err());
    }

    #[test]
    fn bad_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, "nonsense = 1").unwrap();
        let flags = Settings {
            config: path,
            ..Settings::default()
        };
        assert!(flags.resolve().is_err());
    }
}
