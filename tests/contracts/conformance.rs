//! One conformance suite each for locks (`max_hold_ms`, shared leases, groups and trees included),
//! semaphores, idempotency, reservations and causal streams, expanded for every backend:
//! SQLite, PostgreSQL, Redis and Redis Cluster (with PostgreSQL as their durable tier). Each
//! runs through the real binary over HTTP.

mod group;
mod hold;
mod idem;
mod reserve;
mod semaphore;
mod shared;
mod stream;
mod tree;

use std::time::{Duration, Instant};

use crate::support::{Postgres, Redis, RedisCluster, Warden};
use serde_json::json;

/// Servers kept alive for the duration of one suite. Fields drop in this order: the Warden
/// first, while its stores still answer (under coverage it is stopped with SIGTERM and must
/// exit to write its profile).
struct Env {
    w: Warden,
    mode: &'static str,
    _pg: Option<Postgres>,
    _redis: Option<Redis>,
    _cluster: Option<RedisCluster>,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new(w: Warden, mode: &'static str) -> Self {
        Env {
            _pg: None,
            _redis: None,
            _cluster: None,
            _dir: tempfile::tempdir().unwrap(),
            w,
            mode,
        }
    }
}

/// 1 000 concurrent buyers queue for the pool (SQLite: 4 connections) longer than the 2 s
/// default on a loaded 2-core machine: the suite tests the contract, not overload behaviour.
fn patient_sql() -> (&'static str, String) {
    ("WARDEN_SQL_TIMEOUT_MS", "15000".into())
}

/// Settings every suite's server shares: the patient SQL timeout, a causal wait timeout short
/// enough to watch, and a 300 ms replay TTL for `reminder` intents.
fn suite_env(mut env: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    env.extend([
        patient_sql(),
        ("WARDEN_CAUSAL_WAIT_TIMEOUT_MS", "1500".into()),
        ("WARDEN_INTENT_TTLS", "reminder=300".into()),
    ]);
    env
}

async fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/w.db", dir.path().display());
    let w = Warden::start(&suite_env(vec![("WARDEN_DATABASE_URL", url)]));
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    Env {
        _dir: dir,
        ..Env::new(w, "fallback")
    }
}

async fn postgres() -> Env {
    let pg = Postgres::database();
    let w = Warden::start(&suite_env(vec![("WARDEN_DATABASE_URL", pg.url())]));
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    Env {
        _pg: Some(pg),
        ..Env::new(w, "fallback")
    }
}

/// Warden on `redis_url`, with PostgreSQL as its durable tier, ready in primary mode.
async fn primary(redis_url: String) -> (Postgres, Warden) {
    let pg = Postgres::database();
    let w = Warden::start(&suite_env(vec![
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis_url),
        // 1 000 concurrent buyers on a debug build, with the other suites running in parallel
        // on two cores, can starve a process for longer than a 400 ms lease or a 50 ms Redis
        // timeout: the suite tests the contract, not overload behaviour.
        ("WARDEN_TIER_LEASE_MS", "1500".into()),
        ("WARDEN_REDIS_TIMEOUT_MS", "2000".into()),
    ]));
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    (pg, w)
}

async fn redis() -> Env {
    let redis = Redis::start();
    let (pg, w) = primary(redis.url()).await;
    Env {
        _pg: Some(pg),
        _redis: Some(redis),
        ..Env::new(w, "primary")
    }
}

async fn redis_cluster() -> Env {
    let cluster = RedisCluster::start();
    let (pg, w) = primary(cluster.url()).await;
    Env {
        _pg: Some(pg),
        _cluster: Some(cluster),
        ..Env::new(w, "primary")
    }
}

fn token(v: &serde_json::Value) -> i64 {
    v["fencing_token"]
        .as_i64()
        .unwrap_or_else(|| panic!("no token in {v}"))
}

async fn acquire_contract(e: &Env) {
    let w = &e.w;
    // Shared instants use the database clock; on one host it agrees with ours.
    let offset = w.status().await["clock_offset_ms"].as_i64().unwrap();
    assert!(offset.abs() < 1000, "clock offset {offset} ms");
    let (s, a) = w.acquire("c-a", "alice", 5_000, 0).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["state"], format!("lock_acquired_{}", e.mode));
    assert_eq!(a["mode"], e.mode);
    assert_eq!(a["owner"], "alice");
    assert!(a["expires_at"].as_str().unwrap().ends_with('Z'));
    let t = token(&a);
    assert!(t > 0 && t < (1i64 << 53));

    // A retry by the holder returns the same grant.
    let (s, again) = w.acquire("c-a", "alice", 5_000, 0).await;
    assert_eq!(s, 200);
    assert_eq!(token(&again), t);

    // Another owner is refused while the lease lives.
    let (s, busy) = w.acquire("c-a", "bob", 5_000, 0).await;
    assert_eq!((s, busy["state"].as_str()), (409, Some("lock_busy")));
    assert!(busy["retry_after_ms"].as_i64().unwrap() > 0);

    let (s, held) = w.get("/v1/locks/c-a").await;
    assert_eq!(
        (s, held["owner"].as_str(), token(&held)),
        (200, Some("alice"), t)
    );

    // Release by a non-owner or with a wrong token fails; by the owner succeeds.
    let (s, r) = w.release("c-a", "bob", t).await;
    assert_eq!((s, r["state"].as_str()), (409, Some("not_owner")));
    let (s, r) = w.release("c-a", "alice", t + 1).await;
    assert_eq!((s, r["state"].as_str()), (409, Some("not_owner")));
    let (s, r) = w.release("c-a", "alice", t).await;
    assert_eq!((s, r["state"].as_str()), (200, Some("released")));
    // A released lease is gone: a repeat says so, with a reason, and changes nothing.
    let (s, r) = w.release("c-a", "alice", t).await;
    assert_eq!(
        (s, r["state"].as_str(), r["reason"].as_str()),
        (409, Some("lock_lost"), Some("expired")),
        "{r}"
    );
    let (s, r) = w.get("/v1/locks/c-a").await;
    assert_eq!((s, r["state"].as_str()), (404, Some("not_held")));

    // The next grant has a larger token.
    let (s, b) = w.acquire("c-a", "bob", 5_000, 0).await;
    assert_eq!(s, 200);
    assert!(token(&b) > t);
}

async fn extend_and_expiry(e: &Env) {
    let w = &e.w;
    let (_, a) = w.acquire("c-x", "alice", 300, 0).await;
    let t = token(&a);
    let (s, x) = w
        .post(
            "/v1/locks/c-x/extend",
            json!({"owner": "alice", "fencing_token": t, "ttl_ms": 2000}),
        )
        .await;
    assert_eq!((s, x["state"].as_str()), (200, Some("extended")), "{x}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, _) = w.acquire("c-x", "bob", 1000, 0).await;
    assert_eq!(s, 409, "extended lease still held");
    let (s, x) = w
        .post(
            "/v1/locks/c-x/extend",
            json!({"owner": "bob", "fencing_token": t, "ttl_ms": 2000}),
        )
        .await;
    assert_eq!((s, x["state"].as_str()), (409, Some("not_owner")));

    // An expired lease is free for the next owner, with a larger token; the old holder can
    // neither extend nor release it.
    let (_, short) = w.acquire("c-y", "alice", 100, 0).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (s, b) = w.acquire("c-y", "bob", 1000, 0).await;
    assert_eq!(s, 200);
    assert!(token(&b) > token(&short));
    let (s, r) = w.release("c-y", "alice", token(&short)).await;
    assert_eq!(
        (s, r["state"].as_str(), r["reason"].as_str()),
        (409, Some("lock_lost"), Some("superseded")),
        "{r}"
    );
    assert_eq!(w.get("/v1/locks/c-y").await.1["owner"], "bob");

    // An expired lease nobody took since: extend says it expired.
    let (_, z) = w.acquire("c-z", "alice", 100, 0).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (s, r) = w
        .post(
            "/v1/locks/c-z/extend",
            json!({"owner": "alice", "fencing_token": token(&z), "ttl_ms": 1000}),
        )
        .await;
    assert_eq!(
        (s, r["state"].as_str(), r["reason"].as_str()),
        (409, Some("lock_lost"), Some("expired")),
        "{r}"
    );
}

async fn wait_is_fifo(e: &Env) {
    let w = &e.w;
    let (_, a) = w.acquire("c-w", "holder", 10_000, 0).await;
    let t = token(&a);
    let spawn_waiter = |i: usize| {
        let http = w.http.clone();
        let url = format!("{}/v1/locks/c-w/acquire", w.base());
        tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&json!({"owner": format!("w{i}"), "ttl_ms": 200, "wait_ms": 5000}))
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            (i, v, Instant::now())
        })
    };
    let mut waiters = Vec::new();
    for i in 0..3 {
        waiters.push(spawn_waiter(i));
        // Join the queue in a known order.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let released = Instant::now();
    let (s, _) = w.release("c-w", "holder", t).await;
    assert_eq!(s, 200);
    // A waiter arriving after the release does not overtake the queue.
    waiters.push(spawn_waiter(3));
    let mut results = Vec::new();
    for h in waiters {
        results.push(h.await.unwrap());
    }
    results.sort_by_key(|r| r.2);
    let order: Vec<usize> = results.iter().map(|r| r.0).collect();
    assert_eq!(
        order,
        vec![0, 1, 2, 3],
        "waiters served in arrival order: {results:?}"
    );
    let mut last = t;
    for (_, v, _) in &results {
        assert_eq!(v["mode"], e.mode, "{v}");
        assert!(token(v) > last, "tokens grow in grant order");
        last = token(v);
    }
    assert!(results[0].2.duration_since(released) < Duration::from_millis(1000));

    // A waiter whose wait runs out gets lock_busy.
    let (_, _h) = w.acquire("c-w2", "holder", 10_000, 0).await;
    let started = Instant::now();
    let (s, v) = w.acquire("c-w2", "late", 1000, 300).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("lock_busy")));
    assert!(started.elapsed() >= Duration::from_millis(250));
}

async fn contention_grants_one(e: &Env) {
    let w = &e.w;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let http = w.http.clone();
        let url = format!("{}/v1/locks/c-race/acquire", w.base());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&json!({"owner": format!("o{i}"), "ttl_ms": 10_000}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => granted += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(granted, 1, "exactly one of 24 racing owners holds the lock");
}

async fn fences(e: &Env) {
    let w = &e.w;
    let (_, a) = w.acquire("c-f", "alice", 100, 0).await;
    let ta = token(&a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, b) = w.acquire("c-f", "bob", 5_000, 0).await;
    let tb = token(&b);
    let (s, v) = w.fence("res-f", tb).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("accepted")));
    let (s, v) = w.fence("res-f", tb).await;
    assert_eq!(s, 200, "the same holder may write again: {v}");
    let (s, v) = w.fence("res-f", ta).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("stale_token")));
    assert_eq!(v["highest"].as_i64(), Some(tb));
}

/// One test per case and backend (`lock::fences::redis`, …): a failing case hides no other,
/// and each runs on servers of its own.
macro_rules! on_every_backend {
    ($($case:ident => $run:path),* $(,)?) => {$(
        mod $case {
            on_every_backend!(@backends $run; sqlite, postgres, redis, redis_cluster);
        }
    )*};
    (@backends $run:path; $($backend:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $backend() {
            let e = crate::conformance::$backend().await;
            $run(&e).await;
        }
    )*};
}

mod lock {
    on_every_backend! {
        acquire_contract => crate::conformance::acquire_contract,
        extend_and_expiry => crate::conformance::extend_and_expiry,
        wait_is_fifo => crate::conformance::wait_is_fifo,
        contention_grants_one => crate::conformance::contention_grants_one,
        fences => crate::conformance::fences,
        max_hold_caps_renewal => crate::conformance::hold::max_hold_caps_renewal,
        shared_readers_and_writers => crate::conformance::shared::readers_and_writers,
        groups_all_or_nothing => crate::conformance::group::all_or_nothing,
        hierarchy => crate::conformance::tree::hierarchy,
    }
}

mod semaphores {
    on_every_backend! {
        contract => crate::conformance::semaphore::contract,
        a_multi_permit_waiter_waits_for_its_whole_request =>
            crate::conformance::semaphore::a_multi_permit_waiter_waits_for_its_whole_request,
    }
}

mod idempotency {
    on_every_backend! {
        contract => crate::conformance::idem::contract,
        fail_and_lease_expiry => crate::conformance::idem::fail_and_lease_expiry,
        one_of_forty_starts => crate::conformance::idem::one_of_forty_starts,
        wait_returns_the_result => crate::conformance::idem::wait_returns_the_result,
    }
}

mod reservation {
    on_every_backend! {
        thousand_buyers_for_a_hundred => crate::conformance::reserve::thousand_buyers_for_a_hundred,
        hold_lifecycle => crate::conformance::reserve::hold_lifecycle,
        holds_expire_back_to_stock => crate::conformance::reserve::holds_expire_back_to_stock,
        idempotency_key_returns_the_same_reservation =>
            crate::conformance::reserve::idempotency_key_returns_the_same_reservation,
    }
}

mod causal_stream {
    on_every_backend! {
        priority_never_reorders_commits => crate::conformance::stream::priority_never_reorders_commits,
        conflicts_gaps_and_review => crate::conformance::stream::conflicts_gaps_and_review,
        replay_fences => crate::conformance::stream::replay_fences,
        intake_is_idempotent => crate::conformance::stream::intake_is_idempotent,
        expired_leases_return_to_the_queue => crate::conformance::stream::expired_leases_return_to_the_queue,
    }
}
