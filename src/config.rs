//! Configuration: one nested tree, merged once — the defaults here, then `warden.toml`, then
//! environment variables, then flags — and validated before anything starts. Every setting is
//! a field below with its default in its section's `Default`; its environment variable is
//! derived from its path (`redis.timeout_ms` is `WARDEN_REDIS_TIMEOUT_MS`), so adding a
//! setting is one field, one default and one line in `docs/configuration.md` (a test checks
//! the document lists every variable).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::runtime::group_commit::GroupCommitConfig;
use crate::stream::rules::TtlTable;

/// Prefix of every environment variable.
const ENV_PREFIX: &str = "WARDEN_";

/// Names kept from the flat configuration of earlier versions: each still sets its setting,
/// as an environment variable and as a top-level key of `warden.toml`.
const LEGACY: &[(&str, &str)] = &[
    ("sql_pool", "database.pool"),
    ("sql_timeout_ms", "database.timeout_ms"),
    ("failover_grace_ms", "tier.failover_grace_ms"),
    ("reap_interval_ms", "idempotency.reap_interval_ms"),
    ("causal_wait_timeout_ms", "streams.causal_wait_timeout_ms"),
    ("intent_ttls", "streams.intent_ttls"),
    ("intent_ttl_default_ms", "streams.intent_ttl_default_ms"),
    ("redis_url", "redis.url"),
    ("database_url", "database.url"),
    ("redis_timeout_ms", "redis.timeout_ms"),
    ("breaker_failures", "breaker.failures"),
    ("breaker_open_ms", "breaker.open_ms"),
    ("tier_lease_ms", "tier.lease_ms"),
    ("log", "log.filter"),
];

/// The flags of `serve` and the other commands that start a Warden. Flags win over
/// everything; any setting can be given with `--set path=value`.
#[derive(Args, Debug, Clone, Default)]
pub struct Flags {
    /// Path of the optional TOML file.
    #[arg(long, env = "WARDEN_CONFIG", default_value = "warden.toml")]
    pub config: PathBuf,
    /// HTTP listen address (`listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Redis URL of the primary tier (`redis.url`); unset runs on SQL alone.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// SQL URL of the durable tier (`database.url`): `postgres://…` or `sqlite://…`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Any setting by its path, e.g. `--set tier.lease_ms=1000` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

/// Resolved configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address.
    pub listen: String,
    /// Largest request body, bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// Start in safe mode: grant nothing.
    pub safe_mode: bool,
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
    /// Logging.
    pub log: LogSettings,
    /// Metrics.
    pub metrics: MetricsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            safe_mode: false,
            redis: RedisSettings::default(),
            database: DatabaseSettings::default(),
            breaker: BreakerSettings::default(),
            tier: TierSettings::default(),
            idempotency: IdempotencySettings::default(),
            locks: LockSettings::default(),
            reservations: ReservationSettings::default(),
            streams: StreamSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
        }
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
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 50,
            arm_concurrency: 64,
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
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://./warden.db".into(),
            pool: 16,
            timeout_ms: 2_000,
            ping_if_idle_ms: 250,
            planner_stats_every_ms: 1_000,
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

/// `idempotency.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How often expired records are deleted, ms.
    pub reap_interval_ms: u64,
    /// Expired records deleted per statement.
    pub reap_batch: i64,
    /// How often a waiting `begin` rechecks a claim held through another instance, ms.
    pub wait_poll_ms: u64,
    /// Claims and completions: one batch in flight, since on a loaded machine PostgreSQL's
    /// CPU is the limit and one larger batch beats two overlapping ones (docs/benchmarks.md).
    pub writer: WriterSettings,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            reap_interval_ms: 10_000,
            reap_batch: 10_000,
            wait_poll_ms: 20,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 1,
            },
        }
    }
}

/// `locks.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockSettings {
    /// How often a waiting acquire retries a lock held through another instance, ms.
    pub wait_poll_ms: u64,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self { wait_poll_ms: 20 }
    }
}

/// `reservations.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReservationSettings {
    /// How often holds past their deadline are returned to stock, ms.
    pub reap_every_ms: u64,
    /// Holds expired per reaper pass, at most.
    pub reap_batch: i64,
    /// How often Redis stock copies are compared with SQL, ms (reported; `warden reconcile
    /// --fix` corrects them).
    pub reconcile_every_ms: u64,
    /// How long a difference must last before it is reported, ms (a hold in flight).
    pub reconcile_settle_ms: u64,
    /// Holds Redis granted, made durable.
    pub writer: WriterSettings,
}

impl Default for ReservationSettings {
    fn default() -> Self {
        Self {
            reap_every_ms: 200,
            reap_batch: 1_000,
            reconcile_every_ms: 30_000,
            reconcile_settle_ms: 300,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 2,
            },
        }
    }
}

/// `streams.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// How long a parked commit waits for its predecessor before manual review, ms.
    pub causal_wait_timeout_ms: u64,
    /// Replay TTL per intent type, `type=ms,type=ms`.
    pub intent_ttls: String,
    /// Replay TTL of types not listed, ms.
    pub intent_ttl_default_ms: u64,
    /// Parked commits sent to review per sweep, at most.
    pub sweep_batch: i64,
    /// How often gauges are refreshed and overdue commits swept, at most, ms.
    pub tick_ms: u64,
    /// How often a parked commit checks the Redis copy for its turn, ms.
    pub wait_poll_copy_ms: u64,
    /// How often it checks SQL when there is no copy, ms.
    pub wait_poll_sql_ms: u64,
    /// Intakes and commits: one batch in flight (a batch is two statements however many
    /// writes it holds, so larger batches beat overlapping ones; and this instance's batches
    /// never race each other).
    pub writer: WriterSettings,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            causal_wait_timeout_ms: 30_000,
            intent_ttls: String::new(),
            intent_ttl_default_ms: 86_400_000,
            sweep_batch: 500,
            tick_ms: 250,
            wait_poll_copy_ms: 20,
            wait_poll_sql_ms: 50,
            writer: WriterSettings {
                max_batch: 512,
                concurrency: 1,
            },
        }
    }
}

impl StreamSettings {
    /// The replay TTL table.
    pub fn ttl_table(&self) -> Result<TtlTable, ConfigError> {
        ttl_table(&self.intent_ttls, self.intent_ttl_default_ms)
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
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { upkeep_ms: 5_000 }
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

impl Flags {
    /// Resolves the configuration from the process environment.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Resolves defaults ← `warden.toml` ← `env` ← flags into one validated [`Config`].
    pub fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let defaults = serde_json::to_value(Config::default()).expect("defaults serialize");
        let mut tree = defaults.clone();
        let file = read_file(&self.config)?;
        merge(&mut tree, file);
        let mut leaves = Vec::new();
        collect_leaves(&defaults, String::new(), &mut leaves);
        let legacy = LEGACY
            .iter()
            .map(|(old, path)| (env_name(old), path.to_string()));
        let by_env = leaves
            .iter()
            .map(|(path, _)| (env_name(path), path.clone()));
        for (name, path) in legacy.chain(by_env) {
            if let Some(raw) = env(&name) {
                set(&mut tree, &defaults, &path, &raw)
                    .map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
            }
        }
        let named = [
            ("listen", self.listen),
            ("redis.url", self.redis_url),
            ("database.url", self.database_url),
        ];
        for (path, value) in named {
            if let Some(v) = value {
                set(&mut tree, &defaults, path, &v).map_err(ConfigError::Invalid)?;
            }
        }
        for entry in &self.set {
            let (path, raw) = entry.split_once('=').ok_or_else(|| {
                ConfigError::Invalid(format!("--set {entry:?}: expected path=value"))
            })?;
            set(&mut tree, &defaults, path.trim(), raw)
                .map_err(|e| ConfigError::Invalid(format!("--set {entry:?}: {e}")))?;
        }
        let config: Config =
            serde_json::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

/// `WARDEN_` and the path in capitals, dots as underscores.
fn env_name(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase())
}

/// Every setting's path and default, in document order.
fn collect_leaves(v: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_leaves(child, path, out);
            }
        }
        leaf => out.push((prefix, leaf.clone())),
    }
}

/// Every setting's environment variable and default (for the documentation test).
pub fn documented_variables() -> Vec<(String, Value)> {
    let defaults = serde_json::to_value(Config::default()).expect("defaults serialize");
    let mut leaves = Vec::new();
    collect_leaves(&defaults, String::new(), &mut leaves);
    leaves
        .into_iter()
        .map(|(path, v)| (env_name(&path), v))
        .collect()
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Sets the setting at `path` from text, typed like its default (a number, a flag, text; an
/// unset optional number takes a number).
fn set(tree: &mut Value, defaults: &Value, path: &str, raw: &str) -> Result<(), String> {
    let default = path
        .split('.')
        .try_fold(defaults, |v, k| v.get(k))
        .filter(|v| !v.is_object())
        .ok_or_else(|| format!("no setting named {path}"))?;
    let raw = raw.trim();
    let value = match default {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Bool(_) => Value::Bool(match raw {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(format!("{raw:?} is not true or false")),
        }),
        Value::Null if raw.is_empty() => Value::Null,
        _ => serde_json::from_str::<serde_json::Number>(raw)
            .map(Value::Number)
            .map_err(|_| format!("{raw:?} is not a number"))?,
    };
    let mut slot = tree;
    for k in path.split('.') {
        slot = slot
            .as_object_mut()
            .ok_or_else(|| format!("no setting named {path}"))?
            .entry(k)
            .or_insert(Value::Null);
    }
    *slot = value;
    Ok(())
}

/// The TOML file as a tree (empty when absent), with legacy top-level keys moved to their
/// paths.
fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Object(Map::new())),
        Err(e) => return Err(file_error(path, e)),
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_error(path, e))?;
    let mut tree = serde_json::to_value(table).map_err(|e| file_error(path, e))?;
    let moved: Vec<Value> = LEGACY
        .iter()
        .filter_map(|(old, new)| {
            let v = tree.as_object_mut()?.remove(*old)?;
            Some(new.rsplit('.').fold(v, |inner, k| {
                Value::Object(Map::from_iter([(k.to_owned(), inner)]))
            }))
        })
        .collect();
    for nested in moved {
        merge(&mut tree, nested);
    }
    Ok(tree)
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
        ];
        let writers = [
            ("idempotency.writer", self.idempotency.writer),
            ("reservations.writer", self.reservations.writer),
            ("streams.writer", self.streams.writer),
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
        Ok(())
    }

    /// The Redis URL, if the primary tier is configured.
    pub fn redis_url(&self) -> Option<&str> {
        Some(self.redis.url.as_str()).filter(|u| !u.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn flags(dir: &tempfile::TempDir, toml: &str) -> Flags {
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, toml).unwrap();
        Flags {
            config: path,
            ..Flags::default()
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn flags_over_environment_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let toml =
            "listen = \"0.0.0.0:9\"\n[breaker]\nfailures = 7\nopen_ms = 5\n[tier]\nlease_ms = 9\n";
        let mut f = flags(&dir, toml);
        f.listen = Some("127.0.0.1:1".into());
        f.set = vec!["tier.lease_ms = 11".into()];
        let vars = env(&[("WARDEN_BREAKER_OPEN_MS", "6"), ("WARDEN_LISTEN", "x:2")]);
        let c = f.resolve_with(vars).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1", "a flag wins");
        assert_eq!(c.breaker.open_ms, 6, "the environment wins over the file");
        assert_eq!(c.breaker.failures, 7, "the file wins over the default");
        assert_eq!(c.tier.lease_ms, 11, "--set wins over the file");
        assert_eq!(c.database.url, "sqlite://./warden.db");
        assert_eq!(c.redis.timeout_ms, 50);
        assert_eq!(c.redis_url(), None);
    }

    #[test]
    fn legacy_flat_names_still_set_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let f = flags(&dir, "sql_pool = 3\ncausal_wait_timeout_ms = 40\n");
        let vars = env(&[
            ("WARDEN_FAILOVER_GRACE_MS", "800"),
            ("WARDEN_INTENT_TTLS", "cancel=5"),
            ("WARDEN_LOG", "warn"),
        ]);
        let c = f.resolve_with(vars).unwrap();
        assert_eq!(c.database.pool, 3);
        assert_eq!(c.streams.causal_wait_timeout_ms, 40);
        assert_eq!(c.tier.failover_grace_ms, Some(800));
        assert_eq!(c.streams.ttl_table().unwrap().of("cancel"), 5);
        assert_eq!(c.log.filter, "warn");
    }

    #[test]
    fn nested_writers_and_optional_numbers_are_typed_from_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = flags(
            &dir,
            "[idempotency.writer]\nmax_batch = 64\nconcurrency = 2\n",
        );
        f.set = vec!["streams.writer.concurrency=3".into(), "safe_mode=on".into()];
        let c = f
            .resolve_with(env(&[("WARDEN_TIER_FAILOVER_GRACE_MS", "1500")]))
            .unwrap();
        assert_eq!(
            (
                c.idempotency.writer.max_batch,
                c.idempotency.writer.concurrency
            ),
            (64, 2)
        );
        assert_eq!(c.streams.writer.concurrency, 3);
        assert_eq!(c.tier.failover_grace_ms, Some(1_500));
        assert!(c.safe_mode);
    }

    #[test]
    fn mistakes_are_errors_that_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            |f: Flags, vars: &[(&str, &str)]| f.resolve_with(env(vars)).unwrap_err().to_string();
        assert!(err(flags(&dir, "nonsense = 1"), &[]).contains("nonsense"));
        assert!(err(flags(&dir, "[tier]\nlease = 1"), &[]).contains("lease"));
        assert!(err(flags(&dir, ""), &[("WARDEN_TIER_LEASE_MS", "soon")])
            .contains("WARDEN_TIER_LEASE_MS"));
        assert!(err(flags(&dir, ""), &[("WARDEN_SAFE_MODE", "maybe")]).contains("WARDEN_SAFE_MODE"));
        assert!(
            err(flags(&dir, ""), &[("WARDEN_BREAKER_FAILURES", "0")]).contains("breaker.failures")
        );
        assert!(
            err(flags(&dir, ""), &[("WARDEN_DATABASE_URL", "mysql://x")]).contains("database.url")
        );
        let mut f = flags(&dir, "");
        f.set = vec!["tier.nope=1".into()];
        assert!(err(f, &[]).contains("tier.nope"));
        assert!(err(flags(&dir, "[streams]\nintent_ttls = \"cancel\""), &[]).contains("cancel"));
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
    fn every_variable_is_documented_once() {
        let doc = include_str!("../docs/configuration.md");
        for (name, _) in documented_variables() {
            let rows = doc.matches(&format!("| `{name}` |")).count();
            assert_eq!(rows, 1, "{name} has {rows} rows in docs/configuration.md");
        }
        let known: Vec<String> = documented_variables().into_iter().map(|(n, _)| n).collect();
        for row in doc.lines().filter(|l| l.starts_with("| `WARDEN_")) {
            let name = row.split('`').nth(1).unwrap_or_default();
            assert!(
                known.iter().any(|k| k == name),
                "{name} is documented but not a setting"
            );
        }
    }
}
