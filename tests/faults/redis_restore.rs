//! A Redis restarted from older data (an RDB snapshot, or an AOF that lost its last second)
//! within one epoch: its epoch gate is there, but its grant counters are behind. No grant
//! after the restart may carry a token at or below one answered before it (G1).

use std::time::Duration;

use crate::support::{through_switch, Postgres, Redis, Warden};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restored_from_an_old_snapshot_never_repeats_a_token() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis.url()),
    ]);
    // Short leases, so the grace of the new epoch (the longest TTL granted) is short.
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let token =
        |v: &serde_json::Value| v["fencing_token"].as_i64().unwrap_or_else(|| panic!("{v}"));
    let (s, v) = w.acquire("k", "a", 1_000, 0).await;
    assert_eq!(s, 200, "{v}");
    w.release("k", "a", token(&v)).await;
    // A session whose hot copy is in the snapshot, revoked after it (G12).
    let (s, v) = w
        .post(
            "/v1/sessions",
            json!({"principal": "ana", "data": {"cart": 1}, "idle_ttl_ms": 60_000, "absolute_ttl_ms": 600_000}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let session = format!("/v1/sessions/{}", v["session_id"].as_str().unwrap());
    assert_eq!(w.get(&session).await.0, 200);
    assert!(redis.cli(&["SAVE"]).is_some_and(|o| o.contains("OK")));
    let (s, v) = w.send(reqwest::Method::DELETE, &session, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("revoked")), "{v}");
    let mut last = 0;
    for owner in ["b", "c", "d"] {
        let (s, v) = w.acquire("k", owner, 1_000, 0).await;
        assert_eq!(s, 200, "{v}");
        last = token(&v);
        w.release("k", owner, last).await;
    }
    redis.restart(); // loads the snapshot: the gate of this epoch, the counter from before b
    let (s, v) = through_switch(|| w.acquire("k", "e", 1_000, 5_000)).await;
    assert_eq!(s, 200, "{v}\n{}", w.tail_log());
    let (s, g) = w.get(&session).await;
    assert_eq!((s, g["reason"].as_str()), (410, Some("revoked")), "{g}");
    assert!(
        token(&v) > last,
        "token {} after the restore, {last} answered before it\n{}",
        token(&v),
        w.tail_log()
    );
}
