//! The idempotency contract (DESIGN §4, G4), run on every backend by `conformance.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Env;

fn token(v: &serde_json::Value) -> i64 {
    v["token"]
        .as_i64()
        .unwrap_or_else(|| panic!("no token in {v}"))
}

/// A response with spacing, number spelling, key order and non-ASCII text that any
/// re-serialisation would change.
const RESPONSE: &str = r#"{"z": [1, 2.50, "ü"],  "a":null, "n":{"k":1e3}}"#;

pub async fn contract(e: &Env) {
    let w = &e.w;
    let (s, a) = w.idem("i-a", "begin", json!({"fingerprint": "f1"})).await;
    assert_eq!((s, a["state"].as_str()), (201, Some("started")), "{a}");
    assert_eq!(a["mode"], e.mode, "{a}\n{}", w.tail_log());
    let t = token(&a);
    assert!(t > 0 && t < 1 << 53);
    assert!(a["lease_expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(a["expires_at"].as_str().unwrap().ends_with('Z'));

    let (s, v) = w.idem("i-a", "begin", json!({"fingerprint": "f1"})).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("in_progress")), "{v}");
    assert!(v["retry_after_ms"].as_i64().unwrap() > 0);
    let (s, v) = w.idem("i-a", "begin", json!({"fingerprint": "f2"})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("fingerprint_mismatch")),
        "{v}"
    );
    assert_eq!(v["state"], "fingerprint_mismatch");

    // A token that is not the claim records nothing.
    let (s, v) = w
        .idem("i-a", "complete", json!({"token": t + 1, "response": 1}))
        .await;
    assert_eq!((s, v["state"].as_str()), (409, Some("conflict")), "{v}");

    let body = format!(r#"{{"token":{t},"response":{RESPONSE}}}"#);
    let (s, text) = w.post_text("/v1/idempotency/i-a/complete", &body).await;
    assert_eq!(s, 200, "{text}");
    assert!(
        text.contains(&format!(r#""response":{RESPONSE}"#)),
        "{text}"
    );

    // Later callers get the saved response byte for byte; the first completion stays.
    for _ in 0..2 {
        let (s, text) = w
            .post_text("/v1/idempotency/i-a/begin", r#"{"fingerprint":"f1"}"#)
            .await;
        assert_eq!(s, 200, "{text}");
        assert!(text.contains(r#""state":"completed""#), "{text}");
        assert!(
            text.contains(&format!(r#""response":{RESPONSE}"#)),
            "{text}"
        );
    }
    let (s, v) = w
        .idem("i-a", "complete", json!({"token": t, "response": "other"}))
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("completed")),
        "retry: {v}"
    );
    assert_eq!(
        v["response"]["a"],
        serde_json::Value::Null,
        "first result kept: {v}"
    );
    let (s, v) = w.idem("i-a", "fail", json!({"token": t})).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("conflict")), "{v}");
    // Without a fingerprint the saved result is still returned.
    let (s, v) = w.idem("i-a", "begin", json!({})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("completed")), "{v}");
}

pub async fn fail_and_lease_expiry(e: &Env) {
    let w = &e.w;
    // fail releases the claim: the next begin runs again, with a larger token.
    let (_, a) = w.idem("i-f", "begin", json!({})).await;
    let t1 = token(&a);
    let (s, v) = w.idem("i-f", "fail", json!({"token": t1})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("released")), "{v}");
    let (s, b) = w.idem("i-f", "begin", json!({})).await;
    assert_eq!(s, 201, "{b}");
    assert!(token(&b) > t1);

    // A lapsed lease can be retaken; the stale executor's completion is then rejected.
    let (_, a) = w.idem("i-l", "begin", json!({"lease_ms": 150})).await;
    let stale = token(&a);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (s, b) = w.idem("i-l", "begin", json!({"lease_ms": 5000})).await;
    assert_eq!((s, b["state"].as_str()), (201, Some("started")), "{b}");
    let fresh = token(&b);
    assert!(fresh > stale, "{fresh} > {stale}");
    let (s, v) = w
        .idem(
            "i-l",
            "complete",
            json!({"token": stale, "response": "stale"}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (409, Some("conflict")), "{v}");
    let (s, v) = w
        .idem("i-l", "extend", json!({"token": fresh, "lease_ms": 5000}))
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
    let (s, v) = w
        .idem(
            "i-l",
            "complete",
            json!({"token": fresh, "response": "fresh"}),
        )
        .await;
    assert_eq!((s, v["response"].as_str()), (200, Some("fresh")), "{v}");
    let (_, v) = w.idem("i-l", "begin", json!({})).await;
    assert_eq!(v["response"], "fresh");

    // A record is forgotten after its ttl.
    let (_, a) = w
        .idem("i-t", "begin", json!({"lease_ms": 100, "ttl_ms": 200}))
        .await;
    let (s, _) = w
        .idem(
            "i-t",
            "complete",
            json!({"token": token(&a), "response": 1}),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = w.idem("i-t", "begin", json!({})).await;
    assert_eq!((s, v["state"].as_str()), (201, Some("started")), "{v}");
}

pub async fn one_of_forty_starts(e: &Env) {
    let w = &e.w;
    let calls = (0..40).map(|_| w.idem("i-40", "begin", json!({"fingerprint": "x"})));
    let answers = futures::future::join_all(calls).await;
    let mut by_state: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for (s, v) in answers {
        let state = v["state"].as_str().unwrap_or("?").to_owned();
        let expected = if state == "started" { 201 } else { 409 };
        assert_eq!(s, expected, "{v}");
        by_state.entry(state).or_default().push(v);
    }
    assert_eq!(by_state["started"].len(), 1, "{by_state:?}");
    assert_eq!(by_state["in_progress"].len(), 39, "{by_state:?}");
    let t = token(&by_state["started"][0]);
    let body = format!(r#"{{"token":{t},"response":{RESPONSE}}}"#);
    let (s, _) = w.post_text("/v1/idempotency/i-40/complete", &body).await;
    assert_eq!(s, 200);
    let calls = (0..40).map(|_| w.post_text("/v1/idempotency/i-40/begin", "{}"));
    for (s, text) in futures::future::join_all(calls).await {
        assert_eq!(s, 200, "{text}");
        assert!(
            text.contains(&format!(r#""response":{RESPONSE}"#)),
            "{text}"
        );
    }
}

pub async fn wait_returns_the_result(e: &Env) {
    let w = &e.w;
    let (_, a) = w.idem("i-w", "begin", json!({})).await;
    let t = token(&a);
    let started = Instant::now();
    let waiter = w.idem("i-w", "begin", json!({"wait_ms": 5000}));
    let finisher = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.idem(
            "i-w",
            "complete",
            json!({"token": t, "response": {"ok": true}}),
        )
        .await
    };
    let ((s, v), (cs, _)) = tokio::join!(waiter, finisher);
    assert_eq!(cs, 200);
    assert_eq!((s, v["state"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(v["response"]["ok"], true);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(2000),
        "waited {waited:?}"
    );
    // Without wait_ms the answer is immediate.
    let (_, a) = w.idem("i-w2", "begin", json!({})).await;
    let started = Instant::now();
    let (s, _) = w.idem("i-w2", "begin", json!({"wait_ms": 0})).await;
    assert_eq!(s, 409);
    assert!(started.elapsed() < Duration::from_millis(1000));
    let _ = w.idem("i-w2", "fail", json!({"token": token(&a)})).await;
}
