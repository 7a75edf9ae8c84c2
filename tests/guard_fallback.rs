//! The S-PC-05-001 §10 guard through the real binary on PostgreSQL with Redis killed (the
//! fallback tier): a stalled database past the critical lock p95 raises a critical incident and
//! safe mode, with what the instance saw in the evidence pack; past the warning, the guard holds
//! `degraded` and sends sensitive commits to manual review while the rest commit.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::guard::{guard_is, on_fallback};
use support::webhooks::Receiver;
use support::{Postgres, Redis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_fallback_database_past_the_section_10_p95_enters_safe_mode() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let recv = Receiver::start().await;
    let extra = [
        // The lease outlives the stall, so calls in flight wait for the database instead of
        // being refused.
        ("WARDEN_TIER_LEASE_MS", "3000".into()),
        ("WARDEN_DATABASE_TIMEOUT_MS", "6000".into()),
        ("WARDEN_GUARD_RATE_WINDOW_MS", "10000".into()),
    ];
    let w = std::sync::Arc::new(on_fallback(&pg, &recv, &mut redis, &extra).await);
    // Fast fallback calls first: normal, whatever their share.
    for i in 0..20 {
        assert_eq!(w.acquire(&format!("fast-{i}"), "o", 60_000, 0).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.get("/v1/status").await.1["guard"], "normal");
    // Then 30 lock calls while PostgreSQL stalls for 1.6 s: every one takes longer than
    // 1200 ms.
    pg.stall(true);
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move { w.acquire(&format!("slow-{i}"), "o", 60_000, 0).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    pg.stall(false);
    for c in calls {
        let (s, v) = c.await.unwrap();
        assert_eq!(s, 200, "{v}");
    }
    guard_is(&w, "safe_mode", Duration::from_secs(5)).await;
    let (_, list) = w.get("/v1/incidents?state=triggered").await;
    let own: Vec<&Value> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["dedup_key"] == "warden:fallback")
        .collect();
    assert_eq!(own.len(), 1, "{list}");
    assert_eq!(own[0]["severity"], "critical", "{list}");
    assert!(own[0]["safe_mode_at"].is_string(), "{list}");
    let (s, v) = w.acquire("after", "o", 1_000, 0).await;
    assert_eq!((s, v["reason"].as_str()), (503, Some("safe_mode")), "{v}");
    let metrics = w.metrics().await;
    assert!(
        support::metric(&metrics, "warden_fallback_lock_p95_seconds") > 1.2,
        "{metrics}"
    );
    // The evidence pack holds what the instance saw: the slow readings and the refusal.
    let id = own[0]["incident_id"].as_str().unwrap().to_owned();
    let mut pack = Value::Null;
    for _ in 0..100 {
        pack = w.get(&format!("/v1/incidents/{id}/evidence")).await.1;
        if pack["blocked"].as_array().is_some_and(|b| !b.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pack["fallback"]["max_fallback_lock_p95_ms"].as_i64() > Some(1_200),
        "{pack}"
    );
    let refused = &pack["blocked"][0];
    let what = (refused["op"].as_str(), refused["reason"].as_str());
    assert_eq!(what, (Some("lock_acquire"), Some("safe_mode")), "{pack}");
    assert_eq!(refused["sample_keys"], json!(["after"]), "{pack}");
    assert_eq!(pack["affected"], json!(["after"]), "{pack}");
    // Leaving takes its acknowledgement like any other cause.
    let id = id.as_str();
    assert_eq!(
        w.post(
            "/v1/guard/recovery-actions",
            json!({"action": "db unstalled"})
        )
        .await
        .0,
        201
    );
    let (s, v) = w.post("/v1/guard/exit", json!({})).await;
    assert_eq!(
        (s, v["missing"][0]["condition"].as_str()),
        (409, Some("acknowledgement")),
        "{v}"
    );
    assert!(
        v["missing"][0]["detail"].as_str().unwrap().contains(id),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_degraded_sensitive_commits_go_to_review_and_the_rest_commit() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let recv = Receiver::start().await;
    let extra = [
        // Any fallback lock call is over the warning p95, none over the critical one.
        ("WARDEN_GUARD_FALLBACK_P95_WARNING_MS", "0".into()),
        ("WARDEN_GUARD_FALLBACK_P95_CRITICAL_MS", "60000".into()),
    ];
    let w = on_fallback(&pg, &recv, &mut redis, &extra).await;
    for i in 0..25 {
        assert_eq!(w.acquire(&format!("k-{i}"), "o", 60_000, 0).await.0, 200);
    }
    guard_is(&w, "degraded", Duration::from_secs(5)).await;
    // Degraded is not safe mode: locks are still granted.
    assert_eq!(w.acquire("still", "o", 1_000, 0).await.0, 200);
    for (id, sensitive) in [("whatsapp-1", true), ("log-1", false)] {
        let body = json!({"intent_id": id, "intent_type": "send", "sensitive": sensitive});
        assert_eq!(w.post("/v1/streams/c1/intents", body.clone()).await.0, 201);
        assert_eq!(
            w.post(&format!("/v1/streams/c2-{id}/intents"), body)
                .await
                .0,
            201
        );
    }
    let commit = |stream: &str, id: &str| {
        let path = format!("/v1/streams/{stream}/commits");
        let body = json!({"commit_sequence": 1, "intent_id": id});
        let w = &w;
        async move { w.post(&path, body).await }
    };
    let (s, v) = commit("c2-whatsapp-1", "whatsapp-1").await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (409, Some("guard_degraded")),
        "{v}"
    );
    let (s, v) = commit("c2-log-1", "log-1").await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("committed_causal")),
        "{v}"
    );
    let (_, review) = w.get("/v1/review").await;
    let held: Vec<&Value> = review["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["reason"] == "guard_degraded")
        .collect();
    assert_eq!(held.len(), 1, "{review}");
    assert_eq!(held[0]["intent_id"], "whatsapp-1");
    // The warning stays raised while the readings stay over the threshold: no flapping.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.get("/v1/status").await.1["guard"], "degraded");
    let (_, list) = w.get("/v1/incidents?state=triggered").await;
    let own: Vec<&Value> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["dedup_key"] == "warden:fallback")
        .collect();
    assert_eq!(
        (own.len(), own[0]["severity"].as_str()),
        (1, Some("warning")),
        "{list}"
    );
}
