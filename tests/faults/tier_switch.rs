//! Tier switches and start-up as a newcomer meets them (DESIGN §3): right after `/readyz`
//! answers 200 nothing is refused for a start-up reason, on a fresh database, when joining
//! running instances and when two start together; leases stay extendable and releasable
//! across a switch wherever they are visible (a `max_hold_ms` cap with them), and answer
//! `lock_lost` where they are not;
//! every 503 carries a stable reason code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{fast_failover, Postgres, Redis, Warden};
use futures::future::join_all;
use serde_json::{json, Value};
use warden::tier::Blocked;

/// Settings a newcomer starts with: a database, a Redis, and nothing tuned.
fn defaults(pg: &Postgres, redis: &Redis) -> Vec<(&'static str, String)> {
    defaults_with(pg.url(), redis)
}

/// [`defaults`] with the database at `url`.
fn defaults_with(url: String, redis: &Redis) -> Vec<(&'static str, String)> {
    vec![
        ("WARDEN_DATABASE_URL", url),
        ("WARDEN_REDIS_URL", redis.url()),
    ]
}

/// Sends `n` acquires of fresh keys at once and asserts every one is granted on Redis.
async fn burst_granted_on_redis(w: &Warden, tag: &str, n: usize) {
    let keys: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let calls = keys.iter().map(|k| w.acquire(k, "o", 30_000, 0));
    for (s, v) in join_all(calls).await {
        assert_eq!(
            (s, v["state"].as_str()),
            (200, Some("lock_acquired_primary")),
            "{v}\n{}",
            w.tail_log()
        );
    }
}

/// Every write path right after readiness: locks (plain, tree and a group), a semaphore, a
/// reservation and an idempotency key.
async fn everything_answers_at_once(w: &Warden, tag: &str) {
    burst_granted_on_redis(w, tag, 16).await;
    let asks = [
        (
            format!("/v1/locks/{tag}-t%2Fleaf/acquire"),
            json!({"owner": "o", "ttl_ms": 30_000, "tree": true}),
            "lock_acquired_primary",
        ),
        (
            "/v1/lock-groups/acquire".to_owned(),
            json!({"owner": "o", "ttl_ms": 30_000,
                   "locks": [{"key": format!("{tag}-g1")}, {"key": format!("{tag}-g2")}]}),
            "lock_group_acquired",
        ),
        (
            format!("/v1/semaphores/{tag}-sem/acquire"),
            json!({"owner": "o", "limit": 2, "ttl_ms": 30_000}),
            "permit_acquired",
        ),
    ];
    for (path, body, state) in asks {
        let (s, v) = w.post(&path, body).await;
        assert_eq!((s, v["state"].as_str()), (200, Some(state)), "{path}: {v}");
        assert_eq!(v["mode"], "primary", "{path}: {v}");
    }
    let sku = format!("{tag}-sku");
    assert_eq!(w.put_total(&sku, 5).await.0, 200);
    let (s, v) = w
        .post(
            &format!("/v1/inventory/{sku}/reservations"),
            json!({"user_id": "u1", "quantity": 1}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (201, Some("reserved")), "{v}");
    let (s, v) = w
        .idem(&format!("{tag}-idem"), "begin", json!({"lease_ms": 5000}))
        .await;
    assert_eq!((s, v["state"].as_str()), (201, Some("started")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_serves_on_redis_as_soon_as_ready() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&defaults(&pg, &redis));
    w.wait_readyz(Duration::from_secs(20)).await;
    let status = w.status().await;
    assert_eq!(status["tier"], "redis", "{status}");
    assert!(status["blocked_reason"].is_null(), "{status}");
    everything_answers_at_once(&w, "fresh").await;
}

/// Fast-failover settings whose breaker stays closed, so the only way back from a failed
/// arming is the arming's own retry.
fn arming_only_retry(pg: &Postgres, redis: &Redis) -> Vec<(&'static str, String)> {
    let mut env = fast_failover(pg, Some(redis.url()));
    env.push(("WARDEN_BREAKER_FAILURES", "100000".to_string()));
    env
}

/// Makes Redis refuse writes (reads go on) for 2.5 s, the pause it returns.
fn pause_writes(redis: &Redis) -> Duration {
    let pause = Duration::from_millis(2_500);
    let paused = redis.cli(&["CLIENT", "PAUSE", &pause.as_millis().to_string(), "WRITE"]);
    assert_eq!(paused.as_deref().map(str::trim), Some("OK"));
    pause
}

/// An arming that fails (here Redis refuses writes while reads go on, so the switch to Redis
/// happens and the gates cannot be raised) is taken back and retried at the next supervision
/// step: the instance serves on Redis soon after Redis takes writes again, not after the
/// whole arming window (10 s) and a data-loss switch with its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_arming_is_retried_at_once() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let env = arming_only_retry(&pg, &redis);
    let pause = pause_writes(&redis);
    let started = Instant::now();
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let took = started.elapsed();
    let log = w.tail_log();
    assert!(
        log.contains("arming redis failed"),
        "the arming never failed:\n{log}"
    );
    assert!(!log.contains("redis_data_loss"), "{log}");
    assert!(
        took < pause + Duration::from_secs(4),
        "ready on redis after {took:?}\n{log}"
    );
    burst_granted_on_redis(&w, "rearmed", 8).await;
}

/// An arming that fails after it raised the gate the supervisor checks (here that gate is up
/// before Warden starts, as when the answer of the raise was lost to a timeout) is armed
/// again too: the supervisor does not take the gate for the recorded arming. Before, the
/// instance stayed `epoch_changing` with no traffic to find the other slots' gates down
/// (clean-clone run: not ready on Redis within 20 s, nothing logged after the failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arming_that_failed_after_raising_the_gate_is_retried() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let env = arming_only_retry(&pg, &redis);
    // The first switch to Redis on a fresh database reaches epoch 2.
    let gate = warden::store::redis::slot_keys(&warden::store::redis::tagged("", "lock")).gate;
    assert_eq!(
        redis.cli(&["SET", &gate, "2"]).as_deref().map(str::trim),
        Some("OK")
    );
    pause_writes(&redis);
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let log = w.tail_log();
    assert!(log.contains("arming redis failed"), "never failed:\n{log}");
    assert!(!log.contains("redis_data_loss"), "{log}");
    assert_eq!(w.status().await["epoch"], 2, "{log}");
    burst_granted_on_redis(&w, "rearmed-gate", 8).await;
}

/// A first connection slower than one call's timeout (here each new connection reaches Redis
/// 200 ms after it is made, against a 100 ms call timeout) is made at start-up within the
/// connect timeout (250 ms, retried twice): no call fails for it, so no failure reaches the
/// breaker (three open it, and SQL would then serve for its open period); `/metrics` counts
/// failures from the start of the process (before, those of the start-up were lost, and this
/// test could not see them). Nothing is asked of
/// Warden after it is ready: calls through the test's own proxy on a loaded lane may be slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_connection_is_not_a_redis_failure() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let proxy =
        crate::support::proxy::Proxy::start_delayed(redis.port, Duration::from_millis(200)).await;
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", proxy.url()),
        ("WARDEN_REDIS_TIMEOUT_MS", "100".into()),
    ]);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let metrics = w.metrics().await;
    let failures: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("warden_redis_failures_total"))
        .collect();
    assert!(failures.is_empty(), "{failures:?}\n{}", w.tail_log());
}

/// A database that is not up yet when Warden starts (both started together, as by a service
/// manager) delays the start instead of ending it (before, the first refused connection, or a
/// 2 s connect timeout on a loaded machine, made `warden serve` exit). Meanwhile the port
/// answers at once: `/healthz` 200, `/readyz` and every other call 503 `starting` with a
/// `Retry-After` (before, callers and health probes hung in the listen backlog). Warden serves
/// once the database comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_waits_for_a_database_that_is_still_starting() {
    let mut pg = Postgres::start();
    let redis = Redis::start();
    pg.stop();
    let w = Warden::start_answering(&defaults_with(pg.url(), &redis));
    let waited = crate::support::poll_until(Duration::from_secs(20), || {
        w.tail_log().contains("database not reached at start-up")
    });
    assert!(waited, "{}", w.tail_log());
    starting_answers(&w).await;
    pg.resume();
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let metrics = w.metrics().await;
    let counted = r#"warden_answers_total{op="startup",state="starting"} "#;
    assert!(metrics.contains(counted), "{metrics}");
    burst_granted_on_redis(&w, "late-db", 8).await;
}

/// What an instance still waiting for its database answers.
async fn starting_answers(w: &Warden) {
    let (s, v) = w.get("/healthz").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("alive")), "{v}");
    let (s, v) = w.get("/openapi.json").await;
    assert_eq!(s, 200, "{v}");
    let documented = v["paths"]["/readyz"]["get"]["responses"]["503"]["description"].as_str();
    assert!(
        documented.is_some_and(|d| d.contains("`code`: starting")),
        "{documented:?}"
    );
    for (method, path) in [
        ("GET", "/readyz"),
        ("POST", "/v1/locks/k/acquire"),
        ("GET", "/v1/status"),
    ] {
        let r = w
            .http
            .request(method.parse().unwrap(), format!("{}{path}", w.base()))
            .json(&json!({"owner": "a", "ttl_ms": 1_000}))
            .send()
            .await
            .unwrap();
        let retry_after = r.headers().get("retry-after").cloned();
        let ct = r.headers().get("content-type").cloned();
        let (s, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap_or_default());
        assert_eq!(
            (s, v["code"].as_str()),
            (503, Some("starting")),
            "{method} {path}: {v}"
        );
        assert_eq!(
            retry_after.as_ref().and_then(|h| h.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            ct.as_ref().and_then(|h| h.to_str().ok()),
            Some("application/problem+json")
        );
    }
}

/// SIGTERM while Warden waits for its database ends it at once, cleanly; before, it waited
/// out the start (60 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warden_waiting_for_its_database_stops_on_sigterm() {
    let mut pg = Postgres::start();
    pg.stop();
    let mut w = Warden::start_answering(&[("WARDEN_DATABASE_URL", pg.url())]);
    let waited = crate::support::poll_until(Duration::from_secs(20), || {
        w.tail_log().contains("database not reached at start-up")
    });
    assert!(waited, "{}", w.tail_log());
    let asked = std::time::Instant::now();
    let status = w.terminate().expect("it was running");
    assert!(status.success(), "{status:?}\n{}", w.tail_log());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_instance_serves_as_soon_as_ready_and_the_first_goes_on() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let a = Arc::new(Warden::start(&defaults(&pg, &redis)));
    a.wait_readyz(Duration::from_secs(20)).await;
    let epoch = a.status().await["epoch"].as_i64().unwrap();

    // The first instance keeps granting while the second one starts.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (a, stop) = (a.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (s, v) = a.acquire(&format!("first-{i}"), "o", 30_000, 0).await;
                assert_eq!((s, v["mode"].as_str()), (200, Some("primary")), "{v}");
                i += 1;
            }
            i
        })
    };
    let b = Warden::start(&defaults(&pg, &redis));
    b.wait_readyz(Duration::from_secs(20)).await;
    everything_answers_at_once(&b, "joined").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(busy.await.unwrap() > 0);
    assert_eq!(
        b.status().await["epoch"].as_i64(),
        Some(epoch),
        "joining switches nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_started_together_on_a_fresh_database_both_serve_at_once() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let env = defaults(&pg, &redis);
    let starts = [env.clone(), env].map(|env| std::thread::spawn(move || Warden::start(&env)));
    let [a, b] = starts.map(|s| s.join().unwrap());
    for (w, tag) in [(&a, "a"), (&b, "b")] {
        w.wait_readyz(Duration::from_secs(20)).await;
        everything_answers_at_once(w, tag).await;
    }
    assert_eq!(a.status().await["epoch"], b.status().await["epoch"]);
}

/// A Warden that served on Redis, then on SQL once Redis was SIGKILLed.
async fn serving_on_sql_after_redis_died() -> (Postgres, Redis, Arc<Warden>) {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Arc::new(Warden::start(&fast_failover(&pg, Some(redis.url()))));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(15)).await;
    (pg, redis, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releases_across_a_fail_back_are_never_lost() {
    let (_pg, mut redis, w) = serving_on_sql_after_redis_died().await;
    // Many live SQL leases: fail-back copies each into Redis while it arms.
    const N: usize = 400;
    let grants: Vec<i64> = join_all((0..N).map(|i| {
        let w = w.clone();
        async move {
            let (s, v) = w
                .acquire(&format!("fb-{i}"), &format!("o{i}"), 60_000, 0)
                .await;
            assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
            v["fencing_token"].as_i64().unwrap()
        }
    }))
    .await;

    redis.restart(); // empty
                     // Releases spread over the fail-back: before the switch, while Redis is armed, after.
    let mut answers: Vec<(u16, Value)> = Vec::new();
    let mut pending = Vec::new();
    for (i, token) in grants.iter().copied().enumerate() {
        let w = w.clone();
        pending.push(tokio::spawn(async move {
            w.release(&format!("fb-{i}"), &format!("o{i}"), token).await
        }));
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    for p in pending {
        answers.push(p.await.unwrap());
    }
    for (i, (s, v)) in answers.iter().enumerate() {
        assert_eq!(
            (*s, v["state"].as_str()),
            (200, Some("released")),
            "release of fb-{i}: {v}\n{}",
            w.tail_log()
        );
    }
    let modes: Vec<&str> = answers
        .iter()
        .filter_map(|a| a.1["mode"].as_str())
        .collect();
    assert!(modes.contains(&"primary"), "some released after the switch");

    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    // Every released key is free, and its old owner never gets its old grant back.
    for (i, old) in grants.iter().copied().enumerate() {
        let (s, v) = w
            .acquire(&format!("fb-{i}"), &format!("o{i}"), 10_000, 0)
            .await;
        assert_eq!(
            (s, v["mode"].as_str()),
            (200, Some("primary")),
            "fb-{i}: {v}"
        );
        assert!(v["fencing_token"].as_i64().unwrap() > old, "fb-{i}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extends_across_a_fail_back_reach_the_lease_wherever_it_is() {
    let (_pg, mut redis, w) = serving_on_sql_after_redis_died().await;
    let (s, v) = w.acquire("ext", "holder", 2_000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    let token = v["fencing_token"].as_i64().unwrap();

    redis.restart();
    // Keep extending through the fail-back: each extend must reach the lease.
    let started = Instant::now();
    let mut modes = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        let body = json!({"owner": "holder", "fencing_token": token, "ttl_ms": 2_000});
        let (s, v) = w.post("/v1/locks/ext/extend", body).await;
        assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
        modes.push(v["mode"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(modes.iter().any(|m| m == "primary"), "{modes:?}");
    // Redis honours the extended lease: nobody else gets the key.
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let (s, v) = w.acquire("ext", "intruder", 1_000, 0).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("lock_busy")), "{v}");
    let (s, v) = w.release("ext", "holder", token).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("released")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_hold_set_on_sql_still_caps_the_lease_after_fail_back() {
    let (_pg, mut redis, w) = serving_on_sql_after_redis_died().await;
    let body = json!({"owner": "holder", "ttl_ms": 20_000, "max_hold_ms": 40_000});
    let (s, v) = w.post("/v1/locks/cap/acquire", body).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    let token = v["fencing_token"].as_i64().unwrap();

    redis.restart();
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    // Arming copied the lease into Redis with its cap: Redis extends within it, never past.
    let extend = |ttl_ms: i64| {
        let body = json!({"owner": "holder", "fencing_token": token, "ttl_ms": ttl_ms});
        w.post("/v1/locks/cap/extend", body)
    };
    let (s, v) = extend(20_000).await;
    assert_eq!(
        (s, v["state"].as_str(), v["mode"].as_str()),
        (200, Some("extended"), Some("primary")),
        "{v}"
    );
    let (s, v) = extend(40_000).await;
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (409, Some("lock_lost"), Some("max_hold_exceeded")),
        "{v}"
    );
    let (s, v) = w.get("/v1/locks/cap").await;
    assert_eq!((s, v["fencing_token"].as_i64()), (200, Some(token)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_and_tree_leases_granted_on_sql_hold_after_fail_back() {
    let (_pg, mut redis, w) = serving_on_sql_after_redis_died().await;
    let body = json!({"owner": "reader", "ttl_ms": 20_000, "mode": "shared"});
    let (s, v) = w.post("/v1/locks/doc/acquire", body).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    let token = v["fencing_token"].as_i64().unwrap();
    // Leases below a tree root, one of each mode: arming must leave their intentions too.
    let mut below = Vec::new();
    for (key, owner, mode) in [
        ("ward%2Fbed:1", "nurse", "exclusive"),
        ("ward%2Fbed:2", "aide", "shared"),
    ] {
        let body = json!({"owner": owner, "ttl_ms": 20_000, "mode": mode, "tree": true});
        let (s, v) = w.post(&format!("/v1/locks/{key}/acquire"), body).await;
        assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
        below.push((key, owner, v["fencing_token"].as_i64().unwrap()));
    }

    redis.restart(); // empty: arming must copy the shared lease
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let (s, v) = w.acquire("doc", "writer", 1_000, 0).await;
    assert_eq!((s, v["blocked_by"].as_str()), (409, Some("reader")), "{v}");
    let body = json!({"owner": "reader", "fencing_token": token, "ttl_ms": 20_000});
    let (s, v) = w.post("/v1/locks/doc/extend", body).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
    assert_eq!(w.release("doc", "reader", token).await.0, 200);
    let (s, v) = w.acquire("doc", "writer", 1_000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("primary")), "{v}");
    assert!(v["fencing_token"].as_i64().unwrap() > token);

    // On Redis the copied tree leases still exclude their parent, each in its own way.
    let parent = |mode: &str| {
        let body = json!({"owner": "admin", "ttl_ms": 1_000, "mode": mode, "tree": true});
        w.post("/v1/locks/ward/acquire", body)
    };
    let (s, v) = parent("exclusive").await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["blocked_at"].as_str().unwrap().starts_with("ward/bed:"),
        "{v}"
    );
    let (s, v) = parent("shared").await;
    assert_eq!(
        (s, v["blocked_at"].as_str()),
        (409, Some("ward/bed:1")),
        "{v}"
    );
    for (key, owner, t) in &below {
        let body = json!({"owner": owner, "fencing_token": t, "tree": true});
        let (s, v) = w.post(&format!("/v1/locks/{key}/release"), body).await;
        assert_eq!((s, v["mode"].as_str()), (200, Some("primary")), "{v}");
    }
    let (s, v) = parent("exclusive").await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("primary")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_with_redis_answers_lock_lost_tier_switched() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let (s, v) = w.acquire("lost", "holder", 60_000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("primary")), "{v}");
    let token = v["fencing_token"].as_i64().unwrap();

    redis.kill();
    // Until the switch, Redis-tier calls are refused with a stable reason.
    let (s, v) = w.acquire("other", "x", 1_000, 0).await;
    assert_eq!(s, 503, "{v}");
    assert_stable_reason(&v);
    w.wait_ready_on("sql", Duration::from_secs(15)).await;

    let body = json!({"owner": "holder", "fencing_token": token, "ttl_ms": 60_000});
    let (s, v) = w.post("/v1/locks/lost/extend", body).await;
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (409, Some("lock_lost"), Some("tier_switched")),
        "{v}"
    );
    let (s, v) = w.release("lost", "holder", token).await;
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (409, Some("lock_lost"), Some("tier_switched")),
        "{v}"
    );
    // On SQL the key is free (after the grace) and its next token is larger.
    let (s, v) = w.acquire("lost", "next", 1_000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    assert!(v["fencing_token"].as_i64().unwrap() > token);
    // The holder's own acquire is a new grant, never the lost one.
    let (s, v) = w
        .release("lost", "next", v["fencing_token"].as_i64().unwrap())
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = w.acquire("lost", "holder", 1_000, 0).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["fencing_token"].as_i64().unwrap() > token);
}

/// A 503 answer's `reason` is one of the documented codes, and no internal text leaks.
fn assert_stable_reason(v: &Value) {
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(Blocked::REASONS.contains(&reason), "unstable reason: {v}");
    if reason == "failover_grace" {
        assert!(v["retry_after_ms"].as_i64().unwrap() > 0, "{v}");
    }
    let text = v.to_string();
    for leak in ["error", "store", "timed out", "connection", "epoch kept"] {
        assert!(!text.contains(leak), "internal text in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_an_outage_carries_a_stable_reason() {
    let mut pg = Postgres::start();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    // Redis gone: refusals name it (or the failover grace), then SQL serves.
    redis.kill();
    let mut reasons = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = w
            .http
            .post(format!("{}/v1/locks/sr/acquire", w.base()))
            .json(&json!({"owner": "o", "ttl_ms": 1_000}))
            .send()
            .await
            .unwrap();
        let retry_after = r.headers().get("retry-after").cloned();
        let (s, v): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap_or_default());
        if s == 200 {
            break;
        }
        assert_eq!(s, 503, "{v}");
        assert_stable_reason(&v);
        // A retry time known in ms is also the `Retry-After` header, in seconds rounded up.
        let seconds = v["retry_after_ms"]
            .as_i64()
            .map(|ms| ((ms + 999) / 1000).to_string());
        let header = retry_after.and_then(|h| h.to_str().ok().map(str::to_owned));
        assert_eq!(header, seconds, "{v}");
        reasons.push(v["reason"].as_str().unwrap().to_owned());
        assert!(Instant::now() < deadline, "never served on sql: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reasons.iter().any(|r| r == "redis_unavailable"),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "failover_grace"), "{reasons:?}");

    // Both gone: every answer is a safe block with a stable reason; the status says why.
    pg.stop();
    tokio::time::sleep(Duration::from_millis(800)).await; // the tier lease (400 ms) runs out
    let calls = [
        (
            "/v1/locks/sr2/acquire",
            json!({"owner": "o", "ttl_ms": 1000}),
        ),
        ("/v1/idempotency/sr2/begin", json!({"lease_ms": 1000})),
    ];
    for (path, body) in calls {
        let (s, v) = w.post(path, body).await;
        assert_eq!(s, 503, "{path}: {v}");
        assert_stable_reason(&v);
        assert_eq!(v["reason"], "both_tiers_down", "{path}: {v}");
    }
    let (s, v) = w.get("/readyz").await;
    assert_eq!(
        (s, v["blocked_reason"].as_str()),
        (503, Some("both_tiers_down"))
    );
}
