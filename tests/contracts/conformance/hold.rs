//! `max_hold_ms` (DESIGN §4.1), run on every backend by `conformance.rs`: extends go on up to
//! the cap, one that would pass it answers `lock_lost` `max_hold_exceeded` and leaves the lease
//! exactly as it was (held, same token, same expiry) until it runs out; a cap below the TTL
//! or beyond a day is refused (422 `out_of_range`) and takes nothing.

use std::time::Duration;

use serde_json::{json, Value};

use super::{token, Env};

async fn extend(e: &Env, key: &str, t: i64, ttl_ms: i64) -> (u16, Value) {
    let body = json!({"owner": "alice", "fencing_token": t, "ttl_ms": ttl_ms});
    e.w.post(&format!("/v1/locks/{key}/extend"), body).await
}

pub async fn max_hold_caps_renewal(e: &Env) {
    let w = &e.w;
    let body = json!({"owner": "alice", "ttl_ms": 1_000, "max_hold_ms": 2_500});
    let (s, a) = w.post("/v1/locks/c-h/acquire", body).await;
    assert_eq!(s, 200, "{a}");
    let t = token(&a);

    // Within the cap, extends go on.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (s, x) = extend(e, "c-h", t, 1_000).await;
    assert_eq!((s, x["state"].as_str()), (200, Some("extended")), "{x}");
    // One that would pass the cap is refused and changes nothing.
    let (s, x) = extend(e, "c-h", t, 2_500).await;
    assert_eq!(
        (s, x["state"].as_str(), x["reason"].as_str()),
        (409, Some("lock_lost"), Some("max_hold_exceeded")),
        "{x}"
    );
    let (s, held) = w.get("/v1/locks/c-h").await;
    assert_eq!((s, token(&held)), (200, t), "{held}");
    let left = held["ttl_ms_remaining"].as_i64().unwrap();
    assert!(left <= 1_000, "the refused extend moved the expiry: {held}");
    // Nobody else gets the key meanwhile.
    let (s, busy) = w.acquire("c-h", "bob", 1_000, 0).await;
    assert_eq!(s, 409, "{busy}");

    // Renewing every 300 ms with a 1 000 ms TTL: granted while the new expiry stays within
    // 2 500 ms of the grant (four times), then refused.
    let mut granted = 0;
    let refusal = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (s, x) = extend(e, "c-h", t, 1_000).await;
        if s != 200 {
            break x;
        }
        granted += 1;
        assert!(granted <= 5, "extends passed the cap: {x}");
    };
    assert_eq!(
        (refusal["state"].as_str(), refusal["reason"].as_str()),
        (Some("lock_lost"), Some("max_hold_exceeded")),
        "{refusal}"
    );
    assert!(granted >= 2, "only {granted} extends within the cap");
    // The lease runs out at its last granted expiry: a waiting owner gets the key then, with
    // a larger token.
    let body = json!({"owner": "bob", "ttl_ms": 1_000, "wait_ms": 3_000});
    let (s, b) = w.post("/v1/locks/c-h/acquire", body).await;
    assert_eq!(s, 200, "{b}");
    assert!(token(&b) > t);
    max_hold_bad_input(e).await;
}

async fn max_hold_bad_input(e: &Env) {
    let w = &e.w;
    for (ttl, hold) in [(1_000, 999), (1_000, 0), (1_000, -5), (1_000, 86_400_001)] {
        let body = json!({"owner": "alice", "ttl_ms": ttl, "max_hold_ms": hold});
        let (s, v) = w.post("/v1/locks/c-hb/acquire", body).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("out_of_range")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains("max_hold_ms"), "{v}");
    }
    let (s, v) = w.get("/v1/locks/c-hb").await;
    assert_eq!((s, v["state"].as_str()), (404, Some("not_held")), "{v}");
    // The cap may equal the TTL.
    let body = json!({"owner": "alice", "ttl_ms": 1_000, "max_hold_ms": 1_000});
    assert_eq!(w.post("/v1/locks/c-hb/acquire", body).await.0, 200);
}
