//! The configuration's layering, legacy names, typing of text values and documentation.

use std::collections::HashMap;

use super::layers::Flags;
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
    let err = |f: Flags, vars: &[(&str, &str)]| f.resolve_with(env(vars)).unwrap_err().to_string();
    assert!(err(flags(&dir, "nonsense = 1"), &[]).contains("nonsense"));
    assert!(err(flags(&dir, "[tier]\nlease = 1"), &[]).contains("lease"));
    assert!(
        err(flags(&dir, ""), &[("WARDEN_TIER_LEASE_MS", "soon")]).contains("WARDEN_TIER_LEASE_MS")
    );
    assert!(err(flags(&dir, ""), &[("WARDEN_SAFE_MODE", "maybe")]).contains("WARDEN_SAFE_MODE"));
    assert!(err(flags(&dir, ""), &[("WARDEN_BREAKER_FAILURES", "0")]).contains("breaker.failures"));
    assert!(err(flags(&dir, ""), &[("WARDEN_DATABASE_URL", "mysql://x")]).contains("database.url"));
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
    let doc = include_str!("../../docs/configuration.md");
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
