//! The layers of the configuration and how they merge: the defaults of [`Config`], then
//! `warden.toml`, then `WARDEN_*` variables, then flags, deep-merged as one JSON tree and read
//! back into [`Config`] once. A variable's name is derived from its setting's path, so no list
//! of variables is kept by hand (the earlier flat names aside).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Map, Value};

use super::{file_error, Config, ConfigError};

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

impl Flags {
    /// Resolves the configuration from the process environment.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// The `WARDEN_*` variables of this process that name no setting (typos, or settings of
    /// another version): they are ignored, and worth a warning.
    pub fn unknown_variables() -> Vec<String> {
        unknown_among(std::env::vars().map(|(k, _)| k))
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

/// The names among `names` that start with `WARDEN_` and name no setting.
fn unknown_among(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut known: Vec<String> = documented_variables().into_iter().map(|(n, _)| n).collect();
    known.extend(LEGACY.iter().map(|(old, _)| env_name(old)));
    known.push(env_name("config"));
    let mut unknown: Vec<String> = names
        .filter(|n| n.starts_with(ENV_PREFIX) && !known.contains(n))
        .collect();
    unknown.sort();
    unknown
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

#[cfg(test)]
mod unknown_tests {
    use super::unknown_among;

    #[test]
    fn misspelt_variables_are_found_and_real_ones_are_not() {
        let names = [
            "WARDEN_REDIS_TIMEOUT_MS",
            "WARDEN_REDIS_TIMOUT_MS",
            "WARDEN_SQL_POOL",
            "WARDEN_CONFIG",
            "WARDEN_LOG",
            "PATH",
        ];
        let unknown = unknown_among(names.iter().map(|s| s.to_string()));
        assert_eq!(unknown, vec!["WARDEN_REDIS_TIMOUT_MS".to_string()]);
    }
}
