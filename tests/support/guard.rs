//! Helpers of the guard's suites (`faults/guard.rs`, `faults/guard_fallback.rs`,
//! `contracts/correlation.rs`): timers shortened to hundreds of milliseconds, the receiver's
//! settings, incident triggers, waits on the guard's state, and the notice rounds a receiver
//! saw.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::webhooks::Receiver;
use super::{Postgres, Redis, Warden};

/// Escalation timers: repeats every 400 ms for 2 s (rounds 1–5), safe mode at 1 s, a health
/// tick of 50 ms, a green window of 1.5 s.
pub fn timers() -> Vec<(&'static str, String)> {
    vec![
        ("WARDEN_GUARD_NOTIFY_INTERVAL_MS", "400".into()),
        ("WARDEN_GUARD_NOTIFY_WINDOW_MS", "2000".into()),
        ("WARDEN_GUARD_SAFE_MODE_AFTER_MS", "1000".into()),
        ("WARDEN_GUARD_EXIT_GREEN_MS", "1500".into()),
        ("WARDEN_GUARD_HEALTH_TICK_MS", "50".into()),
        ("WARDEN_TIER_LEASE_MS", "400".into()),
    ]
}

pub fn env(
    pg: &Postgres,
    recv: &Receiver,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut e = vec![("WARDEN_DATABASE_URL", pg.url())];
    e.extend(timers());
    e.extend(recv.settings());
    e.extend(extra.iter().cloned());
    e
}

pub async fn trigger(w: &Warden, key: &str, severity: &str) -> Value {
    let body = json!({"event_action": "trigger", "dedup_key": key, "severity": severity,
        "summary": format!("{key} is down"), "source": "tests"});
    let (s, v) = w.post("/v1/incidents", body).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("triggered")), "{v}");
    v
}

/// Waits until the guard state `w` reports (in `/v1/status`) is `state`.
pub async fn guard_is(w: &Warden, state: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let s = w.get("/v1/status").await.1;
        if s["guard"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "guard never {state}: {s}\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Per (endpoint, type): the rounds received, one per distinct `webhook-id` (a retry of the
/// same id is the same delivery).
pub fn rounds(recv: &Receiver) -> BTreeMap<(String, String), Vec<i64>> {
    let mut seen: HashMap<String, (String, String, i64)> = HashMap::new();
    for r in recv.got() {
        assert!(r.signed, "unsigned or badly signed delivery: {:?}", r.body);
        let entry = (r.endpoint.clone(), r.kind().to_owned(), r.attempt());
        if let Some(before) = seen.insert(r.id.clone(), entry.clone()) {
            assert_eq!(before, entry, "one webhook-id carried two events");
        }
    }
    let mut out: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (endpoint, kind, round) in seen.into_values() {
        out.entry((endpoint, kind)).or_default().push(round);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

pub fn of<'a>(
    r: &'a BTreeMap<(String, String), Vec<i64>>,
    endpoint: &str,
    kind: &str,
) -> &'a [i64] {
    r.get(&(endpoint.to_owned(), kind.to_owned()))
        .map_or(&[], Vec::as_slice)
}

/// `method` on `path` with bearer `token`: status and body.
pub async fn as_token(
    w: &Warden,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = w
        .http
        .request(method.parse().unwrap(), format!("{}{path}", w.base()))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// A Warden with `extra` settings that started on Redis and stays on SQL after Redis is
/// killed (the breaker stays open); the §10 rate is not judged, only the lock p95.
pub async fn on_fallback(
    pg: &Postgres,
    recv: &Receiver,
    redis: &mut Redis,
    extra: &[(&'static str, String)],
) -> Warden {
    let mut settings = vec![
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_BREAKER_OPEN_MS", "60000".into()),
        ("WARDEN_FAILOVER_GRACE_MS", "200".into()),
        ("WARDEN_REDIS_TIMEOUT_MS", "100".into()),
        ("WARDEN_GUARD_MIN_SAMPLES", "1000000000".into()),
    ];
    settings.extend(extra.iter().cloned());
    let w = Warden::start(&env(pg, recv, &settings));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    w
}
