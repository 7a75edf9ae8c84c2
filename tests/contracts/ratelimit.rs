//! Rate limits through the real binary on real servers (DESIGN §4.5, G11): exact at high
//! rates on Redis and on a Redis Cluster whose scripts are flushed mid-run, multi-window
//! checks where a refusal consumes nothing, live policy changes, memory that empties itself,
//! shadow and fail modes, `local` mode after Redis dies with SQL left alone, and a fail-back
//! that releases no burst.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{fast_failover, metric, Postgres, Redis, RedisCluster, Warden};
use serde_json::{json, Value};

/// `PUT /v1/ratelimit/policies/{name}` with `If-Match` when given: status, body, `ETag`.
async fn put_policy(w: &Warden, name: &str, body: Value, if_match: Option<&str>) -> (u16, Value) {
    let mut req = w
        .http
        .put(format!("{}/v1/ratelimit/policies/{name}", w.base()))
        .json(&body);
    if let Some(v) = if_match {
        req = req.header("if-match", v);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// One check: status, body and the rate-limit headers (`ratelimit-policy`, `ratelimit`,
/// `retry-after`).
async fn check(w: &Warden, policy: &str, subject: &str, cost: i64) -> (u16, Value, [String; 3]) {
    let r = w
        .http
        .post(format!(
            "{}/v1/ratelimit/{policy}/{subject}/check",
            w.base()
        ))
        .json(&json!({ "cost": cost }))
        .send()
        .await
        .expect("request");
    let h = |n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let headers = [h("ratelimit-policy"), h("ratelimit"), h("retry-after")];
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(Value::Null),
        headers,
    )
}

fn gcra(name: &str, rate: i64, period_ms: i64, burst: i64) -> Value {
    json!({"name": name, "algorithm": "gcra", "rate": rate, "period_ms": period_ms, "burst": burst})
}

/// Pg + Redis (or a cluster) + Warden on Redis, with room for a debug build under load.
async fn on_redis(redis_url: String) -> (Postgres, Warden) {
    let pg = Postgres::database();
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis_url),
        ("WARDEN_TIER_LEASE_MS", "1500".into()),
        ("WARDEN_REDIS_TIMEOUT_MS", "2000".into()),
    ]);
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    (pg, w)
}

/// An admitted check as the client saw it: sent at, answered at (since the run began), cost.
type Admission = (f64, f64, i64);

/// `clients` clients check `cost` units each, as fast as they can, for `run`: the
/// admissions, the refusals (same shape), and any other answer (status, body).
async fn hammer(
    w: &Arc<Warden>,
    policy: &str,
    clients: usize,
    cost: i64,
    run: Duration,
    mid_run: impl FnOnce() + Send + 'static,
) -> (Vec<Admission>, Vec<Admission>, Vec<(u16, Value)>) {
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let others = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (w, admitted, others, refused) =
            (w.clone(), admitted.clone(), others.clone(), refused.clone());
        let policy = policy.to_owned();
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < run {
                let sent = start.elapsed().as_secs_f64();
                let (s, v, _) = check(&w, &policy, "hot", cost).await;
                let got = start.elapsed().as_secs_f64();
                match (s, v["state"].as_str()) {
                    (200, Some("allowed")) => {
                        assert_eq!(v["mode"], "primary", "client {c}: {v}");
                        admitted.lock().unwrap().push((sent, got, cost));
                    }
                    (429, Some("limited")) => {
                        assert_eq!(v["mode"], "primary", "client {c}: {v}");
                        refused.lock().unwrap().push((sent, got, cost));
                    }
                    _ => others.lock().unwrap().push((s, v)),
                }
            }
        }));
    }
    tokio::time::sleep(run / 2).await;
    mid_run();
    for t in tasks {
        t.await.unwrap();
    }
    let admitted = admitted.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    let others = others.lock().unwrap().clone();
    (admitted, refused, others)
}

/// Asserts that no window of `window` s saw more than `rate·window + burst` units admitted.
/// An admission happened somewhere between its send and its answer, so counting those lying
/// wholly inside a window gives a lower bound of what the server admitted in it: a bound that
/// this exceeds is a bound the server exceeded.
fn assert_never_above(admitted: &[Admission], rate: f64, burst: i64, window: f64, total: f64) {
    let mut from = 0.0;
    while from + window <= total {
        let to = from + window;
        let units: i64 = admitted
            .iter()
            .filter(|(s, g, _)| *s >= from && *g <= to)
            .map(|(_, _, c)| c)
            .sum();
        let bound = (rate * window).floor() as i64 + burst + 1;
        assert!(
            units <= bound,
            "{units} units in [{from:.2}, {to:.2}] s > {bound}"
        );
        from += 0.1;
    }
}

/// The burst of [`precise_under_load`]: 50 ms of the rate, so that a pause of the clients
/// shorter than that (a debug build on two loaded cores) wastes none of the limit.
const BURST: i64 = 1_000;

/// 20 000/s with burst [`BURST`] at 64 clients: never more than `20 000·t + BURST`, and near
/// that while demand exceeds it (each check costs 25 units, so even a debug build on two loaded
/// cores asks for more than the limit).
async fn precise_under_load(w: Arc<Warden>, mid_run: impl FnOnce() + Send + 'static) {
    let policy = json!({"limits": [gcra("second", 20_000, 1_000, BURST)]});
    assert_eq!(put_policy(&w, "api", policy, None).await.0, 200);
    let run = Duration::from_secs(5);
    let started = Instant::now();
    let (admitted, refused, others) = hammer(&w, "api", 64, 25, run, mid_run).await;
    let total = started.elapsed().as_secs_f64();
    assert!(
        others.is_empty(),
        "answers other than allowed/limited: {others:?}"
    );
    let units: i64 = admitted.iter().map(|a| a.2).sum();
    assert!(
        !refused.is_empty(),
        "the limit never bound: {units} units in {total:.1} s"
    );
    let bound = (20_000.0 * total) as i64 + BURST + 1;
    assert!(units <= bound, "{units} units > {bound}");
    assert_never_above(&admitted, 20_000.0, BURST, 1.0, total);
    // The limiter admitted close to what demand allowed: in each 100 ms slot, the units asked
    // for or the limit's share, whichever is less. A slot where a loaded machine stalled the
    // clients asks for little and so expects little; the limiter cannot bank it past the burst.
    let admissible = admissible_units(&admitted, &refused, 20_000.0, 0.1, total);
    assert!(
        units as f64 >= 0.8 * admissible,
        "{units} units admitted where demand allowed {admissible:.0}"
    );
    eprintln!(
        "{units} units admitted of {admissible:.0} admissible, {} checks refused in {total:.2} s",
        refused.len()
    );
}

/// What a limiter of `rate` units/s should have admitted: per `slot` s, the units decided in
/// it (admitted or refused, placed at their answer) capped at `rate·slot`.
fn admissible_units(
    admitted: &[Admission],
    refused: &[Admission],
    rate: f64,
    slot: f64,
    total: f64,
) -> f64 {
    let last = (total / slot) as usize;
    let mut asked = vec![0.0; last + 1];
    for (_, got, cost) in admitted.iter().chain(refused) {
        asked[((got / slot) as usize).min(last)] += *cost as f64;
    }
    asked.iter().map(|a| a.min(rate * slot)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_at_twenty_thousand_a_second_on_redis() {
    let redis = Redis::start();
    let (_pg, w) = on_redis(redis.url()).await;
    precise_under_load(Arc::new(w), || {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_on_a_cluster_whose_scripts_are_flushed_mid_run() {
    let cluster = Arc::new(RedisCluster::start());
    let (_pg, w) = on_redis(cluster.url()).await;
    let flushing = cluster.clone();
    precise_under_load(Arc::new(w), move || {
        for out in flushing.cli_all(&["SCRIPT", "FLUSH"]) {
            assert!(out.is_some_and(|o| o.contains("OK")), "SCRIPT FLUSH failed");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighteen_a_minute_several_windows_and_live_changes() {
    let redis = Redis::start();
    let (_pg, w) = on_redis(redis.url()).await;
    let policy = json!({"limits": [
        gcra("minute", 18, 60_000, 18),
        {"name": "day", "algorithm": "sliding_log", "rate": 100, "period_ms": 86_400_000}
    ]});
    let (s, saved) = put_policy(&w, "clinic", policy.clone(), None).await;
    assert_eq!(
        (s, saved["state"].as_str()),
        (200, Some("policy_saved")),
        "{saved}"
    );
    assert_eq!(saved["version"], 1);

    for i in 0..18 {
        let (s, v, h) = check(&w, "clinic", "c7", 1).await;
        assert_eq!((s, v["state"].as_str()), (200, Some("allowed")), "{i}: {v}");
        assert_eq!(h[0], "\"minute\";q=18;w=60, \"day\";q=100;w=86400");
        assert_eq!(v["limits"][1]["remaining"], 100 - 1 - i, "{v}");
    }
    let (s, v, h) = check(&w, "clinic", "c7", 1).await;
    assert_eq!((s, v["state"].as_str()), (429, Some("limited")), "{v}");
    let retry = v["retry_after_ms"].as_i64().unwrap();
    assert!(
        (3_000..=3_334).contains(&retry),
        "one every 3.33 s: {retry}"
    );
    assert_eq!(h[2], "4", "Retry-After rounds up to whole seconds");
    assert!(h[1].starts_with("\"minute\";r=0;"), "{}", h[1]);

    // The refusal consumed nothing: the day limit still has 82, and so does a peek.
    let (s, peek) = w.get("/v1/ratelimit/clinic/c7").await;
    assert_eq!((s, peek["state"].as_str()), (200, Some("limit_status")));
    assert_eq!(peek["limits"][1]["remaining"], 82, "{peek}");
    // A cost above a capacity can never pass: 422, nothing consumed.
    let (s, v, _) = check(&w, "clinic", "c7", 19).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("cost_exceeds_capacity")),
        "{v}"
    );
    assert_eq!(
        w.get("/v1/ratelimit/clinic/c7").await.1["limits"][1]["remaining"],
        82
    );

    // A stale If-Match is refused, a current one applies on the very next check.
    let doubled = json!({"limits": [
        gcra("minute", 36, 60_000, 36),
        {"name": "day", "algorithm": "sliding_log", "rate": 100, "period_ms": 86_400_000}
    ]});
    let (s, v) = put_policy(&w, "clinic", doubled.clone(), Some("\"7\"")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (412, Some("version_mismatch")),
        "{v}"
    );
    let (s, v) = put_policy(&w, "clinic", doubled, Some("\"1\"")).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(2)), "{v}");
    let (s, v, _) = check(&w, "clinic", "c7", 1).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("allowed")),
        "36/min applies: {v}"
    );
    assert_eq!(
        v["limits"][0]["remaining"],
        36 - 19,
        "the 18 used are kept: {v}"
    );

    // Back to 18: the 19 used are kept as far as 18 allows (remaining 0, never negative).
    let (s, _) = put_policy(&w, "clinic", policy, Some("\"2\"")).await;
    assert_eq!(s, 200);
    let (s, v, _) = check(&w, "clinic", "c7", 1).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["limits"][0]["remaining"], 0, "{v}");

    // One every 3.33 s: after the wait it passes, and only once.
    tokio::time::sleep(Duration::from_millis(
        v["retry_after_ms"].as_u64().unwrap() + 50,
    ))
    .await;
    assert_eq!(check(&w, "clinic", "c7", 1).await.0, 200);
    assert_eq!(check(&w, "clinic", "c7", 1).await.0, 429);

    // Refund gives units back, never above capacity; reset forgets the subject.
    let (s, v) = w
        .post("/v1/ratelimit/clinic/c7/refund", json!({"cost": 500}))
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("refunded")), "{v}");
    assert_eq!(v["limits"][0]["remaining"], 18, "{v}");
    assert_eq!(v["limits"][1]["remaining"], 100, "{v}");
    let (s, v) = w.post("/v1/ratelimit/clinic/c7/reset", json!({})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("reset")), "{v}");

    // An override gives one clinic its own limits.
    let (s, v) = w
        .http
        .put(format!(
            "{}/v1/ratelimit/policies/clinic/overrides/c9",
            w.base()
        ))
        .json(&json!({"limits": [gcra("minute", 2, 60_000, 2)]}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .unwrap();
    assert_eq!(s, 200, "{v:?}");
    assert_eq!(check(&w, "clinic", "c9", 1).await.0, 200);
    assert_eq!(check(&w, "clinic", "c9", 1).await.0, 200);
    let (s, v, h) = check(&w, "clinic", "c9", 1).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(h[0], "\"minute\";q=2;w=60");
    assert_eq!(
        check(&w, "clinic", "c10", 1).await.0,
        200,
        "others keep the policy"
    );

    let metrics = w.metrics().await;
    let limited = metric(
        &metrics,
        "warden_ratelimit_decisions_total{policy=\"clinic\",state=\"limited\",mode=\"primary\"}",
    );
    assert!(limited >= 3.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_boundary_admits_no_more_and_idle_limiters_leave_no_key() {
    let redis = Redis::start();
    let (_pg, w) = on_redis(redis.url()).await;
    let policy = json!({"limits": [
        {"name": "log", "algorithm": "sliding_log", "rate": 5, "period_ms": 1_000},
        gcra("bucket", 10, 1_000, 10)
    ]});
    assert_eq!(put_policy(&w, "edge", policy, None).await.0, 200);
    // Five at the end of one second and five at the start of the next: a fixed window would
    // take all ten; the log admits none of the second five until the first five age out.
    let first = Instant::now();
    for _ in 0..5 {
        assert_eq!(check(&w, "edge", "bot", 1).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut late = 0;
    while first.elapsed() < Duration::from_millis(950) {
        if check(&w, "edge", "bot", 1).await.0 == 200 {
            late += 1;
        }
    }
    assert_eq!(late, 0, "a window admitted more than 5");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (s, v, _) = check(&w, "edge", "bot", 1).await;
    assert_eq!(s, 200, "{v}");

    // After twice the longest window with no checks, no limiter key is left.
    for i in 0..20 {
        check(&w, "edge", &format!("s{i}"), 1).await;
    }
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let keys = redis.cli(&["--scan", "--pattern", "warden:{rl*"]).unwrap();
    assert!(keys.trim().is_empty(), "limiter keys left: {keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_counts_but_never_refuses_and_fail_modes_hold_with_both_tiers_down() {
    let mut pg = Postgres::start();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let one = |extra: Value| {
        let mut p = json!({"limits": [gcra("minute", 1, 60_000, 1)]});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    assert_eq!(
        put_policy(&w, "shadowed", one(json!({"shadow": true})), None)
            .await
            .0,
        200
    );
    assert_eq!(check(&w, "shadowed", "u", 1).await.1["state"], "allowed");
    for _ in 0..3 {
        let (s, v, _) = check(&w, "shadowed", "u", 1).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (200, Some("shadow_limited")),
            "{v}"
        );
    }
    let metrics = w.metrics().await;
    let series = "warden_ratelimit_decisions_total{policy=\"shadowed\",state=\"shadow_limited\",mode=\"primary\"}";
    assert_eq!(metric(&metrics, series), 3.0, "{metrics}");

    let open = one(json!({"on_unavailable": "fail_open"}));
    assert_eq!(put_policy(&w, "open", open, None).await.0, 200);
    let closed = one(json!({"on_unavailable": "fail_closed"}));
    assert_eq!(put_policy(&w, "closed", closed, None).await.0, 200);
    assert_eq!(check(&w, "open", "u", 1).await.0, 200);
    assert_eq!(check(&w, "closed", "u", 1).await.0, 200);
    // A second instance never checks these policies before the outage: it holds every saved
    // policy from its background refresh, so their fail modes hold there too.
    let mut env2 = fast_failover(&pg, Some(redis.url()));
    env2.push(("WARDEN_RATELIMIT_POLICY_CACHE_MS", "200".into()));
    let w2 = Warden::start(&env2);
    w2.wait_ready_on("redis", Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&w2.metrics().await, "warden_ratelimit_policies_held") < 3.0 {
        assert!(Instant::now() < deadline, "the policies were never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    redis.kill();
    pg.stop();
    tokio::time::sleep(Duration::from_millis(800)).await; // the tier lease (400 ms) runs out
    let (s, v, _) = check(&w2, "open", "never-seen", 1).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("allowed_unchecked")),
        "an instance that never checked it: {v}"
    );
    let (s, v, _) = check(&w2, "closed", "never-seen", 1).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (503, Some("limit_failed_safe_block")),
        "an instance that never checked it: {v}"
    );
    drop(w2);
    let (s, v, _) = check(&w, "open", "u", 1).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("allowed_unchecked")),
        "{v}"
    );
    assert_eq!(v["mode"], "none");
    let (s, v, _) = check(&w, "closed", "u", 1).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (503, Some("limit_failed_safe_block")),
        "{v}"
    );
    assert!(v["reason"].is_string(), "{v}");
    let metrics = w.metrics().await;
    let series = "warden_ratelimit_decisions_total{policy=\"closed\",state=\"limit_failed_safe_block\",mode=\"none\"}";
    assert_eq!(metric(&metrics, series), 1.0, "{metrics}");
    pg.resume();
    redis.restart();

    // Back on Redis, then safe mode: no check is counted; each policy fails as it says.
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let (s, v) = w
        .post("/v1/guard/enter", json!({"reason": "rate-limit test"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v, _) = check(&w, "closed", "u2", 1).await;
        if s == 503 {
            assert_eq!(v["reason"], "safe_mode", "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "safe mode never reached the check: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v, _) = check(&w, "open", "u2", 1).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("allowed_unchecked")),
        "{v}"
    );
    assert_eq!(v["reason"], "safe_mode", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_saved_on_one_instance_applies_on_another_within_the_cache_time() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let env = [
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_RATELIMIT_POLICY_CACHE_MS", "300".to_string()),
        ("WARDEN_RATELIMIT_MAX_OVERRIDES", "2".to_string()),
        // Counts shared on Redis are the point: a loaded machine must not trip the breaker
        // (and move an instance to its own local counts) with the 50 ms default.
        ("WARDEN_REDIS_TIMEOUT_MS", "2000".to_string()),
    ];
    let a = Warden::start(&env);
    let b = Warden::start(&env);
    a.wait_ready_on("redis", Duration::from_secs(10)).await;
    b.wait_ready_on("redis", Duration::from_secs(10)).await;
    let one = json!({"limits": [gcra("minute", 1, 60_000, 1)]});
    assert_eq!(put_policy(&a, "shared", one, None).await.0, 200);
    assert_eq!(check(&b, "shared", "u", 1).await.0, 200);
    assert_eq!(
        check(&a, "shared", "u", 1).await.0,
        429,
        "one count for both"
    );
    let more = json!({"limits": [gcra("minute", 5, 60_000, 5)]});
    assert_eq!(put_policy(&a, "shared", more, Some("\"1\"")).await.0, 200);
    let saved = Instant::now();
    loop {
        let (s, v, _) = check(&b, "shared", "u", 1).await;
        if s == 200 {
            break;
        }
        assert!(
            saved.elapsed() < Duration::from_millis(1_500),
            "instance b still on the old policy: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Overrides are bounded (here to 2): a third subject is refused, a known one still saved.
    let put_override = |subject: &str| {
        let url = format!(
            "{}/v1/ratelimit/policies/shared/overrides/{subject}",
            a.base()
        );
        a.http
            .put(url)
            .json(&json!({"limits": [gcra("minute", 9, 60_000, 9)]}))
            .send()
    };
    for subject in ["o1", "o2", "o1"] {
        assert_eq!(put_override(subject).await.unwrap().status().as_u16(), 200);
    }
    let r = put_override("o3").await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "too_many_overrides", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_loss_moves_to_local_shares_and_fail_back_releases_no_burst() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let mut env = fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_RATELIMIT_FLUSH_EVERY_MS", "500".into()));
    let w = Arc::new(Warden::start(&env));
    let other = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    other.wait_ready_on("redis", Duration::from_secs(10)).await;
    // Each instance learns of the other at its next instance-lease renewal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.status().await["ratelimit"]["live_instances"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the second instance was never seen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let policy = json!({"limits": [gcra("second", 100, 1_000, 100)], "degraded_factor": 0.5});
    assert_eq!(put_policy(&w, "api", policy, None).await.0, 200);
    assert_eq!(check(&w, "api", "hot", 1).await.0, 200);

    // Drive the hot subject from 8 clients throughout; record every answer.
    let log: Arc<Mutex<Vec<(Instant, u16, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (w, log, stop) = (w.clone(), log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (s, v, _) = check(&w, "api", "hot", 1).await;
                let mode = v["mode"].as_str().unwrap_or("?").to_owned();
                log.lock().unwrap().push((Instant::now(), s, mode));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes_before = metric(
        &w.metrics().await,
        "warden_ratelimit_sql_writes_total{kind=\"usage\"}",
    );
    redis.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = w.status().await;
    let local_until = Instant::now();
    redis.restart();
    let restarted = Instant::now();
    let writes_after = metric(
        &w.metrics().await,
        "warden_ratelimit_sql_writes_total{kind=\"usage\"}",
    );
    // Wait for the first primary answer after the restart, then watch one more second.
    let deadline = Instant::now() + Duration::from_secs(20);
    let back = loop {
        let first = log
            .lock()
            .unwrap()
            .iter()
            .find(|(at, s, m)| *at > restarted && *s == 200 && m == "primary")
            .map(|e| e.0);
        if let Some(at) = first {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "never back on redis\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let log = log.lock().unwrap();
    assert!(
        log.iter().all(|(_, s, _)| *s == 200 || *s == 429),
        "a check failed: {:?}",
        log.iter().find(|(_, s, _)| *s != 200 && *s != 429)
    );

    // Local mode, once on SQL: two live instances share 0.5 of 100/s, so 25/s each with a
    // capacity of 25, starting with no burst.
    assert_eq!(status["ratelimit"]["mode"], "local", "{status}");
    assert_eq!(status["ratelimit"]["live_instances"], 2, "{status}");
    assert_eq!(status["ratelimit"]["factors"]["api"], 0.25, "{status}");
    let local: Vec<_> = log
        .iter()
        .filter(|(at, s, m)| *at > killed && *at <= local_until && *s == 200 && m == "local")
        .collect();
    let first_local = local.first().expect("answers went on in local mode").0;
    let span = (local_until - first_local).as_secs_f64();
    assert!(
        local.len() as f64 <= 25.0 * span + 2.0,
        "{} admitted locally in {span:.2} s\n{}",
        local.len(),
        w.tail_log()
    );
    assert!(
        local.len() >= 10,
        "local mode admitted almost nothing: {}",
        local.len()
    );
    // SQL saw aggregate flushes only: at most one per policy per flush (500 ms), not one per
    // check.
    let flushes = writes_after - writes_before;
    let budget = ((restarted - killed).as_secs_f64() / 0.5).ceil() + 2.0;
    assert!(flushes <= budget, "{flushes} usage writes > {budget}");
    assert!(flushes >= 1.0, "local decisions were never flushed");

    // Fail-back: Redis came back empty; the first second releases no burst above `burst`
    // (the ramp starts full but for one unit, at half the rate).
    let after_back = log
        .iter()
        .filter(|(at, s, m)| {
            *at >= back && *at < back + Duration::from_secs(1) && *s == 200 && m == "primary"
        })
        .count();
    assert!(
        after_back <= 100,
        "{after_back} admitted in the first second back"
    );
    assert!(
        after_back <= 60,
        "the ramp starts at half the rate: {after_back}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_and_checks_are_refused_and_change_nothing() {
    let redis = Redis::start();
    let (_pg, w) = on_redis(redis.url()).await;
    let good = json!({"limits": [gcra("minute", 18, 60_000, 18)]});
    assert_eq!(put_policy(&w, "p", good.clone(), None).await.0, 200);
    let limit = |over: Value| {
        let mut l = gcra("minute", 18, 60_000, 18);
        l.as_object_mut()
            .unwrap()
            .extend(over.as_object().unwrap().clone());
        json!({ "limits": [l] })
    };
    let cases = [
        (limit(json!({"rate": -1})), 422, "invalid_policy"),
        (limit(json!({"period_ms": 0})), 422, "invalid_policy"),
        (
            limit(json!({"algorithm": "fixed_window"})),
            422,
            "invalid_body",
        ),
        (limit(json!({"burst": 0})), 422, "invalid_policy"),
        (
            json!({"limits": [gcra("a", 1, 1000, 1), gcra("b", 1, 1000, 1), gcra("c", 1, 1000, 1), gcra("d", 1, 1000, 1), gcra("e", 1, 1000, 1)]}),
            422,
            "invalid_policy",
        ),
        (json!({"limits": []}), 422, "invalid_policy"),
        (
            json!({"limits": [gcra("m", 1, 1000, 1)], "degraded_factor": 2.0}),
            422,
            "invalid_policy",
        ),
        (
            json!({"limits": [gcra("m", 1, 1000, 1)], "surprise": 1}),
            422,
            "invalid_body",
        ),
        (json!([1, 2]), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let (s, v) = put_policy(&w, "p", body.clone(), None).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let (s, v) = put_policy(&w, "policies", good.clone(), None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("invalid_policy")),
        "{v}"
    );
    let (s, v) = put_policy(&w, "p", good.clone(), Some("three")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("invalid_if_match")),
        "{v}"
    );
    let (s, v) = w.get("/v1/ratelimit/policies/p").await;
    assert_eq!(
        (s, v["version"].as_i64()),
        (200, Some(1)),
        "nothing changed: {v}"
    );

    for (cost, code) in [(json!(0), "out_of_range"), (json!("1"), "invalid_body")] {
        let (s, v) = w
            .post("/v1/ratelimit/p/u/check", json!({ "cost": cost }))
            .await;
        assert_eq!((s, v["code"].as_str()), (422, Some(code)), "{v}");
    }
    let (s, v, _) = check(&w, "missing", "u", 1).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("unknown_policy")),
        "{v}"
    );
    let (s, v) = w.get("/v1/ratelimit/p/u").await;
    assert_eq!(
        v["limits"][0]["remaining"], 18,
        "nothing was consumed: {s} {v}"
    );
    // A check with no body at all costs 1.
    let r = w
        .http
        .post(format!("{}/v1/ratelimit/p/u/check", w.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
