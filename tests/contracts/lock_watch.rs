//! The lost-lock signal through the real binary (DESIGN §4.1): a holder long-polling its lease
//! hears `held` while it lives (with the time left), `lost` `expired` as soon as it runs out,
//! `superseded` once another owner holds the key, `tier_switched` after Redis fails under it,
//! and a foreign owner gets 409.

use std::time::{Duration, Instant};

use crate::support::{fast_failover, Postgres, Redis, Warden};
use serde_json::Value;

async fn watch(w: &Warden, key: &str, owner: &str, token: i64, wait_ms: i64) -> (u16, Value) {
    w.get(&format!(
        "/v1/locks/{key}/watch?owner={owner}&fencing_token={token}&wait_ms={wait_ms}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_hears_when_its_lease_is_lost_and_why() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    let (s, a) = w.acquire("job", "a", 1_500, 0).await;
    assert_eq!(s, 200, "{a}");
    let ttl = a["ttl_ms_remaining"].as_i64().unwrap();
    assert!((1_400..=1_500).contains(&ttl), "{a}");
    let token = a["fencing_token"].as_i64().unwrap();

    // Still held when a short wait ends, with the time left.
    let (s, v) = watch(&w, "job", "a", token, 200).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("held")), "{v}");
    let left = v["ttl_ms_remaining"].as_i64().unwrap();
    assert!(left > 0 && left < ttl, "{v}");
    // A foreign owner naming the token is refused.
    let (s, v) = watch(&w, "job", "mallory", token, 0).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("not_owner")), "{v}");

    // A long wait ends as soon as the lease runs out, not when the wait does.
    let started = Instant::now();
    let (s, v) = watch(&w, "job", "a", token, 10_000).await;
    let took = started.elapsed();
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (200, Some("lost"), Some("expired")),
        "{v}"
    );
    assert!(took < Duration::from_millis(2_500), "heard after {took:?}");

    // Another owner holds the key now: the old token is superseded.
    let (s, b) = w.acquire("job", "b", 5_000, 0).await;
    assert_eq!(s, 200, "{b}");
    let (_, v) = watch(&w, "job", "a", token, 1_000).await;
    assert_eq!(
        (v["state"].as_str(), v["reason"].as_str()),
        (Some("lost"), Some("superseded")),
        "{v}"
    );

    // Redis fails under a live lease: the watcher hears tier_switched once SQL serves.
    let (_, c) = w.acquire("job2", "c", 60_000, 0).await;
    let ct = c["fencing_token"].as_i64().unwrap();
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let (s, v) = watch(&w, "job2", "c", ct, 1_000).await;
        if s == 200 && v["state"] == "lost" {
            break v;
        }
        assert!(Instant::now() < deadline, "never heard the loss: {s} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["reason"], "tier_switched", "{v}");
    assert_eq!(v["mode"], "fallback", "{v}");
}
