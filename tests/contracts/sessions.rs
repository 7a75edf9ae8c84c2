//! Sessions through the real binary on real servers (DESIGN §4.6, G12): a logout that races a
//! writer (and the same with Redis killed between the steps), concurrent patches and puts,
//! rotation under load, the per-principal limit under concurrent creates, "log out
//! everywhere" through a failover and back, the sweeper and the events feed, and bad input.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{fast_failover, metric, through_switch, Postgres, Redis, Warden};
use serde_json::{json, Value};

async fn create(w: &Warden, body: Value) -> (u16, Value) {
    w.post("/v1/sessions", body).await
}

fn login(principal: &str) -> Value {
    json!({"principal": principal, "data": {"user": principal, "cart": []},
        "idle_ttl_ms": 600_000, "absolute_ttl_ms": 3_600_000})
}

fn id(v: &Value) -> String {
    v["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session id in {v}"))
        .to_owned()
}

async fn on_redis() -> (Postgres, Redis, Warden) {
    let pg = Postgres::database();
    let redis = Redis::start();
    let mut env = fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_SESSIONS_GAUGE_EVERY_MS", "200".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    (pg, redis, w)
}

/// What happens to Redis between A's read and B's delete.
enum Between<'a> {
    /// Nothing.
    Nothing,
    /// Killed: B deletes on SQL alone.
    Killed(&'a mut Redis),
    /// Snapshotted (its copy of the live session in the RDB), killed, and once B deleted on
    /// SQL, restarted from that snapshot.
    Restored(&'a mut Redis),
}

const COPY_HITS: &str = "warden_session_copy_total{result=\"hit\"}";

/// A reads version v, B deletes, then A's PUT naming v and A's touch answer 410, and reads
/// stay 410: nothing brings the session back.
async fn logout_beats_the_late_writer(w: &Warden, between: Between<'_>) {
    let (s, c) = create(w, login("ana")).await;
    assert_eq!(s, 201, "{c}");
    let sid = id(&c);
    let path = format!("/v1/sessions/{sid}");
    let hits = metric(&w.metrics().await, COPY_HITS);
    let (s, a) = w.get(&path).await;
    assert_eq!((s, a["state"].as_str()), (200, Some("active")), "{a}");
    let v = a["version"].as_i64().unwrap();
    if a["mode"] == "primary" {
        assert!(
            metric(&w.metrics().await, COPY_HITS) > hits,
            "a read on Redis is answered from the hot copy"
        );
    }
    let restore = match between {
        Between::Nothing => None,
        Between::Killed(redis) => {
            redis.kill();
            None
        }
        Between::Restored(redis) => {
            assert!(redis.cli(&["SAVE"]).is_some_and(|o| o.contains("OK")));
            redis.kill();
            Some(redis)
        }
    };
    let (s, d) = through_switch(|| w.send(reqwest::Method::DELETE, &path, None)).await;
    assert_eq!((s, d["state"].as_str()), (200, Some("revoked")), "{d}");
    if let Some(redis) = restore {
        redis.restart(); // loads the snapshot: a copy of the session, live
        w.wait_ready_on("redis", Duration::from_secs(20)).await;
    }
    // Reads first: a write would replace a stale copy before a read could meet it.
    let (s, g) = w.get(&path).await;
    assert_eq!((s, g["reason"].as_str()), (410, Some("revoked")), "{g}");
    let body = json!({"data": {"user": "ana", "cart": ["late"]}, "expected_version": v});
    let (s, p) = w.send(reqwest::Method::PUT, &path, Some(body)).await;
    assert_eq!((s, p["state"].as_str()), (410, Some("revoked")), "{p}");
    let (s, t) = w.post(&format!("{path}/touch"), json!({})).await;
    assert_eq!((s, t["state"].as_str()), (410, Some("revoked")), "{t}");
    for _ in 0..2 {
        let (s, g) = w.get(&path).await;
        assert_eq!((s, g["reason"].as_str()), (410, Some("revoked")), "{g}");
    }
    let (s, _) = w.send(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 200, "a revoke is idempotent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_is_never_undone_by_a_late_write_even_across_redis_loss() {
    let (_pg, mut redis, w) = on_redis().await;
    logout_beats_the_late_writer(&w, Between::Nothing).await;
    logout_beats_the_late_writer(&w, Between::Killed(&mut redis)).await;
    redis.restart();
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    logout_beats_the_late_writer(&w, Between::Nothing).await;
    logout_beats_the_late_writer(&w, Between::Restored(&mut redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_everywhere_and_eviction_end_the_hot_copies_too() {
    let (_pg, _redis, w) = on_redis().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, c) = create(&w, login("dee")).await;
        assert_eq!(s, 201, "{c}");
        ids.push(id(&c));
    }
    let hits = metric(&w.metrics().await, COPY_HITS);
    for sid in &ids {
        for _ in 0..2 {
            let (s, v) = w.get(&format!("/v1/sessions/{sid}")).await;
            assert_eq!((s, v["mode"].as_str()), (200, Some("primary")), "{v}");
        }
    }
    assert!(
        metric(&w.metrics().await, COPY_HITS) >= hits + 6.0,
        "served from the copies"
    );
    // An eviction ends the oldest session's copy.
    let mut limited = login("dee");
    limited["max_per_principal"] = json!(3);
    limited["on_limit"] = json!("evict_oldest");
    let (s, c) = create(&w, limited).await;
    assert_eq!((s, c["evicted"].as_u64()), (201, Some(1)), "{c}");
    ids.push(id(&c));
    let (s, v) = w.get(&format!("/v1/sessions/{}", ids[0])).await;
    assert_eq!((s, v["reason"].as_str()), (410, Some("evicted")), "{v}");
    let (s, v) = w
        .send(reqwest::Method::DELETE, "/v1/principals/dee/sessions", None)
        .await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(3)), "{v}");
    for sid in &ids[1..] {
        let (s, v) = w.get(&format!("/v1/sessions/{sid}")).await;
        assert_eq!(
            (s, v["reason"].as_str()),
            (410, Some("revoked")),
            "{sid}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_all_survive_and_one_put_wins_per_version() {
    let (_pg, _redis, w) = on_redis().await;
    let w = Arc::new(w);
    let (_, c) = create(
        &w,
        json!({"data": {}, "idle_ttl_ms": 600_000, "absolute_ttl_ms": 600_000}),
    )
    .await;
    let sid = id(&c);
    let path = format!("/v1/sessions/{sid}");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (w, path) = (w.clone(), path.clone());
            tokio::spawn(async move {
                let body = json!({"data": {format!("attr{i}"): i}});
                w.send(reqwest::Method::PATCH, &path, Some(body)).await
            })
        })
        .collect();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let (_, read) = w.get(&path).await;
    for i in 0..50 {
        assert_eq!(read["data"][format!("attr{i}")], i, "attr{i} lost: {read}");
    }
    assert_eq!(read["version"], 51);
    // 50 PUTs naming version 51: exactly one wins.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (w, path) = (w.clone(), path.clone());
            tokio::spawn(async move {
                let body = json!({"data": {"winner": i}, "expected_version": 51});
                w.send(reqwest::Method::PUT, &path, Some(body)).await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            200 => wins += 1,
            409 => assert_eq!(v["code"], "version_conflict", "{v}"),
            _ => panic!("{s} {v}"),
        }
    }
    assert_eq!(wins, 1);
    // A merge patch removes with null.
    let (s, v) = w
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"data": {"winner": null, "k": 1}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"], json!({"k": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_load_ends_the_old_id_and_keeps_the_data() {
    let (_pg, _redis, w) = on_redis().await;
    let w = Arc::new(w);
    let (_, c) = create(&w, login("bo")).await;
    let old = id(&c);
    let readers: Vec<_> = (0..10)
        .map(|_| {
            let (w, old) = (w.clone(), old.clone());
            tokio::spawn(async move { w.get(&format!("/v1/sessions/{old}")).await })
        })
        .collect();
    let (s, r) = w
        .post(&format!("/v1/sessions/{old}/rotate"), json!({}))
        .await;
    assert_eq!((s, r["state"].as_str()), (200, Some("rotated")), "{r}");
    let new = id(&r);
    assert_ne!(new, old);
    for t in readers {
        let (s, v) = t.await.unwrap();
        assert!(s == 200 || (s == 410 && v["state"] == "rotated"), "{s} {v}");
    }
    let (s, v) = w.get(&format!("/v1/sessions/{old}")).await;
    assert_eq!((s, v["state"].as_str()), (410, Some("rotated")), "{v}");
    let (s, v) = w.get(&format!("/v1/sessions/{new}")).await;
    assert_eq!((s, v["data"]["user"].as_str()), (200, Some("bo")), "{v}");
    let (s, _) = w
        .post(&format!("/v1/sessions/{old}/rotate"), json!({}))
        .await;
    assert_eq!(s, 410, "an ended session cannot be rotated again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_under_concurrency_and_logout_everywhere_survives_a_failover() {
    let (_pg, mut redis, w) = on_redis().await;
    let w = Arc::new(w);
    let mut limited = login("cy");
    limited["max_per_principal"] = json!(3);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (w, body) = (w.clone(), limited.clone());
            tokio::spawn(async move { create(&w, body).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            201 => ids.push(id(&v)),
            409 => assert_eq!(v["code"], "session_limit_reached", "{v}"),
            _ => panic!("{s} {v}"),
        }
    }
    assert_eq!(ids.len(), 3, "exactly three created");
    let (_, listed) = w.get("/v1/principals/cy/sessions").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 3, "{listed}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let live = "warden_sessions_live{tenant=\"default\"}";
    while metric(&w.metrics().await, live) != 3.0 {
        assert!(
            Instant::now() < deadline,
            "live sessions never counted as 3"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // evict_oldest makes room: the oldest ends as evicted.
    limited["on_limit"] = json!("evict_oldest");
    let (s, v) = create(&w, limited.clone()).await;
    assert_eq!((s, v["evicted"].as_u64()), (201, Some(1)), "{v}");
    let refs: HashSet<String> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refs.len(), 3, "three distinct sessions listed");
    let mut evicted = 0;
    for sid in &ids {
        let (s, v) = w.get(&format!("/v1/sessions/{sid}")).await;
        if s == 410 {
            assert_eq!(v["reason"], "evicted", "{v}");
            evicted += 1;
        }
    }
    assert_eq!(evicted, 1);
    ids.push(id(&v));

    // Kill Redis (a lock call makes the breaker see it and the tier move to SQL), log out
    // everywhere on SQL, bring Redis back: every old session is gone.
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.acquire("probe", "t", 1_000, 0).await.1["mode"] != "fallback" {
        assert!(Instant::now() < deadline, "never failed over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) =
        through_switch(|| w.send(reqwest::Method::DELETE, "/v1/principals/cy/sessions", None))
            .await;
    assert_eq!(
        (s, v["count"].as_u64(), v["mode"].as_str()),
        (200, Some(3), Some("fallback")),
        "{v}"
    );
    redis.restart();
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    for sid in &ids {
        let (s, v) = w.get(&format!("/v1/sessions/{sid}")).await;
        assert_eq!(s, 410, "{sid}: {v}");
    }
    let (_, listed) = w.get("/v1/principals/cy/sessions").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 0, "{listed}");
    // Every revocation is in the feed, in order.
    let (s, feed) = w.get("/v1/sessions/events?after=0&limit=1000").await;
    assert_eq!(s, 200, "{feed}");
    let events = feed["events"].as_array().unwrap();
    let count = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(count("created"), 4, "{feed}");
    assert_eq!(count("evicted"), 1, "{feed}");
    assert_eq!(count("revoked"), 3, "{feed}");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless, in order: {seqs:?}"
    );
    let (_, rest) = w
        .get(&format!("/v1/sessions/events?after={}", feed["next_after"]))
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 0);
}

/// The RFC 3339 time in field `f` of `v`.
fn at(v: &Value, f: &str) -> time::OffsetDateTime {
    let text = v[f].as_str().unwrap_or_else(|| panic!("no {f}: {v}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_touch_and_the_sweeper() {
    let pg = Postgres::database();
    let mut env = vec![("WARDEN_DATABASE_URL", pg.url())];
    env.push(("WARDEN_SESSIONS_SWEEP_EVERY_MS", "100".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    let (s, c) = create(
        &w,
        json!({"principal": "dee", "data": {}, "idle_ttl_ms": 1_000, "absolute_ttl_ms": 1_500}),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let sid = id(&c);
    // Touches slide the idle expiry, never past the absolute one.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (s, v) = w
            .post(&format!("/v1/sessions/{sid}/touch"), json!({}))
            .await;
        assert_eq!(s, 200, "{v}");
        // Compared as instants: the text drops trailing zeros (`…14Z` is before `…14.5Z`).
        assert!(
            at(&v, "idle_expires_at") <= at(&v, "absolute_expires_at"),
            "{v}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (s, v) = w.get(&format!("/v1/sessions/{sid}")).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (410, Some("expired")),
        "absolute expiry: {v}"
    );
    // The sweeper marks it and writes its event.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, feed) = w.get("/v1/sessions/events").await;
        if feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "expired")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no expired event: {feed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let touches = metric(
        &w.metrics().await,
        "warden_session_touches_total{written=\"false\"}",
    );
    assert!(
        touches >= 1.0,
        "touches within a tenth of the idle TTL were written anyway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let (_pg, _redis, w) = on_redis().await;
    let (_, c) = create(&w, login("eve")).await;
    let sid = id(&c);
    let path = format!("/v1/sessions/{sid}");
    let big = "x".repeat(70 * 1024);
    let cases = [
        (
            json!({"data": {}, "idle_ttl_ms": -1, "absolute_ttl_ms": 10}),
            422,
            "out_of_range",
        ),
        (
            json!({"data": {}, "idle_ttl_ms": 1000, "absolute_ttl_ms": 999}),
            422,
            "out_of_range",
        ),
        (
            json!({"data": [1], "idle_ttl_ms": 10, "absolute_ttl_ms": 10}),
            422,
            "invalid_data",
        ),
        (
            json!({"data": {}, "idle_ttl_ms": 10, "absolute_ttl_ms": 10, "max_per_principal": 2}),
            422,
            "invalid_principal",
        ),
        (
            json!({"principal": "", "data": {}, "idle_ttl_ms": 10, "absolute_ttl_ms": 10}),
            422,
            "invalid_principal",
        ),
        (
            json!({"data": {}, "idle_ttl_ms": 10, "absolute_ttl_ms": 10, "extra": 1}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (s, v) = create(&w, body.clone()).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let (s, v) = create(
        &w,
        json!({"data": {"big": big}, "idle_ttl_ms": 10, "absolute_ttl_ms": 10}),
    )
    .await;
    assert!(s == 413, "{s} {v}");
    let (s, v) = w
        .send(reqwest::Method::PATCH, &path, Some(json!({"data": [1]})))
        .await;
    assert_eq!((s, v["code"].as_str()), (422, Some("invalid_data")), "{v}");
    let (s, v) = w
        .send(reqwest::Method::PUT, &path, Some(json!({"data": {}})))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("invalid_body")),
        "expected_version is required: {v}"
    );
    let (s, v) = w
        .send(
            reqwest::Method::PUT,
            &path,
            Some(json!({"data": {}, "expected_version": 0})),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (422, Some("out_of_range")), "{v}");
    let (s, v) = w.get("/v1/sessions/not-a-session").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")), "{v}");
    let (s, v) = w.get("/v1/sessions/events?limit=0").await;
    assert_eq!((s, v["code"].as_str()), (422, Some("out_of_range")), "{v}");
    let (s, v) = w.get(&path).await;
    assert_eq!(
        (s, v["version"].as_i64(), v["data"]["user"].as_str()),
        (200, Some(1), Some("eve")),
        "{v}"
    );
    // The id never reaches the log; its hash may.
    assert!(!w.tail_log().contains(&sid), "a session id was logged");
}
