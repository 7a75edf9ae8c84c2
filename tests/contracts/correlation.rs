//! Correlation end to end (S-PC-04-001) through the real binary on PostgreSQL and a real
//! webhook receiver: `X-Correlation-Id` and `traceparent` travel from intake to dispatch claims
//! and replays, from a claim to its idempotency replays, into reservations, incidents, webhooks
//! and audit entries.

use std::time::Duration;

use crate::support::eventually as until;
use crate::support::guard::env;
use crate::support::webhooks::Receiver;
use crate::support::{Postgres, Warden};
use serde_json::{json, Value};

/// POST `body` to `path` with `X-Correlation-Id` and `traceparent` headers.
async fn post_traced(
    w: &Warden,
    path: &str,
    cid: &str,
    tp: &str,
    body: Value,
) -> (u16, Value, String) {
    let r = w
        .http
        .post(format!("{}{path}", w.base()))
        .header("x-correlation-id", cid)
        .header("traceparent", tp)
        .json(&body)
        .send()
        .await
        .unwrap();
    let echoed = r.headers()["x-correlation-id"].to_str().unwrap().to_owned();
    (r.status().as_u16(), r.json().await.unwrap(), echoed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_ids_travel_from_intake_to_claims_replays_incidents_and_webhooks() {
    let pg = Postgres::database();
    let recv = Receiver::start().await;
    let w = Warden::start(&env(&pg, &recv, &[]));
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = json!({"intent_id": "msg-1", "intent_type": "send"});
    let (s, v, echoed) =
        post_traced(&w, "/v1/streams/contact/intents", "req-intake-1", tp, body).await;
    assert_eq!((s, echoed.as_str()), (201, "req-intake-1"), "{v}");
    let (s, v) = w
        .post(
            "/v1/dispatch/claim",
            json!({"worker": "w", "limit": 1, "lease_ms": 5000}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["intents"][0]["correlation_id"], "req-intake-1", "{v}");
    assert_eq!(v["intents"][0]["traceparent"], tp, "{v}");
    let (s, c) = w
        .post(
            "/v1/streams/contact/commits",
            json!({"commit_sequence": 1, "intent_id": "msg-1"}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let replay = json!({"as_of_version": c["version"]});
    let (s, r) = w
        .post("/v1/streams/contact/intents/msg-1/replay", replay)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["intent"]["correlation_id"], "req-intake-1", "{r}");
    // An idempotency replay names the request that claimed the key and ran the effect.
    let (s, b, _) = post_traced(
        &w,
        "/v1/idempotency/pay-1/begin",
        "req-pay-1",
        tp,
        json!({}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let done = json!({"token": b["token"], "response": {"paid": true}});
    assert_eq!(w.idem("pay-1", "complete", done).await.0, 200);
    let (s, r, _) = post_traced(
        &w,
        "/v1/idempotency/pay-1/begin",
        "req-pay-2",
        tp,
        json!({}),
    )
    .await;
    assert_eq!((s, r["state"].as_str()), (200, Some("completed")), "{r}");
    assert_eq!(r["correlation_id"], "req-pay-1", "{r}");
    assert_eq!(r["traceparent"], tp, "{r}");
    // A reservation keeps the request that made it.
    assert_eq!(w.put_total("sku-1", 5).await.0, 200);
    let body = json!({"user_id": "u1", "quantity": 1});
    let (s, h, _) = post_traced(
        &w,
        "/v1/inventory/sku-1/reservations",
        "req-hold-1",
        tp,
        body,
    )
    .await;
    assert_eq!(s, 201, "{h}");
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&pg.url()).await.unwrap();
    let row: (String, String) =
        sqlx::query_as("SELECT correlation_id, traceparent FROM warden_holds WHERE id = $1")
            .bind(h["reservation_id"].as_str().unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(row, ("req-hold-1".to_owned(), tp.to_owned()));
    // Without X-Correlation-Id, the traceparent's trace id is the correlation id.
    let trigger = json!({"event_action": "trigger", "dedup_key": "traced", "severity": "warning",
        "summary": "traced", "source": "t"});
    let r = w
        .http
        .post(format!("{}/v1/incidents", w.base()))
        .header("traceparent", tp)
        .json(&trigger)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["incident"]["correlation_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{v}"
    );
    assert_eq!(v["incident"]["traceparent"], tp, "{v}");
    until(Duration::from_secs(5), "the notice", || {
        !recv.of("owner", "incident.triggered").is_empty()
    })
    .await;
    let notice = &recv.of("owner", "incident.triggered")[0].body;
    assert_eq!(
        notice["data"]["correlation_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{notice}"
    );
    assert_eq!(notice["data"]["traceparent"], tp, "{notice}");
    // Audit entries carry the correlation id of the request that made them.
    let (_, page) = w.get("/v1/audit?limit=1000").await;
    let trig = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "incident.trigger")
        .unwrap()
        .clone();
    assert_eq!(
        trig["correlation_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{trig}"
    );
}
