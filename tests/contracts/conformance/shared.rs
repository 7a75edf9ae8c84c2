//! Shared leases (DESIGN §4.1), run on every backend by `conformance.rs`: shared holders
//! together, never with an exclusive one, each with a token of its own from the key's counter;
//! a waiting writer keeps later readers out; `blocked_by` names who holds the key; a bad mode
//! is refused.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{token, Env};

async fn shared(e: &Env, key: &str, owner: &str, ttl_ms: i64) -> (u16, Value) {
    let body = json!({"owner": owner, "ttl_ms": ttl_ms, "mode": "shared"});
    e.w.post(&format!("/v1/locks/{key}/acquire"), body).await
}

pub async fn readers_and_writers(e: &Env) {
    let w = &e.w;
    let (s, r1) = shared(e, "c-s", "r1", 30_000).await;
    assert_eq!((s, r1["lock_mode"].as_str()), (200, Some("shared")), "{r1}");
    let (s, r2) = shared(e, "c-s", "r2", 30_000).await;
    assert_eq!(s, 200, "{r2}");
    assert!(
        token(&r2) > token(&r1),
        "each shared grant has its own, larger token"
    );
    // A reader's retry gets its own lease back.
    let (s, again) = shared(e, "c-s", "r1", 30_000).await;
    assert_eq!((s, token(&again)), (200, token(&r1)), "{again}");
    let (s, v) = w.get("/v1/locks/c-s").await;
    assert_eq!((s, v["lock_mode"].as_str()), (200, Some("shared")), "{v}");
    assert_eq!(v["holders"].as_array().map(Vec::len), Some(2), "{v}");

    // A writer is refused while readers hold, told who holds.
    let (s, v) = w.acquire("c-s", "w", 5_000, 0).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("lock_busy")), "{v}");
    assert!(
        ["r1", "r2"].contains(&v["blocked_by"].as_str().unwrap()),
        "{v}"
    );
    // Readers extend and release their own leases by token.
    let body = json!({"owner": "r1", "fencing_token": token(&r1), "ttl_ms": 40_000});
    let (s, v) = w.post("/v1/locks/c-s/extend", body).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
    let body = json!({"owner": "r2", "fencing_token": token(&r1), "ttl_ms": 1_000});
    let (s, v) = w.post("/v1/locks/c-s/extend", body).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("not_owner")), "{v}");
    assert_eq!(w.release("c-s", "r1", token(&r1)).await.0, 200);
    let (s, v) = w.release("c-s", "r1", token(&r1)).await;
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (409, Some("lock_lost"), Some("expired")),
        "{v}"
    );
    assert_eq!(
        w.acquire("c-s", "w", 5_000, 0).await.0,
        409,
        "r2 still reads"
    );
    assert_eq!(w.release("c-s", "r2", token(&r2)).await.0, 200);

    // No reader left: the writer gets the key, with a token above every reader's.
    let (s, wv) = w.acquire("c-s", "w", 30_000, 0).await;
    assert_eq!(
        (s, wv["lock_mode"].as_str()),
        (200, Some("exclusive")),
        "{wv}"
    );
    assert!(token(&wv) > token(&r2));
    let (s, v) = shared(e, "c-s", "r3", 1_000).await;
    assert_eq!((s, v["blocked_by"].as_str()), (409, Some("w")), "{v}");
    // A writer asking to read gets its exclusive lease back: it covers reading.
    let (s, v) = shared(e, "c-s", "w", 1_000).await;
    assert_eq!(
        (s, token(&v), v["lock_mode"].as_str()),
        (200, token(&wv), Some("exclusive"))
    );
    assert_eq!(w.release("c-s", "w", token(&wv)).await.0, 200);

    writer_waits_ahead_of_later_readers(e).await;
    bad_modes(e).await;
}

async fn writer_waits_ahead_of_later_readers(e: &Env) {
    let w = &e.w;
    let (_, r1) = shared(e, "c-sw", "r1", 30_000).await;
    let url = format!("{}/v1/locks/c-sw/acquire", w.base());
    let http = w.http.clone();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let body = json!({"owner": "w", "ttl_ms": 5_000, "wait_ms": 5_000});
        let r = http.post(url).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The writer waits: a new reader queues behind it.
    let (s, v) = shared(e, "c-sw", "r2", 30_000).await;
    assert_eq!((s, v["blocked_by"].as_str()), (409, Some("w")), "{v}");
    let released = Instant::now();
    assert_eq!(w.release("c-sw", "r1", token(&r1)).await.0, 200);
    let (s, v) = writer.await.unwrap();
    assert_eq!(
        (s, v["lock_mode"].as_str()),
        (200, Some("exclusive")),
        "{v}"
    );
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

async fn bad_modes(e: &Env) {
    let w = &e.w;
    let invalid = (422, Some("invalid_body"));
    let shared_capped =
        json!({"owner": "a", "ttl_ms": 1_000, "mode": "shared", "max_hold_ms": 2_000});
    for (body, refusal) in [
        (
            json!({"owner": "a", "ttl_ms": 1_000, "mode": "update"}),
            invalid,
        ),
        (json!({"owner": "a", "ttl_ms": 1_000, "mode": 1}), invalid),
        (shared_capped, invalid),
    ] {
        let (s, v) = w.post("/v1/locks/c-sb/acquire", body.clone()).await;
        assert_eq!((s, v["code"].as_str()), refusal, "{body}: {v}");
    }
    // The mistyped field is named.
    let (_, v) = w
        .post(
            "/v1/locks/c-sb/acquire",
            json!({"owner": "a", "ttl_ms": 1_000, "mode": 1}),
        )
        .await;
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("wrong type: mode:"), "{v}");
    let (s, v) = w.get("/v1/locks/c-sb").await;
    assert_eq!((s, v["state"].as_str()), (404, Some("not_held")), "{v}");
}
