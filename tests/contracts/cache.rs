//! The cache through the real binary on real servers (DESIGN §4.8): a stampede over three
//! instances runs the loader once per lease window (on both tiers), a killed leaseholder hands
//! over, early recompute keeps a hot key from ever missing, a put under a voided lease stores
//! nothing, invalidating a tag costs the same over 100 000 entries as over one and their bytes
//! come back, and invalidations made while failed over are honoured after fail-back with no
//! SQL statement per read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{fast_failover, Postgres, Redis, Warden};
use serde_json::{json, Value};

const SQL: &str = "warden_cache_sql_statements_total";

async fn put(w: &Warden, path: &str, body: Value) -> (u16, Value) {
    w.send(reqwest::Method::PUT, path, Some(body)).await
}

async fn fetch(w: &Warden, path: &str, lease_ms: i64) -> (u16, Value) {
    w.post(&format!("{path}/fetch"), json!({ "lease_ms": lease_ms }))
        .await
}

/// One caller of a read-through: fetches until it has the value, loading it (for `load`)
/// when it gets the lease. Counts its loads in `loads`. The lease (10 s) outlasts the load
/// and the put queued behind a stampede on two loaded cores (a clean-clone run saw a 2 s
/// lease lapse before the put landed).
async fn read_through(w: &Warden, path: &str, load: Duration, loads: &AtomicUsize) -> Value {
    loop {
        let (s, v) = fetch(w, path, 10_000).await;
        match v["state"].as_str() {
            Some("hit") | Some("stale") => return v["value"].clone(),
            Some("miss_lease") | Some("refresh") => {
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(load).await;
                let token = v["lease_token"].as_i64().unwrap();
                let body = json!({"value": {"loaded": true}, "ttl_ms": 60_000,
                    "lease_token": token, "compute_ms": load.as_millis() as i64});
                let (s, p) = put(w, path, body).await;
                assert_eq!(s, 200, "{p}");
                return json!({"loaded": true});
            }
            Some("miss_wait") => {
                let ms = v["retry_after_ms"].as_i64().unwrap().clamp(1, 100);
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
            }
            _ => panic!("{s} {v}"),
        }
    }
}

/// The sum of every series of counter `name` in a Prometheus text.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Three instances on one database (and Redis, if given), with a Redis timeout and a tier
/// lease a stampede on two cores does not outlast (the defaults).
fn three(pg: &Postgres, redis: Option<String>) -> Vec<Arc<Warden>> {
    let mut env = fast_failover(pg, redis);
    env.push(("WARDEN_REDIS_TIMEOUT_MS", "2000".into()));
    env.push(("WARDEN_TIER_LEASE_MS", "2000".into()));
    (0..3).map(|_| Arc::new(Warden::start(&env))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stampede_runs_the_loader_once_and_a_dead_leaseholder_hands_over() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let ws = three(&pg, Some(redis.url()));
    for w in &ws {
        w.wait_ready_on("redis", Duration::from_secs(10)).await;
    }
    // The hot key expired (never there): 1 000 callers at once over three instances, a
    // 200 ms loader.
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let (w, loads) = (ws[i % 3].clone(), loads.clone());
            tokio::spawn(async move {
                read_through(&w, "/v1/cache/hot/item", Duration::from_millis(200), &loads).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), json!({"loaded": true}));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "the loader ran once");
    let (_, stats) = ws[0].get("/v1/cache/hot/stats").await;
    assert_eq!(stats["leases"], 1, "{stats}");

    // A leaseholder that dies never puts: the next caller waits, then gets the lease once
    // it lapses.
    let (_, a) = fetch(&ws[0], "/v1/cache/hot/orphan", 300).await;
    assert_eq!(a["state"], "miss_lease", "{a}");
    let (s, b) = fetch(&ws[1], "/v1/cache/hot/orphan", 300).await;
    assert_eq!((s, b["state"].as_str()), (202, Some("miss_wait")), "{b}");
    let wait = b["retry_after_ms"].as_i64().unwrap();
    assert!((1..=300).contains(&wait), "{b}");
    tokio::time::sleep(Duration::from_millis(wait as u64 + 20)).await;
    let (_, c) = fetch(&ws[2], "/v1/cache/hot/orphan", 300).await;
    assert_eq!(c["state"], "miss_lease", "handed over: {c}");
    assert!(
        c["lease_token"].as_i64() > a["lease_token"].as_i64(),
        "tokens grow"
    );
    // The dead holder's late put is refused.
    let late = json!({"value": 1, "ttl_ms": 1000, "lease_token": a["lease_token"]});
    assert_eq!(put(&ws[0], "/v1/cache/hot/orphan", late).await.0, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_over_each_instance_loads_once_per_lease_window_and_writes_no_sql_per_read() {
    let pg = Postgres::database();
    let ws = three(&pg, None);
    for w in &ws {
        w.wait_ready_on("sql", Duration::from_secs(10)).await;
    }
    let sql_before = total(&ws[0].metrics().await, SQL);
    let loads = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_millis(1_500);
    let tasks: Vec<_> = (0..90)
        .map(|i| {
            let (w, loads) = (ws[i % 3].clone(), loads.clone());
            tokio::spawn(async move {
                while Instant::now() < stop {
                    let (s, v) = fetch(&w, "/v1/cache/hot/item", 500).await;
                    match v["state"].as_str() {
                        Some("miss_lease") => {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let body = json!({"value": 1, "ttl_ms": 60_000,
                                "lease_token": v["lease_token"]});
                            let (s, p) = put(&w, "/v1/cache/hot/item", body).await;
                            assert_eq!((s, p["kept"].as_bool()), (200, Some(false)), "{p}");
                        }
                        Some("miss_wait") => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        _ => panic!("{s} {v}"),
                    }
                    let (s, g) = w.get("/v1/cache/hot/item").await;
                    assert_eq!((s, g["mode"].as_str()), (404, Some("fallback")), "{g}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // 1.5 s of lease windows of 500 ms: at most 4 windows per instance.
    let n = loads.load(Ordering::SeqCst);
    assert!((3..=12).contains(&n), "{n} loads");
    let sql_after = total(&ws[0].metrics().await, SQL);
    assert_eq!(
        sql_after, sql_before,
        "no SQL statement for reads, fetches or puts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn early_recompute_keeps_a_hot_key_from_missing() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Arc::new(Warden::start(&fast_failover(&pg, Some(redis.url()))));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let path = "/v1/cache/hot/xfetch";
    let (_, v) = fetch(&w, path, 2_000).await;
    let body = json!({"value": 0, "ttl_ms": 2_000, "lease_token": v["lease_token"],
        "compute_ms": 100});
    assert_eq!(put(&w, path, body).await.0, 200);
    let states = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Instant::now() + Duration::from_millis(5_000);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (w, states) = (w.clone(), states.clone());
            tokio::spawn(async move {
                while Instant::now() < stop {
                    let (_, v) = fetch(&w, path, 2_000).await;
                    let state = v["state"].as_str().unwrap_or("?").to_owned();
                    if state == "refresh" {
                        let w = w.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let body = json!({"value": 1, "ttl_ms": 2_000,
                                "lease_token": v["lease_token"], "compute_ms": 100});
                            assert_eq!(put(&w, path, body).await.0, 200);
                        });
                    }
                    states.lock().unwrap().push(state);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let states = states.lock().unwrap();
    let count = |s: &str| states.iter().filter(|x| *x == s).count();
    assert!(
        count("refresh") >= 2,
        "refreshed before each expiry: {}",
        count("refresh")
    );
    assert_eq!(
        count("miss_lease") + count("miss_wait"),
        0,
        "no miss in {} reads ({} hits)",
        states.len(),
        count("hit")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_under_a_voided_lease_stores_nothing() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let path = "/v1/cache/catalog/p1";
    // A takes the lease and reads v1 from the source; the source moves to v2 and tag T is
    // invalidated; A's put answers 409 and the next read never returns v1.
    let (_, a) = fetch(&w, path, 5_000).await;
    assert_eq!(a["state"], "miss_lease");
    let (s, i) = w
        .post("/v1/cache/catalog/tags/T/invalidate", json!({}))
        .await;
    assert_eq!((s, i["state"].as_str()), (200, Some("invalidated")));
    let stale_set = json!({"value": "v1", "ttl_ms": 60_000, "tags": ["T"],
        "lease_token": a["lease_token"]});
    let (s, p) = put(&w, path, stale_set).await;
    assert_eq!((s, p["code"].as_str()), (409, Some("lease_invalid")), "{p}");
    let (s, g) = w.get(&format!("{path}?allow_stale=true")).await;
    assert_eq!((s, g["state"].as_str()), (404, Some("miss")), "{g}");
    // A delete voids a lease too; the next lease stores.
    let (_, b) = fetch(&w, path, 5_000).await;
    assert_eq!(b["state"], "miss_lease", "{b}");
    assert_eq!(w.send(reqwest::Method::DELETE, path, None).await.0, 200);
    let body =
        json!({"value": "v2", "ttl_ms": 60_000, "tags": ["T"], "lease_token": b["lease_token"]});
    assert_eq!(put(&w, path, body).await.0, 409);
    let (_, c) = fetch(&w, path, 5_000).await;
    let body =
        json!({"value": "v2", "ttl_ms": 60_000, "tags": ["T"], "lease_token": c["lease_token"]});
    assert_eq!(put(&w, path, body.clone()).await.0, 200);
    let (s, g) = w.get(path).await;
    assert_eq!((s, g["value"].as_str()), (200, Some("v2")), "{g}");
    // Values compress when large and come back whole.
    let big = "x".repeat(10_000);
    let body = json!({"value": big, "ttl_ms": 60_000});
    assert_eq!(put(&w, "/v1/cache/catalog/big", body).await.0, 200);
    let (_, g) = w.get("/v1/cache/catalog/big").await;
    assert_eq!(g["value"].as_str().map(str::len), Some(10_000));
    let (_, st) = w.get("/v1/cache/catalog/stats").await;
    assert!(st["compression_ratio"].as_f64().unwrap() > 5.0, "{st}");
}

/// Warms `n` entries of `ns` tagged `tag`, 1 000 per call.
async fn warm(w: &Warden, ns: &str, tag: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"key": format!("{tag}-{i}"), "value": i, "ttl_ms": 600_000, "tags": [tag]}))
            .collect();
        let (s, v) = w
            .post(
                &format!("/v1/cache/{ns}/warm"),
                json!({ "entries": entries }),
            )
            .await;
        assert_eq!(
            (s, v["count"].as_u64()),
            (200, Some(chunk.len() as u64)),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_a_tag_costs_the_same_over_many_entries_and_their_bytes_come_back() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let mut env = fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_CACHE_RECLAIM_EVERY_MS", "100".into()));
    env.push(("WARDEN_CACHE_RECLAIM_BATCH", "5000".into()));
    // 100 warm-ups of 1 000 entries on a loaded two-core machine can stall a Redis call past
    // the fast-failover 100 ms timeout: this test measures invalidation, not failover.
    env.retain(|(k, _)| *k != "WARDEN_REDIS_TIMEOUT_MS");
    env.push(("WARDEN_REDIS_TIMEOUT_MS", "2000".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    warm(&w, "big", "many", 100_000).await;
    warm(&w, "big", "one", 1).await;
    let (_, before) = w.get("/v1/cache/big/stats").await;
    assert_eq!(before["entries"], 100_001, "{before}");
    let time = |tag: &'static str| {
        let w = &w;
        async move {
            let t = Instant::now();
            let (s, _) = w
                .post(&format!("/v1/cache/big/tags/{tag}/invalidate"), json!({}))
                .await;
            assert_eq!(s, 200);
            t.elapsed()
        }
    };
    let one = time("one").await;
    let many = time("many").await;
    // O(1): one stamp either way (generous against a noisy machine: an O(n) walk of 100 000
    // entries takes far longer than this bound).
    assert!(
        many < one * 10 + Duration::from_millis(50),
        "100 000 entries: {many:?}, one: {one:?}"
    );
    assert_eq!(w.get("/v1/cache/big/many-7").await.0, 404);
    // The reclaimer gives the bytes back within the stated bound: 100 000 / 5 000 per
    // 100 ms pass = 2 s (plus slack).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, st) = w.get("/v1/cache/big/stats").await;
        if st["entries"] == 0 && st["bytes"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not reclaimed: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_made_while_failed_over_are_honoured_after_fail_back() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let mut env = fast_failover(&pg, Some(redis.url()));
    // Applied invalidations are forgotten 300 ms after: the table must empty by itself.
    env.push(("WARDEN_CACHE_INVALIDATIONS_KEPT_MS", "300".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    for key in ["u1", "u2", "v1"] {
        let tags = if key.starts_with('u') {
            vec!["U"]
        } else {
            vec!["V"]
        };
        let body = json!({"value": key, "ttl_ms": 600_000, "tags": tags});
        assert_eq!(put(&w, &format!("/v1/cache/shop/{key}"), body).await.0, 200);
    }
    assert_eq!(w.get("/v1/cache/shop/u1").await.1["state"], "hit");
    // Redis stops answering (its data kept); the tier fails over to SQL.
    redis.stall(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.acquire("probe", "t", 1_000, 0).await.1["mode"] != "fallback" {
        assert!(Instant::now() < deadline, "never failed over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sql = |text: &str| total(text, SQL);
    let before = sql(&w.metrics().await);
    for _ in 0..50 {
        let (s, g) = w.get("/v1/cache/shop/u1").await;
        assert_eq!((s, g["mode"].as_str()), (404, Some("fallback")), "{g}");
    }
    assert_eq!(sql(&w.metrics().await), before, "no SQL statement per read");
    let (s, v) = w.post("/v1/cache/shop/tags/U/invalidate", json!({})).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    assert_eq!(
        sql(&w.metrics().await),
        before + 1.0,
        "one statement per invalidation"
    );
    // Back on Redis, which still holds the U entries: none is served, not even stale; the
    // V entry, written before the switch, is stale at best.
    redis.stall(false);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    for key in ["u1", "u2"] {
        let (s, g) = w
            .get(&format!("/v1/cache/shop/{key}?allow_stale=true"))
            .await;
        assert_eq!((s, g["state"].as_str()), (404, Some("miss")), "{key}: {g}");
    }
    let (s, g) = w.get("/v1/cache/shop/v1?allow_stale=true").await;
    assert_eq!((s, g["state"].as_str()), (200, Some("stale")), "{g}");
    let (s, g) = w.get("/v1/cache/shop/v1").await;
    assert_eq!(
        (s, g["state"].as_str()),
        (404, Some("miss")),
        "never a hit: {g}"
    );
    // The invalidation was applied to Redis; once kept long enough, SQL forgets it.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&pg.url()).await.unwrap();
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM warden_cache_invalidations")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows().await > 0 {
        assert!(
            Instant::now() < deadline,
            "applied invalidations never forgotten"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        total(
            &w.metrics().await,
            "warden_cache_sql_statements_total{statement=\"forget\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let ok = json!({"value": 1, "ttl_ms": 1000});
    assert_eq!(put(&w, "/v1/cache/n/k", ok).await.0, 200);
    let cases = [
        (
            reqwest::Method::PUT,
            "/v1/cache/n/k",
            json!({"value": 2, "ttl_ms": 0}),
            422,
            "out_of_range",
        ),
        (
            reqwest::Method::PUT,
            "/v1/cache/n/k",
            json!({"value": 2, "ttl_ms": 10, "stale_ttl_ms": -1}),
            422,
            "out_of_range",
        ),
        (
            reqwest::Method::PUT,
            "/v1/cache/n/k",
            json!({"value": 2, "ttl_ms": 10, "tags": (0..17).map(|i| i.to_string()).collect::<Vec<_>>()}),
            422,
            "too_many_tags",
        ),
        (
            reqwest::Method::PUT,
            "/v1/cache/n/k",
            json!({"value": 2, "ttl_ms": 10, "tags": ["a\nb"]}),
            422,
            "invalid_tag",
        ),
        (
            reqwest::Method::PUT,
            "/v1/cache/n/k",
            json!({"value": 2, "ttl_ms": 10, "lease_token": 0}),
            422,
            "out_of_range",
        ),
        (
            reqwest::Method::PUT,
            "/v1/cache/n/k",
            json!({"value": "x".repeat(1_100_000), "ttl_ms": 10}),
            413,
            "value_too_large",
        ),
        (
            reqwest::Method::PUT,
            "/v1/cache/bad%20ns/k",
            json!({"value": 2, "ttl_ms": 10}),
            400,
            "invalid_namespace",
        ),
        (
            reqwest::Method::POST,
            "/v1/cache/n/k/fetch",
            json!({"lease_ms": 0}),
            422,
            "out_of_range",
        ),
        (
            reqwest::Method::POST,
            "/v1/cache/n/warm",
            json!({"entries": []}),
            422,
            "out_of_range",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (s, v) = w.send(method, path, Some(body)).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}: {v}");
    }
    let (s, g) = w.get("/v1/cache/n/k").await;
    assert_eq!((s, g["value"].as_i64()), (200, Some(1)), "unchanged: {g}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_keeps_to_its_max_bytes_by_evicting_its_oldest() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let mut env = fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_CACHE_MAX_BYTES", "5000".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    // 20 values of about 1 000 bytes (under the compression threshold) into 5 000 bytes.
    for i in 0..20 {
        let body = json!({"value": format!("{i:04}{}", "y".repeat(990)), "ttl_ms": 600_000});
        let (s, v) = put(&w, &format!("/v1/cache/small/k{i}"), body).await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, st) = w.get("/v1/cache/small/stats").await;
    assert!(st["bytes"].as_i64().unwrap() <= 5_000, "{st}");
    assert!(st["evictions"].as_i64().unwrap() >= 15, "{st}");
    assert_eq!(
        w.get("/v1/cache/small/k0").await.0,
        404,
        "the oldest went first"
    );
    assert_eq!(
        w.get("/v1/cache/small/k19").await.0,
        200,
        "the newest stays"
    );
    // Another namespace is untouched by this one's limit.
    let body = json!({"value": "z".repeat(990), "ttl_ms": 600_000});
    assert_eq!(put(&w, "/v1/cache/other/a", body).await.0, 200);
    assert_eq!(w.get("/v1/cache/other/a").await.0, 200);
    let evictions = total(&w.metrics().await, "warden_cache_evictions_total");
    assert!(evictions >= 15.0, "{evictions}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_runs_on_a_redis_cluster() {
    let pg = Postgres::database();
    let cluster = crate::support::RedisCluster::start();
    let w = Warden::start(&fast_failover(&pg, Some(cluster.url())));
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    // Namespaces land on different masters; each step reaches an entry's tags and its
    // namespace's bookkeeping in one slot.
    for ns in ["a", "b", "c", "d", "e", "f"] {
        let base = format!("/v1/cache/{ns}");
        let (_, l) = fetch(&w, &format!("{base}/k"), 2_000).await;
        assert_eq!(l["state"], "miss_lease", "{ns}: {l}");
        let body = json!({"value": ns, "ttl_ms": 60_000, "tags": ["t", "u"],
            "lease_token": l["lease_token"]});
        assert_eq!(put(&w, &format!("{base}/k"), body).await.0, 200, "{ns}");
        assert_eq!(w.get(&format!("{base}/k")).await.1["state"], "hit", "{ns}");
        let (s, _) = w
            .post(&format!("{base}/tags/u/invalidate"), json!({}))
            .await;
        assert_eq!(s, 200);
        assert_eq!(w.get(&format!("{base}/k")).await.0, 404, "{ns}");
        assert_eq!(
            w.get(&format!("{base}/stats")).await.1["entries"],
            0,
            "{ns}"
        );
    }
}
