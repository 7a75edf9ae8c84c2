//! The reservation contract (DESIGN §4, G6), run on every backend by `conformance.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Env;
use crate::support::Warden;

async fn reserve(w: &Warden, sku: &str, user: &str, ttl_ms: i64) -> (u16, Value) {
    let body = json!({"user_id": user, "quantity": 1, "ttl_ms": ttl_ms});
    w.post(&format!("/v1/inventory/{sku}/reservations"), body)
        .await
}

async fn stock(w: &Warden, sku: &str) -> Value {
    let (s, v) = w.get(&format!("/v1/inventory/{sku}")).await;
    assert_eq!(s, 200, "{v}");
    let sum = v["available"].as_i64().unwrap()
        + v["reserved"].as_i64().unwrap()
        + v["confirmed"].as_i64().unwrap();
    assert_eq!(Some(sum), v["total"].as_i64(), "counts add up: {v}");
    v
}

pub async fn thousand_buyers_for_a_hundred(e: &Env) {
    let w = &e.w;
    assert_eq!(w.put_total("flash", 100).await.0, 200);
    let users: Vec<String> = (0..1000).map(|u| format!("u{u}")).collect();
    let calls = users.iter().map(|u| reserve(w, "flash", u, 600_000));
    let mut states: HashMap<String, usize> = HashMap::new();
    for (s, v) in futures::future::join_all(calls).await {
        let state = v["state"].as_str().unwrap_or("?").to_owned();
        let expected = if state == "reserved" { 201 } else { 409 };
        assert_eq!(s, expected, "{v}\n{}", w.tail_log());
        if state == "reserved" {
            assert_eq!(v["mode"], e.mode);
        }
        *states.entry(state).or_default() += 1;
    }
    assert_eq!(states.get("reserved"), Some(&100), "{states:?}");
    assert_eq!(states.get("out_of_stock"), Some(&900), "{states:?}");
    let v = stock(w, "flash").await;
    assert_eq!(
        (v["available"].as_i64(), v["reserved"].as_i64()),
        (Some(0), Some(100)),
        "{v}"
    );
}

pub async fn hold_lifecycle(e: &Env) {
    let w = &e.w;
    assert_eq!(w.put_total("life", 10).await.0, 200);
    let (s, a) = reserve(w, "life", "ann", 60_000).await;
    assert_eq!((s, a["state"].as_str()), (201, Some("reserved")), "{a}");
    assert_eq!(a["remaining"], 9);
    let id = a["reservation_id"].as_str().unwrap().to_owned();
    let (s, v) = reserve(w, "life", "ann", 60_000).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("already_reserved")),
        "{v}"
    );
    assert_eq!(v["reservation_id"], id.as_str());

    // Stock may not drop below what is held and sold.
    let (s, v) = w.put_total("life", 0).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("total_below_held")),
        "{v}"
    );

    let (s, v) = w
        .post(&format!("/v1/reservations/{id}/confirm"), json!({}))
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("confirmed")), "{v}");
    let (s, _) = w
        .post(&format!("/v1/reservations/{id}/confirm"), json!({}))
        .await;
    assert_eq!(s, 200, "a retried confirm answers confirmed");
    let (s, v) = w
        .post(&format!("/v1/reservations/{id}/release"), json!({}))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_confirmed")),
        "{v}"
    );
    let v = stock(w, "life").await;
    assert_eq!(
        (v["confirmed"].as_i64(), v["available"].as_i64()),
        (Some(1), Some(9))
    );

    // Release returns the unit; the user may reserve again.
    let (_, b) = reserve(w, "life", "bob", 60_000).await;
    let bid = b["reservation_id"].as_str().unwrap().to_owned();
    let (s, v) = w
        .post(&format!("/v1/reservations/{bid}/release"), json!({}))
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("released")), "{v}");
    assert_eq!(stock(w, "life").await["available"], 9);
    let (s, _) = reserve(w, "life", "bob", 60_000).await;
    assert_eq!(s, 201);

    // Total can grow while holds exist.
    let (s, v) = w.put_total("life", 20).await;
    assert_eq!((s, v["available"].as_i64()), (200, Some(18)), "{v}");

    let (s, v) = w.post("/v1/reservations/r_nope/confirm", json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("unknown_reservation")),
        "{v}"
    );
    let (s, v) = w.get("/v1/inventory/never-set").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("unknown_sku")), "{v}");
}

pub async fn holds_expire_back_to_stock(e: &Env) {
    let w = &e.w;
    assert_eq!(w.put_total("exp", 5).await.0, 200);
    let mut ids = Vec::new();
    for u in 0..5 {
        let (s, v) = reserve(w, "exp", &format!("x{u}"), 500).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["reservation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(reserve(w, "exp", "late", 500).await.0, 409);
    let started = Instant::now();
    loop {
        let v = stock(w, "exp").await;
        if v["available"] == 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "holds not back within 1.5 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, v) = w
        .post(&format!("/v1/reservations/{}/confirm", ids[0]), json!({}))
        .await;
    assert_eq!((s, v["code"].as_str()), (410, Some("expired")), "{v}");
    // The stock is whole again and sellable.
    assert_eq!(reserve(w, "exp", "x0", 60_000).await.0, 201);
}

pub async fn idempotency_key_returns_the_same_reservation(e: &Env) {
    let w = &e.w;
    assert_eq!(w.put_total("idk", 3).await.0, 200);
    let send = |key: &'static str, qty: i64| {
        w.http
            .post(format!("{}/v1/inventory/idk/reservations", w.base()))
            .header("Idempotency-Key", key)
            .json(&json!({"user_id": "kim", "quantity": qty}))
            .send()
    };
    let first = send("k-1", 1).await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first = first.text().await.unwrap();
    let again = send("k-1", 1).await.unwrap();
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(
        again.text().await.unwrap(),
        first,
        "the same answer, byte for byte"
    );
    let other = send("k-1", 2).await.unwrap();
    assert_eq!(other.status().as_u16(), 422, "same key, different request");
    assert_eq!(stock(w, "idk").await["reserved"], 1);
}
