//! A lock group's client that disconnects mid-acquire leaves nothing held (DESIGN §4.1): the
//! acquire runs to its end in a task of its own, and a group granted to nobody is released.

use std::time::Duration;

use crate::support::{fast_failover, Postgres, Redis, Warden};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_acquire_leaves_nothing_held() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&fast_failover(&pg, Some(redis.url())));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    // One member is busy for 700 ms; the group waits up to 5 s for it.
    let (s, _) = w.acquire("m-2", "other", 700, 0).await;
    assert_eq!(s, 200);
    let body = json!({"owner": "gone", "ttl_ms": 30_000, "wait_ms": 5_000,
        "locks": [{"key": "m-1"}, {"key": "m-2"}, {"key": "m-3"}]});
    let request = w
        .http
        .post(format!("{}/v1/lock-groups/acquire", w.base()))
        .json(&body)
        .send();
    // The client gives up (its connection closes) while the group waits.
    assert!(tokio::time::timeout(Duration::from_millis(200), request)
        .await
        .is_err());
    // The busy member frees; the group's task is granted, finds nobody to answer, and
    // releases every member.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for key in ["m-1", "m-2", "m-3"] {
        let (s, v) = w.get(&format!("/v1/locks/{key}")).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (404, Some("not_held")),
            "{key}: {v}"
        );
    }
    assert!(
        w.tail_log().contains("group granted to a caller that left"),
        "{}",
        w.tail_log()
    );
}
