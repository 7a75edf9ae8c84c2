//! Deadlock detection through the real binary (DESIGN §4.1): a two-owner cycle is answered
//! `deadlock_detected` within 100 ms, to the youngest waiter or the lowest priority, whose
//! locks stay held; a three-owner cycle across two instances is found within
//! `deadlock_check_ms`; two readers upgrading at once deadlock and one is told; 10 000
//! acquisitions in sorted key order never see a false positive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{metric, Postgres, Redis, Warden};
use serde_json::{json, Value};

fn token(v: &Value) -> i64 {
    v["fencing_token"].as_i64().unwrap_or_else(|| panic!("{v}"))
}

/// An acquire that waits, in a task of its own; answers the status, body and when it came.
fn waiting(w: &Warden, key: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value, Instant)> {
    posting(w, &format!("/v1/locks/{key}/acquire"), body)
}

/// A POST in a task of its own; answers the status, body and when it came.
fn posting(w: &Warden, path: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value, Instant)> {
    let (http, url) = (w.http.clone(), format!("{}{path}", w.base()));
    tokio::spawn(async move {
        let r = http.post(url).json(&body).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap(), Instant::now())
    })
}

/// A Warden on default settings but a 1 s Redis call timeout: nothing here fails over, and
/// the failover tests' 400 ms tier lease and 100 ms Redis timeout only turned a slow step of a
/// debug build on a loaded lane into a 503 (a release refused mid-run in a clean-clone run).
async fn started(pg: &Postgres, redis: &Redis) -> Warden {
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_REDIS_TIMEOUT_MS", "1000".into()),
    ]);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_owner_cycle_is_answered_at_once_and_the_victims_locks_stay_held() {
    let (pg, redis) = (Postgres::database(), Redis::start());
    let w = started(&pg, &redis).await;
    let (_, a1) = w.acquire("k1", "A", 30_000, 0).await;
    let (_, b2) = w.acquire("k2", "B", 30_000, 0).await;
    let a = waiting(
        &w,
        "k2",
        json!({"owner": "A", "ttl_ms": 30_000, "wait_ms": 10_000}),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    // B closes the cycle; with equal priorities the youngest wait (B's) is the victim.
    let asked = Instant::now();
    let (s, v) = w
        .post(
            "/v1/locks/k1/acquire",
            json!({"owner": "B", "ttl_ms": 30_000, "wait_ms": 10_000}),
        )
        .await;
    let took = asked.elapsed();
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("deadlock_detected")),
        "{v}"
    );
    assert!(took < Duration::from_millis(100), "found after {took:?}");
    let cycle = v["cycle"].as_array().unwrap();
    let owners: Vec<&str> = cycle.iter().map(|c| c["owner"].as_str().unwrap()).collect();
    assert_eq!(owners.len(), 2, "{v}");
    assert!(owners.contains(&"A") && owners.contains(&"B"), "{v}");
    // B's lock stays held; once B lets go, A gets it.
    assert!(!a.is_finished(), "A still waits");
    let (_, held) = w.get("/v1/locks/k2").await;
    assert_eq!(held["owner"], "B", "{held}");
    assert_eq!(w.release("k2", "B", token(&b2)).await.0, 200);
    let (s, v, _) = a.await.unwrap();
    assert_eq!((s, v["owner"].as_str()), (200, Some("A")), "{v}");
    assert_eq!(w.release("k1", "A", token(&a1)).await.0, 200);

    // With priorities, the lowest loses, even when its wait is the older one.
    let (_, a1) = w.acquire("p1", "A", 30_000, 0).await;
    let (_, b2) = w.acquire("p2", "B", 30_000, 0).await;
    let a = waiting(
        &w,
        "p2",
        json!({"owner": "A", "ttl_ms": 30_000, "wait_ms": 10_000, "deadlock_priority": -1}),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = waiting(
        &w,
        "p1",
        json!({"owner": "B", "ttl_ms": 30_000, "wait_ms": 10_000, "deadlock_priority": 5}),
    );
    let asked = Instant::now();
    let (s, v, at) = a.await.unwrap();
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("deadlock_detected")),
        "{v}"
    );
    assert!(
        at.duration_since(asked) < Duration::from_millis(600),
        "A heard after {:?}",
        at.duration_since(asked)
    );
    assert_eq!(w.release("p1", "A", token(&a1)).await.0, 200);
    let (s, v, _) = b.await.unwrap();
    assert_eq!((s, v["owner"].as_str()), (200, Some("B")), "{v}");
    let _ = w.release("p2", "B", token(&b2)).await;

    // A lock group's wait is in the graph too: A holds q1 and waits with a group for q2 (held
    // by B) and q3; B waits for q1. The group, of lower priority, is the victim and holds
    // none of its keys; A's own q1 stays held until A lets go.
    let (_, a1) = w.acquire("q1", "A", 30_000, 0).await;
    let (_, b2) = w.acquire("q2", "B", 30_000, 0).await;
    let group = json!({"owner": "A", "ttl_ms": 30_000, "wait_ms": 10_000,
        "deadlock_priority": -1, "release_on_deadlock": true,
        "locks": [{"key": "q2"}, {"key": "q3"}]});
    let g = posting(&w, "/v1/lock-groups/acquire", group);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = waiting(
        &w,
        "q1",
        json!({"owner": "B", "ttl_ms": 30_000, "wait_ms": 10_000}),
    );
    let (s, v, _) = g.await.unwrap();
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("deadlock_detected")),
        "{v}"
    );
    let owners: Vec<&str> = v["cycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["owner"].as_str().unwrap())
        .collect();
    assert!(owners.contains(&"A") && owners.contains(&"B"), "{v}");
    assert_eq!(
        w.get("/v1/locks/q3").await.0,
        404,
        "nothing of the group is held"
    );
    assert!(!b.is_finished(), "B still waits for A's own lock");
    assert_eq!(w.release("q1", "A", token(&a1)).await.0, 200);
    let (s, v, _) = b.await.unwrap();
    assert_eq!((s, v["owner"].as_str()), (200, Some("B")), "{v}");
    let _ = w.release("q2", "B", token(&b2)).await;
    let found = metric(
        &w.metrics().await,
        "warden_deadlocks_total{found=\"enqueue\"}",
    );
    assert!(found >= 3.0, "deadlocks counted: {found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_owner_cycle_across_two_instances_is_found() {
    let (pg, redis) = (Postgres::database(), Redis::start());
    let one = started(&pg, &redis).await;
    let two = started(&pg, &redis).await;
    for (w, key, owner) in [(&one, "a", "A"), (&two, "b", "B"), (&one, "c", "C")] {
        assert_eq!(w.acquire(key, owner, 30_000, 0).await.0, 200);
    }
    let body = |owner: &str| json!({"owner": owner, "ttl_ms": 30_000, "wait_ms": 10_000});
    let a = waiting(&one, "b", body("A"));
    let b = waiting(&two, "c", body("B"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closed = Instant::now();
    let c = waiting(&two, "a", body("C"));
    // Exactly one of the three is the victim, within the sweep period (1 s by default).
    let (s, v, at) = c.await.unwrap();
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("deadlock_detected")),
        "{v}"
    );
    assert!(at.duration_since(closed) < Duration::from_millis(1_000));
    assert_eq!(v["cycle"].as_array().map(Vec::len), Some(3), "{v}");
    assert!(
        !a.is_finished() && !b.is_finished(),
        "the others keep waiting"
    );
    a.abort();
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_readers_upgrading_at_once_deadlock_and_one_is_told() {
    let (pg, redis) = (Postgres::database(), Redis::start());
    let w = started(&pg, &redis).await;
    for owner in ["r1", "r2"] {
        let body = json!({"owner": owner, "ttl_ms": 30_000, "mode": "shared"});
        assert_eq!(w.post("/v1/locks/doc/acquire", body).await.0, 200);
    }
    let up = |owner: &str| json!({"owner": owner, "ttl_ms": 30_000, "wait_ms": 10_000});
    let first = waiting(&w, "doc", up("r1"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (s, v) = w.post("/v1/locks/doc/acquire", up("r2")).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("deadlock_detected")),
        "{v}"
    );
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_sorted_acquisitions_see_no_deadlock() {
    let (pg, redis) = (Postgres::database(), Redis::start());
    let w = Arc::new(started(&pg, &redis).await);
    let owners: Vec<_> = (0..16)
        .map(|o| {
            let w = w.clone();
            tokio::spawn(async move {
                let mut seed = 0x9e37_79b9u64 ^ o as u64;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut done = 0;
                while done < 10_000 / 16 {
                    // Two or three distinct keys of 12, taken in sorted order, then released.
                    let mut keys: Vec<u64> = (0..2 + next() % 2).map(|_| next() % 12).collect();
                    keys.sort();
                    keys.dedup();
                    let mut held = Vec::new();
                    for k in keys {
                        let body =
                            json!({"owner": format!("o{o}"), "ttl_ms": 10_000, "wait_ms": 10_000});
                        let (s, v) = w.post(&format!("/v1/locks/s{k}/acquire"), body).await;
                        assert_eq!(s, 200, "false positive or failure: {v}\n{}", w.tail_log());
                        held.push((k, token(&v)));
                        done += 1;
                    }
                    for (k, t) in held.into_iter().rev() {
                        let (s, v) = w.release(&format!("s{k}"), &format!("o{o}"), t).await;
                        assert_eq!(s, 200, "{v}\n{}", w.tail_log());
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for o in owners {
        total += o.await.unwrap();
    }
    assert!(total >= 10_000, "{total}");
    let found = metric(
        &w.metrics().await,
        "warden_deadlocks_total{found=\"enqueue\"}",
    ) + metric(
        &w.metrics().await,
        "warden_deadlocks_total{found=\"sweep\"}",
    );
    assert_eq!(found, 0.0);
}
