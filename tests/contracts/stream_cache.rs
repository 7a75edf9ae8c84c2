//! An instance's stream cache going stale, through two real binaries on one PostgreSQL: one
//! instance caches a stream, the other moves it on (and leases its intents), and every answer
//! of the first is still the one the database's rows give — sequences continue, refusals name
//! the true reason — and then reads that stream instead of holding it, while a dispatch lease
//! alone costs no lost race.

use std::time::Duration;

use crate::support::{fast_failover, metric, Postgres, Warden};
use serde_json::json;

const RETRIES: &str = "warden_stream_batch_retries_total";
const HITS: &str = "warden_stream_cache_total{result=\"hit\"}";
const SHARED: &str = "warden_stream_cache_total{result=\"shared\"}";

async fn intake(w: &Warden, stream: &str, id: &str) -> i64 {
    let body = json!({"intent_id": id, "intent_type": "book"});
    let (s, v) = w.post(&format!("/v1/streams/{stream}/intents"), body).await;
    assert!(s == 201 || s == 200, "{v}");
    v["commit_sequence"].as_i64().unwrap()
}

async fn commit(w: &Warden, stream: &str, seq: i64, id: &str) -> (u16, serde_json::Value) {
    let body = json!({"commit_sequence": seq, "intent_id": id});
    w.post(&format!("/v1/streams/{stream}/commits"), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_a_stale_cache_are_checked_against_the_database() {
    let pg = Postgres::database();
    let a = Warden::start(&fast_failover(&pg, None));
    let b = Warden::start(&fast_failover(&pg, None));
    for w in [&a, &b] {
        w.wait_ready_on("sql", Duration::from_secs(10)).await;
    }
    // A creates and commits seq 1, and caches the stream at that point.
    assert_eq!(intake(&a, "c", "x1").await, 1);
    assert_eq!(commit(&a, "c", 1, "x1").await.0, 200);
    assert_eq!(intake(&a, "c", "x2").await, 2);
    let hits = metric(&a.metrics().await, HITS);
    assert!(hits >= 2.0, "the cache served A's own batches: {hits}");

    // B moves the stream on behind A's back.
    assert_eq!(commit(&b, "c", 2, "x2").await.0, 200);
    assert_eq!(intake(&b, "c", "x3").await, 3);

    // A's cache still says seq 3 does not exist (a refusal with nothing to write: the write
    // checks the stream's revision) and seq 2 is A's to commit (the write's guard).
    let (s, v) = commit(&a, "c", 3, "x3").await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(3)), "{v}");
    let (s, v) = commit(&a, "c", 2, "x2").await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (409, Some("already_committed")),
        "{v}"
    );
    assert_eq!(intake(&a, "c", "x4").await, 4, "no sequence reused");
    let lost = metric(&a.metrics().await, RETRIES);
    assert!(lost >= 1.0, "A's stale entry lost a race: {lost}");
    // Moved by another instance, the stream is now read by A's batches, not held.
    let shared = metric(&a.metrics().await, SHARED);
    assert!(shared >= 1.0, "{shared}");
    assert_eq!(commit(&a, "c", 4, "x4").await.0, 200);
    assert!(metric(&a.metrics().await, SHARED) > shared);

    // B leases A's newest intent to a worker; A commits it from its cache without losing a
    // race.
    assert_eq!(intake(&a, "d", "y1").await, 1);
    let (s, v) = b
        .post(
            "/v1/dispatch/claim",
            json!({"worker": "w", "limit": 10, "lease_ms": 60_000}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let leased: Vec<(&str, i64)> = v["intents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["stream"].as_str().unwrap(),
                i["commit_sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(leased, [("d", 1)], "{v}");
    let hits = metric(&a.metrics().await, HITS);
    let (s, v) = commit(&a, "d", 1, "y1").await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(1)), "{v}");
    assert_eq!(
        metric(&a.metrics().await, RETRIES),
        lost,
        "a lease is no race"
    );
    assert!(
        metric(&a.metrics().await, HITS) > hits,
        "committed from the cache"
    );

    // Intents long committed leave the cache; a repeated intake of one still answers its own
    // sequence (the insert's unique key sends the batch back to read), not a new one.
    for seq in 2..=9 {
        let id = format!("y{seq}");
        assert_eq!(intake(&a, "d", &id).await, seq);
        assert_eq!(commit(&a, "d", seq, &id).await.0, 200);
    }
    assert_eq!(intake(&a, "d", "y1").await, 1);
    assert!(metric(&a.metrics().await, RETRIES) > lost);
    for w in [&a, &b] {
        for (stream, last) in [("c", 4), ("d", 9)] {
            let (_, v) = w.get(&format!("/v1/streams/{stream}")).await;
            assert_eq!(
                (&v["next_sequence"], &v["last_committed"], &v["version"]),
                (&json!(last + 1), &json!(last), &json!(last)),
                "{v}"
            );
        }
    }
}
