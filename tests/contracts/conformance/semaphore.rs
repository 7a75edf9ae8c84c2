//! The semaphore contract (DESIGN §4.1), run on every backend by `conformance.rs`: permits
//! counted from live records, fenced, handed back to their owner on a retry, refused past the
//! limit or under another limit, freed by expiry when holders vanish, and a multi-permit
//! waiter served only once its whole request fits.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{token, Env};

async fn take(e: &Env, name: &str, owner: &str, body: Value) -> (u16, Value) {
    let mut body = body;
    body["owner"] = json!(owner);
    e.w.post(&format!("/v1/semaphores/{name}/acquire"), body)
        .await
}

/// A POST that can move into a task.
async fn post_with(http: reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http.post(url).json(&body).send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn permit(e: &Env, name: &str, step: &str, v: &Value, body: Value) -> (u16, Value) {
    let id = v["permit_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"));
    let path = format!("/v1/semaphores/{name}/permits/{id}/{step}");
    e.w.post(&path, body).await
}

/// The whole contract but waiting, on servers of one backend.
pub async fn contract(e: &Env) {
    grants_and_refusals(e).await;
    vanished_holders_free_their_permits(e).await;
    contention_never_over_grants(e).await;
    bad_input(e).await;
}

async fn grants_and_refusals(e: &Env) {
    let three = json!({"limit": 3, "ttl_ms": 30_000});
    let mut grants = Vec::new();
    for (owner, left) in [("a", 2), ("b", 1), ("c", 0)] {
        let (s, v) = take(e, "s-c", owner, three.clone()).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (200, Some("permit_acquired")),
            "{v}"
        );
        assert_eq!(
            (v["available"].as_i64(), v["mode"].as_str()),
            (Some(left), Some(e.mode))
        );
        assert_eq!(v["permit_id"], token(&v).to_string(), "{v}");
        grants.push(v);
    }
    let tokens: Vec<i64> = grants.iter().map(token).collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");

    // Full: refused with what is held and when to retry; nothing changes.
    let (s, v) = take(e, "s-c", "d", three.clone()).await;
    assert_eq!(
        (s, v["state"].as_str(), v["held"].as_i64()),
        (409, Some("semaphore_full"), Some(3)),
        "{v}"
    );
    assert!(v["retry_after_ms"].as_i64().unwrap() > 0, "{v}");
    // An owner's retry gets its own permit back.
    let (s, v) = take(e, "s-c", "a", three.clone()).await;
    assert_eq!((s, token(&v)), (200, tokens[0]), "{v}");
    // Another limit while permits live: refused, naming the semaphore's.
    let (s, v) = take(e, "s-c", "d", json!({"limit": 5, "ttl_ms": 1_000})).await;
    assert_eq!(
        (s, v["state"].as_str(), v["limit"].as_i64()),
        (409, Some("limit_mismatch"), Some(3)),
        "{v}"
    );
    let (s, v) = e.w.get("/v1/semaphores/s-c").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("counted")), "{v}");
    assert_eq!(
        (
            v["limit"].as_i64(),
            v["held"].as_i64(),
            v["available"].as_i64()
        ),
        (Some(3), Some(3), Some(0)),
        "{v}"
    );

    // Extend by the holder; by anyone else, not_owner.
    let (s, v) = permit(
        e,
        "s-c",
        "extend",
        &grants[2],
        json!({"owner": "c", "ttl_ms": 60_000}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
    assert!(v["ttl_ms_remaining"].as_i64().unwrap() > 30_000, "{v}");
    let (s, v) = permit(
        e,
        "s-c",
        "extend",
        &grants[2],
        json!({"owner": "x", "ttl_ms": 1_000}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (409, Some("not_owner")), "{v}");
    // Release frees one permit; a repeat says it is gone.
    let (s, v) = permit(e, "s-c", "release", &grants[1], json!({"owner": "b"})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("released")), "{v}");
    let (s, v) = permit(e, "s-c", "release", &grants[1], json!({"owner": "b"})).await;
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (409, Some("lock_lost"), Some("expired")),
        "{v}"
    );
    let (s, v) = take(e, "s-c", "d", three.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert!(token(&v) > tokens[2], "{v}");
}

async fn vanished_holders_free_their_permits(e: &Env) {
    let short = json!({"limit": 3, "ttl_ms": 300});
    for owner in ["a", "b", "c"] {
        assert_eq!(take(e, "s-v", owner, short.clone()).await.0, 200);
    }
    let (s, v) = take(e, "s-v", "d", short.clone()).await;
    assert_eq!(s, 409, "{v}");
    // Nobody releases: the permits end at their own TTL, counted on the server's clock.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (s, v) = take(e, "s-v", "d", short).await;
    assert_eq!((s, v["available"].as_i64()), (200, Some(2)), "{v}");
    // With no permit of the old limit left alive, a new limit is taken.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (s, v) = take(e, "s-v", "e", json!({"limit": 1, "ttl_ms": 1_000})).await;
    assert_eq!((s, v["available"].as_i64()), (200, Some(0)), "{v}");
}

pub async fn a_multi_permit_waiter_waits_for_its_whole_request(e: &Env) {
    let body = |permits: i64, wait_ms: i64| json!({"limit": 3, "permits": permits, "ttl_ms": 30_000, "wait_ms": wait_ms});
    let (_, a) = take(e, "s-m", "a", body(2, 0)).await;
    let (_, c) = take(e, "s-m", "c", body(1, 0)).await;
    let started = Instant::now();
    let url = format!("{}/v1/semaphores/s-m/acquire", e.w.base());
    let mut two = body(2, 5_000);
    two["owner"] = json!("b");
    let waiter = tokio::spawn(post_with(e.w.http.clone(), url, two));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One permit frees: not enough for the waiter's two.
    let (s, _) = permit(e, "s-m", "release", &c, json!({"owner": "c"})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter was served with one permit free"
    );
    let (s, v) = e.w.get("/v1/semaphores/s-m").await;
    assert_eq!((s, v["held"].as_i64()), (200, Some(2)), "{v}");
    // Two more free: the waiter gets both.
    let released = Instant::now();
    assert_eq!(
        permit(e, "s-m", "release", &a, json!({"owner": "a"}))
            .await
            .0,
        200
    );
    let (s, v) = waiter.await.unwrap();
    assert_eq!(
        (s, v["permits"].as_i64(), v["available"].as_i64()),
        (200, Some(2), Some(1)),
        "{v}"
    );
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "served {:?} after the release",
        released.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
}

async fn contention_never_over_grants(e: &Env) {
    let url = format!("{}/v1/semaphores/s-n/acquire", e.w.base());
    let calls = (0..40).map(|i| {
        let body = json!({"owner": format!("o{i}"), "limit": 5, "ttl_ms": 30_000});
        tokio::spawn(post_with(e.w.http.clone(), url.clone(), body))
    });
    let mut granted = 0;
    for c in calls.collect::<Vec<_>>() {
        match c.await.unwrap() {
            (200, _) => granted += 1,
            (409, v) => assert_eq!(v["state"], "semaphore_full", "{v}"),
            (s, v) => panic!("{s} {v}"),
        }
    }
    assert_eq!(granted, 5);
}

async fn bad_input(e: &Env) {
    let bad = [
        (
            json!({"owner": "a", "limit": 0, "ttl_ms": 1_000}),
            422,
            "out_of_range",
        ),
        (
            json!({"owner": "a", "limit": 10_001, "ttl_ms": 1_000}),
            422,
            "out_of_range",
        ),
        (
            json!({"owner": "a", "limit": 2, "permits": 3, "ttl_ms": 1_000}),
            422,
            "out_of_range",
        ),
        (
            json!({"owner": "a", "limit": 2, "permits": 0, "ttl_ms": 1_000}),
            422,
            "out_of_range",
        ),
        (
            json!({"owner": "a", "limit": 2, "ttl_ms": 0}),
            422,
            "out_of_range",
        ),
        (
            json!({"owner": "", "limit": 2, "ttl_ms": 1_000}),
            422,
            "invalid_owner",
        ),
        (
            json!({"owner": "a", "limit": "2", "ttl_ms": 1_000}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in bad {
        let (s, v) = e.w.post("/v1/semaphores/s-b/acquire", body.clone()).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    for id in ["abc", "0", "-1", "9007199254740992"] {
        let path = format!("/v1/semaphores/s-b/permits/{id}/release");
        let (s, v) = e.w.post(&path, json!({"owner": "a"})).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid_permit_id")),
            "{id}: {v}"
        );
    }
    let (s, v) = e.w.get("/v1/semaphores/s-b").await;
    assert_eq!(
        (s, v["held"].as_i64(), v["holders"].as_i64()),
        (200, Some(0), Some(0)),
        "{v}"
    );
    assert!(v.get("limit").is_none(), "{v}");
}
