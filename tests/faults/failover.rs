//! Fault injection against real servers: Redis killed under contention, Redis data loss,
//! Warden restarts, both tiers down, and two instances of which one loses Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::eventually;
use crate::support::history::{contend, History};
use crate::support::proxy::Proxy;
use crate::support::{fast_failover, Postgres, Redis, Warden};
use serde_json::Value;

/// Polls `/v1/status` of `w` and records every distinct (tier, epoch).
fn watch_status(
    w: Arc<Warden>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(String, i64)>> {
    tokio::spawn(async move {
        let mut seen: Vec<(String, i64)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let s = w.status().await;
            if let (Some(t), Some(e)) = (s["tier"].as_str(), s["epoch"].as_i64()) {
                if seen.last() != Some(&(t.to_owned(), e)) {
                    seen.push((t.to_owned(), e));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    })
}

fn assert_epochs(seen: &[(String, i64)]) {
    for pair in seen.windows(2) {
        assert!(
            pair[1].1 > pair[0].1,
            "epoch must grow at each switch: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_during_contention() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Arc::new(Warden::start(&fast_failover(&pg, Some(redis.url()))));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_status(w.clone(), stop.clone());
    let clients: Vec<_> = (0..12)
        .map(|c| {
            tokio::spawn(contend(
                w.clone(),
                0,
                c,
                vec!["hot".into()],
                300,
                Duration::from_millis(5),
                history.clone(),
                stop.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        history.count_mode("primary") > 0,
        "grants on Redis before the kill"
    );
    redis.kill();
    let killed = Instant::now();
    eventually(Duration::from_secs(15), "fallback grants", || {
        history.count_mode_after("fallback", killed) > 5
    })
    .await;
    redis.restart(); // empty
    let back = Instant::now();
    eventually(
        Duration::from_secs(20),
        "primary grants after Redis returns",
        || history.count_mode_after("primary", back) > 5,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let seen = watcher.await.unwrap();

    history.assert_tokens_grow();
    history.assert_no_overlap();
    assert_epochs(&seen);
    let tiers: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert!(
        tiers.windows(2).any(|p| p == ["redis", "sql"]),
        "failed over: {seen:?}"
    );
    assert!(
        tiers.windows(2).any(|p| p == ["sql", "redis"]),
        "failed back: {seen:?}"
    );
    let first_fallback = history
        .grants()
        .into_iter()
        .filter(|g| g.mode == "fallback")
        .map(|g| g.answered)
        .min()
        .unwrap();
    assert!(
        first_fallback.duration_since(killed) >= Duration::from_millis(800),
        "no fallback grant inside the failover grace"
    );
    let metrics = w.metrics().await;
    assert!(
        metrics.contains("warden_tier_switches_total{reason=\"redis_unreachable\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("warden_tier_switches_total{reason=\"redis_recovered\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_data_loss_never_lowers_tokens() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let epoch_before = w.status().await["epoch"].as_i64().unwrap();

    let mut last = 0;
    for i in 0..5 {
        let (s, v) = w.acquire("dl", &format!("o{i}"), 10_000, 0).await;
        assert_eq!(s, 200, "{v}");
        let t = v["fencing_token"].as_i64().unwrap();
        assert!(t > last);
        last = t;
        // A release that meets a slow Redis (100 ms timeout here) answers 503 and holds on:
        // it is repeated, as a client would, until it is answered.
        let owner = format!("o{i}");
        let (s, v) = crate::support::through_switch(|| w.release("dl", &owner, t)).await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, held) = w.acquire("dl", "holder", 10_000, 0).await;
    let held_token = held["fencing_token"].as_i64().unwrap();
    assert!(redis.cli(&["FLUSHALL"]).is_some());

    // The lease was lost with the data; the next grant waits out the grace and is larger.
    let (s, v) = w.acquire("dl", "next", 10_000, 5_000).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["mode"], "primary");
    assert!(
        v["fencing_token"].as_i64().unwrap() > held_token,
        "{v} vs {held_token}"
    );
    let status = w.status().await;
    assert!(status["epoch"].as_i64().unwrap() > epoch_before);
    assert_eq!(status["switch_reason"], "redis_data_loss");
    // The stale holder is fenced out.
    let next = v["fencing_token"].as_i64().unwrap();
    assert_eq!(w.fence("dl-res", next).await.0, 200);
    assert_eq!(w.fence("dl-res", held_token).await.0, 409);
}

async fn tokens_across_restart(mut w: Warden, tier: &str) {
    w.wait_ready_on(tier, Duration::from_secs(10)).await;
    let mut last = 0;
    for i in 0..3 {
        let (s, v) = w.acquire("rs", "a", 10_000, 0).await;
        assert_eq!(s, 200, "{v}");
        let t = v["fencing_token"].as_i64().unwrap();
        assert!(t > last);
        last = t;
        w.release("rs", "a", t).await;
        if i == 1 {
            w.kill();
            w.restart();
            w.wait_ready_on(tier, Duration::from_secs(10)).await;
        }
    }
    let (_, v) = w.acquire("rs", "b", 10_000, 0).await;
    assert!(v["fencing_token"].as_i64().unwrap() > last);
    assert_eq!(
        w.terminate().map(|s| s.success()),
        Some(true),
        "SIGTERM exits cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grow_across_warden_restart_on_redis() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    tokens_across_restart(w, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grow_across_warden_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warden::start(&[(
        "WARDEN_DATABASE_URL",
        format!("sqlite://{}/w.db", dir.path().display()),
    )]);
    tokens_across_restart(w, "sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_tiers_down_blocks_then_recovers() {
    let mut pg = Postgres::start();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let (_, v) = w.acquire("bd", "a", 200, 0).await;
    let before = v["fencing_token"].as_i64().unwrap();

    redis.kill();
    pg.stop();
    tokio::time::sleep(Duration::from_millis(800)).await; // tier lease (400 ms) runs out
    for i in 0..10 {
        let (s, v) = w.acquire("bd", &format!("x{i}"), 1000, 0).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (503, Some("lock_acquire_failed_safe_block")),
            "{v}"
        );
        assert!(v["fencing_token"].is_null());
    }
    let (s, _) = w.get("/healthz").await;
    assert_eq!(s, 200, "the service stays up");
    let (s, _) = w.get("/readyz").await;
    assert_eq!(s, 503);
    let metrics = w.metrics().await;
    assert!(
        metrics.contains(
            "warden_answers_total{op=\"lock_acquire\",state=\"lock_acquire_failed_safe_block\"} 10"
        ),
        "{metrics}"
    );

    pg.resume();
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let granted: Value = loop {
        let (s, v) = w.acquire("bd", "back", 1000, 0).await;
        if s == 200 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {v}\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(granted["fencing_token"].as_i64().unwrap() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_grant_on_different_tiers_at_once() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port).await;
    let a = Arc::new(Warden::start(&fast_failover(&pg, Some(proxy.url()))));
    let b = Arc::new(Warden::start(&fast_failover(&pg, Some(redis.url()))));
    a.wait_ready_on("redis", Duration::from_secs(10)).await;
    b.wait_ready_on("redis", Duration::from_secs(10)).await;

    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let keys: Vec<String> = (0..3).map(|k| format!("shared-{k}")).collect();
    let mut clients = Vec::new();
    for (i, w) in [a.clone(), b.clone()].into_iter().enumerate() {
        for c in 0..8 {
            clients.push(tokio::spawn(contend(
                w.clone(),
                i,
                c,
                keys.clone(),
                250,
                Duration::from_millis(5),
                history.clone(),
                stop.clone(),
            )));
        }
    }
    let mut seen = Vec::new();
    let watchers = [
        watch_status(a.clone(), stop.clone()),
        watch_status(b.clone(), stop.clone()),
    ];

    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.cut();
    let cut = Instant::now();
    eventually(
        Duration::from_secs(15),
        "fallback grants on both instances",
        || {
            let g = history.grants();
            (0..2).all(|i| {
                g.iter()
                    .any(|g| g.instance == i && g.mode == "fallback" && g.requested > cut)
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    let back = Instant::now();
    eventually(Duration::from_secs(20), "primary grants again", || {
        history.count_mode_after("primary", back) > 5
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    for w in watchers {
        seen.push(w.await.unwrap());
    }
    history.assert_tokens_grow();
    history.assert_no_overlap();
    for s in &seen {
        assert_epochs(s);
    }
    // While one instance still held a Redis-granted lease, the other never granted on SQL.
    let g = history.grants();
    for x in g.iter().filter(|g| g.mode == "primary") {
        for y in g.iter().filter(|g| g.mode == "fallback" && g.key == x.key) {
            let overlap = y.requested >= x.answered && y.answered <= x.requested + x.ttl;
            assert!(
                !overlap || y.requested >= x.release_sent.unwrap_or(x.requested + x.ttl),
                "tiers granted {} at once:\n {x:?}\n {y:?}",
                x.key
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_back_honours_leases_granted_on_sql() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(15)).await;
    let (s, v) = w.acquire("fb", "sql-holder", 15_000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    let sql_token = v["fencing_token"].as_i64().unwrap();

    redis.restart(); // empty: it knows nothing of the SQL lease
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let (s, v) = w.acquire("fb", "intruder", 1000, 0).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("lock_busy")), "{v}");
    let (s, v) = w.get("/v1/locks/fb").await;
    assert_eq!(
        (s, v["mode"].as_str(), v["owner"].as_str()),
        (200, Some("primary"), Some("sql-holder"))
    );
    assert_eq!(v["fencing_token"].as_i64(), Some(sql_token));
    // The SQL holder keeps full control of its lease on Redis.
    let (s, v) = w.acquire("fb", "sql-holder", 15_000, 0).await;
    assert_eq!(
        (s, v["fencing_token"].as_i64()),
        (200, Some(sql_token)),
        "same grant on retry"
    );
    let (s, _) = w.release("fb", "sql-holder", sql_token).await;
    assert_eq!(s, 200);
    let (s, v) = w.acquire("fb", "next", 1000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("primary")));
    assert!(v["fencing_token"].as_i64().unwrap() > sql_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_counter_moves_to_a_new_epoch() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let (_, v) = w.acquire("ex", "a", 10_000, 0).await;
    let first = v["fencing_token"].as_i64().unwrap();
    w.release("ex", "a", first).await;
    let epoch = w.status().await["epoch"].as_i64().unwrap();

    // Push the slot's counter to its last value: the next grant would spill into epoch + 1.
    let slot = warden::store::redis::slot_keys("warden:{ex}:lock");
    assert!(redis.cli(&["SET", &slot.counter, "4294967295"]).is_some());
    let (s, v) = w.acquire("ex", "b", 10_000, 5_000).await;
    assert_eq!(s, 200, "{v}");
    let next = v["fencing_token"].as_i64().unwrap();
    assert!(next > first);
    assert!(next >> 32 > epoch, "granted in a new epoch: {next:#x}");
    assert!(next & 0xffff_ffff < 0xffff_ffff, "counter restarted");
    assert_eq!(w.status().await["switch_reason"], "counter_exhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_servers_cost_a_timeout_not_a_hang() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut env = fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_SQL_TIMEOUT_MS", "500".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    // A stalled Redis: calls time out (100 ms), the breaker opens, Warden fails over.
    redis.stall(true);
    let started = Instant::now();
    for i in 0..5 {
        let t = Instant::now();
        let (s, v) = w.acquire("st", &format!("o{i}"), 1000, 0).await;
        assert_eq!(s, 503, "{v}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "answered within its timeout"
        );
    }
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    let (s, v) = w.acquire("st", "on-sql", 1000, 0).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A stalled database: answers are 503 within the SQL timeout, never a hang.
    pg.stall(true);
    for i in 0..4 {
        let t = Instant::now();
        let (s, v) = w.acquire("st2", &format!("p{i}"), 1000, 0).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (503, Some("lock_acquire_failed_safe_block")),
            "{v}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "took {:?}",
            t.elapsed()
        );
    }
    let (s, _) = w.get("/healthz").await;
    assert_eq!(s, 200);
    pg.stall(false);
    redis.stall(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _) = w.acquire("st3", "back", 1000, 0).await;
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database restart costs no request once it is back: pooled connections left from before
/// it are checked (they have been idle through the restart) and replaced, instead of each
/// failing one request with a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_database_fails_no_request_once_it_is_back() {
    let mut pg = Postgres::start();
    let mut env = fast_failover(&pg, None);
    env.push(("WARDEN_SQL_POOL", "16".to_string()));
    // The default tier lease: with the fast settings' 400 ms, one slow renewal on a loaded
    // machine (new connections after the restart) let the lease lapse right after readiness,
    // which is not what this test is about.
    env.retain(|(k, _)| *k != "WARDEN_TIER_LEASE_MS");
    let w = Arc::new(Warden::start(&env));
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    let burst = |round: &'static str| {
        let calls = (0..32).map(|i| {
            let w = w.clone();
            tokio::spawn(async move { w.acquire(&format!("{round}{i}"), "o", 60_000, 0).await })
        });
        futures::future::join_all(calls)
    };
    // Every pooled connection gets opened and used.
    for r in burst("warm").await {
        assert_eq!(r.unwrap().0, 200);
    }

    pg.stop();
    pg.resume();
    w.wait_ready_on("sql", Duration::from_secs(30)).await;
    let answers: Vec<(u16, Value)> = burst("after")
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let failed: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s != 200)
        .map(|(_, v)| v)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 32 failed: {:?}\n{}",
        failed.len(),
        failed.first(),
        w.tail_log()
    );
}
