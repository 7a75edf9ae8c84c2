//! The key-value store through the real binary on real servers (DESIGN §4.7, G12):
//! compare-and-set with one winner per version under 100 concurrent writers, no acknowledged
//! write lost through SIGKILL of Redis or of Warden, a deleted record that never comes back
//! (not through a late write, nor through Redis restarted from a snapshot taken before the
//! delete), expiry that keeps versions growing, and bad input refused with nothing changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{fast_failover, metric, through_switch, Postgres, Redis, Warden};
use serde_json::{json, Value};

async fn put(w: &Warden, key: &str, body: Value) -> (u16, Value) {
    let r = w
        .http
        .put(format!("{}/v1/kv/{key}", w.base()))
        .json(&body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn delete(w: &Warden, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = w.http.delete(format!("{}/v1/kv/{key}", w.base()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_writer_wins_each_version_among_a_hundred() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Arc::new(Warden::start(&fast_failover(&pg, Some(redis.url()))));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let (s, v) = put(&w, "cas", json!({"value": 0, "expected_version": 0})).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(1)), "{v}");
    let (s, v) = put(&w, "cas", json!({"value": 0, "expected_version": 0})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("version_conflict")),
        "create only: {v}"
    );
    for round in 1..=3i64 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    let body = json!({"value": {"writer": i}, "expected_version": round});
                    put(&w, "cas", body).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (s, v) = t.await.unwrap();
            match s {
                200 => winners.push(v),
                409 => assert_eq!(v["code"], "version_conflict", "{v}"),
                _ => panic!("round {round}: {s} {v}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(winners[0]["version"], round + 1);
        let (s, read) = w.get("/v1/kv/cas").await;
        assert_eq!(
            (s, read["version"].as_i64()),
            (200, Some(round + 1)),
            "{read}"
        );
    }
    // Hot reads come from the copy.
    for _ in 0..3 {
        assert_eq!(w.get("/v1/kv/cas").await.0, 200);
    }
    let hits = metric(&w.metrics().await, "warden_kv_copy_total{result=\"hit\"}");
    assert!(hits >= 2.0, "reads never served from the copy: {hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_write_is_lost_through_sigkill_of_redis_or_warden() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let mut w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    // One writer per key, so the last acknowledged value is the truth.
    let acked: Arc<std::sync::Mutex<HashMap<String, (i64, i64)>>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let acked = acked.clone();
            let url = w.base();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let key = format!("k{i}");
                let mut n = 0i64;
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(8) {
                    n += 1;
                    let r = http
                        .put(format!("{url}/v1/kv/{key}"))
                        .json(&json!({"value": n}))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    let Ok(r) = r else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if r.status().as_u16() == 200 {
                        let v: Value = r.json().await.unwrap();
                        let version = v["version"].as_i64().unwrap();
                        acked.lock().unwrap().insert(key.clone(), (n, version));
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.kill();
    w.restart();
    for t in writers {
        t.await.unwrap();
    }
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 8, "every writer got acknowledgements");
    for (key, (value, version)) in acked {
        let path = format!("/v1/kv/{key}");
        let (s, v) = through_switch(|| w.get(&path)).await;
        assert_eq!(s, 200, "{key}: {v}");
        // A write whose answer was lost to the kill may have landed after the last one
        // acknowledged: never an older one.
        let read = v["value"].as_i64().unwrap();
        assert!(
            read >= value,
            "{key}: acknowledged {value} v{version}, read {v}"
        );
        assert!(v["version"].as_i64().unwrap() >= version, "{key}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_never_comes_back() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    // A reads version 1 (the copy now holds it); B deletes; A's late write naming version 1
    // is refused, and the record stays gone.
    assert_eq!(put(&w, "doc", json!({"value": "v1"})).await.0, 200);
    let (s, read) = w.get("/v1/kv/doc").await;
    assert_eq!((s, read["version"].as_i64()), (200, Some(1)));
    let (s, v) = delete(&w, "doc", None).await;
    assert_eq!(
        (s, v["state"].as_str(), v["version"].as_i64()),
        (200, Some("deleted"), Some(2))
    );
    let (s, v) = put(&w, "doc", json!({"value": "late", "expected_version": 1})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("version_conflict")),
        "{v}"
    );
    assert_eq!(w.get("/v1/kv/doc").await.0, 404);
    assert_eq!(
        delete(&w, "doc", None).await.0,
        200,
        "a delete is idempotent"
    );

    // Again with Redis killed between the steps and brought back from a snapshot taken while
    // its copy still held the record.
    assert_eq!(put(&w, "doc2", json!({"value": "v1"})).await.0, 200);
    let (s, read) = w.get("/v1/kv/doc2").await;
    assert_eq!((s, read["mode"].as_str()), (200, Some("primary")), "{read}");
    assert_eq!(w.get("/v1/kv/doc2").await.0, 200);
    assert!(redis.cli(&["SAVE"]).is_some_and(|o| o.contains("OK")));
    redis.kill();
    let (s, v) = through_switch(|| delete(&w, "doc2", None)).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    redis.restart(); // loads the snapshot: a copy of doc2, live
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    // Served on the Redis tier, by SQL: the snapshot's copy is of an old epoch, so it is not
    // read (`durable`: SQL by design, not a fallback of the tier).
    let (s, v) = w.get("/v1/kv/doc2").await;
    assert_eq!(
        (s, v["mode"].as_str()),
        (404, Some("durable")),
        "resurrected: {v}"
    );
    let (s, v) = put(&w, "doc2", json!({"value": "late", "expected_version": 1})).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(w.get("/v1/kv/doc2").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_hides_the_record_and_versions_keep_growing() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    // Long enough for the read back on a loaded machine; the expiry is then waited for.
    let (s, v) = put(&w, "t", json!({"value": [1, 2], "ttl_ms": 1500})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let (s, v) = w.get("/v1/kv/t").await;
    assert_eq!((s, v["value"].clone()), (200, json!([1, 2])));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.get("/v1/kv/t").await.0 != 404 {
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, v) = put(&w, "t", json!({"value": 3, "expected_version": 1})).await;
    assert_eq!(s, 409, "the expired version no longer matches: {v}");
    let (s, v) = put(&w, "t", json!({"value": 3, "expected_version": 0})).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(2)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    assert_eq!(put(&w, "b", json!({"value": "keep"})).await.0, 200);
    let big = "x".repeat(1024 * 1024);
    let cases = [
        (json!({"value": big}), 413, "value_too_large"),
        (json!({"value": 1, "ttl_ms": -1}), 422, "out_of_range"),
        (json!({"value": 1, "ttl_ms": 0}), 422, "out_of_range"),
        (
            json!({"value": 1, "expected_version": -1}),
            422,
            "out_of_range",
        ),
        (json!({"value": 1, "surprise": true}), 422, "invalid_body"),
        (json!({"ttl_ms": 5}), 422, "invalid_body"),
        (json!({"value": 1, "ttl_ms": "5"}), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let (s, v) = put(&w, "b", body).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{v}");
    }
    let huge = "x".repeat(2 * 1024 * 1024);
    // On a connection of its own: the server answers 413 before reading the whole body and
    // then closes that connection, which a pooled client could pick for the next request
    // (hyper's `IncompleteMessage`, seen once in a full run).
    let own = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = own
        .put(format!("{}/v1/kv/b", w.base()))
        .json(&json!({ "value": huge }))
        .send()
        .await
        .expect("request");
    let (s, v) = (
        r.status().as_u16(),
        r.json::<Value>().await.unwrap_or(Value::Null),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );
    let (s, v) = delete(&w, "b", Some(json!({"expected_version": 0}))).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("out_of_range")), "{v}");
    let (s, v) = delete(&w, "b", Some(json!({"expected_version": 7}))).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("version_conflict")),
        "{v}"
    );
    let (s, v) = w.get("/v1/kv/b").await;
    assert_eq!(
        (s, v["value"].as_str(), v["version"].as_i64()),
        (200, Some("keep"), Some(1)),
        "{v}"
    );
}
