//! The S-PC-05-001 §10 guard through the real binary on PostgreSQL and Redis: a mixed workload
//! over every capability on a healthy instance never raises it (reads SQL serves by design
//! are not fallbacks); a Redis outage under load raises the critical incident, which puts
//! Warden in safe mode only after the no-ACK delay, and an ACK within the delay keeps it out;
//! with Redis killed, a stalled database past the critical lock p95 raises a critical incident
//! and (unacknowledged) safe mode, with what the instance saw in the evidence pack; past the
//! warning, the guard holds `degraded` and sends sensitive commits to manual review while the
//! rest commit.

use std::time::Duration;

use crate::support::guard::{guard_is, on_fallback};
use crate::support::webhooks::Receiver;
use crate::support::{Postgres, Redis, Warden};
use serde_json::{json, Value};

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
        crate::support::metric(&metrics, "warden_fallback_lock_p95_seconds") > 1.2,
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
    let pg = Postgres::database();
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

/// Settings that judge the §10 rate over a short window on Redis: a 3 s window, judged after
/// 1 s of history and 50 operations; safe mode `safe_after_ms` after an unacknowledged
/// critical incident.
fn judged_on_redis(redis: &Redis, safe_after_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_GUARD_RATE_WINDOW_MS", "3000".into()),
        ("WARDEN_GUARD_RATE_MIN_COVERAGE_MS", "1000".into()),
        ("WARDEN_GUARD_MIN_SAMPLES", "50".into()),
        ("WARDEN_GUARD_SAFE_MODE_AFTER_MS", safe_after_ms.to_string()),
        ("WARDEN_BREAKER_OPEN_MS", "60000".into()),
        ("WARDEN_FAILOVER_GRACE_MS", "200".into()),
        ("WARDEN_REDIS_TIMEOUT_MS", "250".into()),
    ]
}

/// Every `mode` a round of calls answered with, and the calls that answered 5xx.
#[derive(Default)]
struct Round {
    modes: std::collections::BTreeMap<String, usize>,
    failed: Vec<String>,
}

impl Round {
    fn saw(&mut self, call: &str, (s, v): (u16, Value)) -> Value {
        if s >= 500 {
            self.failed.push(format!("{call}: {s} {v}"));
        }
        if let Some(m) = v["mode"].as_str() {
            *self.modes.entry(m.to_owned()).or_default() += 1;
        }
        v
    }
}

/// One round of calls over every capability, as an application would mix them, heavy in the
/// reads SQL serves by design (session events polled, incidents and the guard watched).
async fn mixed_round(w: &Warden, n: usize, r: &mut Round) {
    use reqwest::Method;
    let k = format!("mix-{n}");
    let v = r.saw("lock", w.acquire(&k, "o", 10_000, 0).await);
    if let Some(t) = v["fencing_token"].as_i64() {
        r.saw("fence", w.fence(&k, t).await);
        let body = json!({"owner": "o", "fencing_token": t, "ttl_ms": 10_000});
        r.saw(
            "extend",
            w.post(&format!("/v1/locks/{k}/extend"), body).await,
        );
        r.saw("lock get", w.get(&format!("/v1/locks/{k}")).await);
        r.saw("release", w.release(&k, "o", t).await);
    }
    let group = json!({"owner": "g", "ttl_ms": 10_000, "locks": [{"key": format!("{k}-a")}, {"key": format!("{k}-b")}]});
    let v = r.saw("group", w.post("/v1/lock-groups/acquire", group).await);
    if let Some(id) = v["group_id"].as_str() {
        let path = format!("/v1/lock-groups/{id}/release");
        r.saw("group release", w.post(&path, json!({"owner": "g"})).await);
    }
    let sem = json!({"owner": format!("s{n}"), "limit": 5, "ttl_ms": 10_000});
    let v = r.saw("permit", w.post("/v1/semaphores/mix/acquire", sem).await);
    if let Some(id) = v["permit_id"].as_str() {
        let path = format!("/v1/semaphores/mix/permits/{id}/release");
        r.saw(
            "permit release",
            w.post(&path, json!({"owner": format!("s{n}")})).await,
        );
    }
    let begin = json!({"lease_ms": 10_000, "ttl_ms": 60_000});
    let v = r.saw("begin", w.idem(&k, "begin", begin.clone()).await);
    if let Some(t) = v["token"].as_i64() {
        let done = json!({"token": t, "response": {"ok": n}});
        r.saw("complete", w.idem(&k, "complete", done).await);
        r.saw("replay", w.idem(&k, "begin", begin).await);
    }
    let intent = json!({"intent_id": k, "intent_type": "send"});
    let v = r.saw("intake", w.post("/v1/streams/mix/intents", intent).await);
    let claim = json!({"worker": "w", "limit": 10, "lease_ms": 10_000});
    r.saw("claim", w.post("/v1/dispatch/claim", claim).await);
    if let Some(seq) = v["commit_sequence"].as_i64() {
        let commit = json!({"commit_sequence": seq, "intent_id": k, "wait_ms": 2_000});
        r.saw("commit", w.post("/v1/streams/mix/commits", commit).await);
    }
    r.saw("stream", w.get("/v1/streams/mix").await);
    r.saw("review", w.get("/v1/review").await);
    let hold = json!({"user_id": k, "quantity": 1, "ttl_ms": 60_000});
    let v = r.saw(
        "reserve",
        w.post("/v1/inventory/mix/reservations", hold).await,
    );
    if let Some(id) = v["reservation_id"].as_str() {
        r.saw(
            "confirm",
            w.post(&format!("/v1/reservations/{id}/confirm"), json!({}))
                .await,
        );
    }
    r.saw("stock", w.get("/v1/inventory/mix").await);
    r.saw(
        "check",
        w.post(&format!("/v1/ratelimit/mix/c{}/check", n % 7), json!({}))
            .await,
    );
    r.saw("peek", w.get("/v1/ratelimit/mix/c1").await);
    r.saw("policy", w.get("/v1/ratelimit/policies/mix").await);
    let login = json!({"principal": "ana", "data": {"n": n}, "idle_ttl_ms": 60_000,
        "absolute_ttl_ms": 600_000, "max_per_principal": 20, "on_limit": "evict_oldest"});
    let v = r.saw("session", w.post("/v1/sessions", login).await);
    if let Some(id) = v["session_id"].as_str() {
        r.saw("session get", w.get(&format!("/v1/sessions/{id}")).await);
        r.saw(
            "touch",
            w.post(&format!("/v1/sessions/{id}/touch"), json!({})).await,
        );
    }
    r.saw("list", w.get("/v1/principals/ana/sessions").await);
    let kv = json!({"value": {"n": n}});
    r.saw(
        "kv put",
        w.send(Method::PUT, &format!("/v1/kv/{k}"), Some(kv)).await,
    );
    r.saw("kv get", w.get(&format!("/v1/kv/{k}")).await);
    r.saw(
        "kv delete",
        w.send(Method::DELETE, &format!("/v1/kv/{k}"), None).await,
    );
    let entry = json!({"value": {"n": n}, "ttl_ms": 60_000});
    let path = format!("/v1/cache/mix/{}", n % 5);
    r.saw("cache put", w.send(Method::PUT, &path, Some(entry)).await);
    r.saw("cache get", w.get(&path).await);
    r.saw(
        "cache fetch",
        w.post(&format!("{path}/fetch"), json!({})).await,
    );
    for _ in 0..10 {
        r.saw("events", w.get("/v1/sessions/events?after=0").await);
    }
    for path in [
        "/v1/incidents",
        "/v1/guard",
        "/v1/audit",
        "/v1/tokens",
        "/v1/status",
    ] {
        r.saw(path, w.get(path).await);
    }
}

/// The §10 incidents of `w`, in any state.
async fn own_incidents(w: &Warden) -> Vec<Value> {
    let mut own = Vec::new();
    for state in ["triggered", "acknowledged", "resolved"] {
        let (_, list) = w.get(&format!("/v1/incidents?state={state}")).await;
        let all = list["incidents"].as_array().cloned().unwrap_or_default();
        own.extend(
            all.into_iter()
                .filter(|i| i["dedup_key"] == "warden:fallback"),
        );
    }
    own
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_workload_on_a_healthy_instance_never_raises_section_10() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let recv = Receiver::start().await;
    let w = Warden::start(&crate::support::guard::env(
        &pg,
        &recv,
        &judged_on_redis(&redis, 1_000),
    ));
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    assert_eq!(w.put_total("mix", 1_000_000).await.0, 200);
    let policy = json!({"limits": [{"name": "s", "algorithm": "gcra", "rate": 1000,
        "period_ms": 1000, "burst": 1000}]});
    let put = w.send(
        reqwest::Method::PUT,
        "/v1/ratelimit/policies/mix",
        Some(policy),
    );
    assert_eq!(put.await.0, 200);
    // The workload runs past the window plus the history the rate needs: every tick from
    // then on judges a full window of it.
    let started = std::time::Instant::now();
    let mut r = Round::default();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(4_500) || n < 5 {
        mixed_round(&w, n, &mut r).await;
        n += 1;
        let status = w.get("/v1/status").await.1;
        assert_eq!(
            status["guard"],
            "normal",
            "round {n}: {status}\n{}",
            w.tail_log()
        );
        assert_eq!(status["tier"], "redis", "{status}");
    }
    assert!(r.failed.is_empty(), "answered 5xx: {:?}", r.failed);
    // The by-design reads outnumber the rate's threshold many times over, and the window
    // held enough operations to be judged.
    let by_design = r.modes.get("durable").copied().unwrap_or(0);
    let primary = r.modes.get("primary").copied().unwrap_or(0);
    assert!(primary >= 50, "modes: {:?}", r.modes);
    assert!(by_design * 4 > primary, "modes: {:?}", r.modes);
    assert_eq!(r.modes.get("fallback"), None, "modes: {:?}", r.modes);
    // A few more ticks over the full window: no §10 incident, no guard move, no page.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(own_incidents(&w).await, Vec::<Value>::new());
    assert_eq!(w.get("/v1/status").await.1["guard"], "normal");
    let metrics = w.metrics().await;
    assert_eq!(
        crate::support::metric(&metrics, "warden_fallback_rate"),
        0.0,
        "{metrics}"
    );
    assert!(
        recv.got().is_empty(),
        "a webhook was sent: {:?}",
        recv.got()
    );
}

/// Sends lock acquires until `stop`, counting the answers in fallback.
fn load(
    w: &std::sync::Arc<Warden>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let (w, stop) = (w.clone(), stop.clone());
    tokio::spawn(async move {
        let mut fallback = 0;
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (_, v) = w.acquire(&format!("load-{n}"), "o", 5_000, 0).await;
            fallback += usize::from(v["mode"] == "fallback");
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fallback
    })
}

/// Starts a Warden on Redis whose §10 rate is judged over a short window, runs lock load on
/// Redis, kills Redis under the load and waits for the critical §10 incident: the instance,
/// the load's stop flag and task, the receiver and the incident.
async fn outage_under_load(
    pg: &Postgres,
    redis: &mut Redis,
    safe_after_ms: u64,
) -> (
    std::sync::Arc<Warden>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<usize>,
    Receiver,
    Value,
) {
    let recv = Receiver::start().await;
    let settings = crate::support::guard::env(pg, &recv, &judged_on_redis(redis, safe_after_ms));
    let w = std::sync::Arc::new(Warden::start(&settings));
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = load(&w, &stop);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    redis.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let own = own_incidents(&w).await;
        if let Some(i) = own.iter().find(|i| i["severity"] == "critical") {
            return (w, stop, task, recv, i.clone());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no critical §10 incident: {own:?}\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_raises_section_10_and_safe_mode_waits_for_the_no_ack_delay() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let (w, stop, task, recv, incident) = outage_under_load(&pg, &mut redis, 2_000).await;
    let id = incident["incident_id"].as_str().unwrap().to_owned();
    // The reading opened the incident with its evidence, and nothing more.
    let details = &incident["details"];
    assert!(details["fallback_rate"].as_f64() > Some(0.2), "{incident}");
    assert!(
        details["fallback_operations"].as_u64() > Some(0),
        "{incident}"
    );
    assert_eq!(details["window_ms"], 3000, "{incident}");
    assert!(incident["safe_mode_at"].is_null(), "{incident}");
    let guard = w.get("/v1/guard").await.1;
    assert_eq!(guard["guard"], "degraded", "{guard}");
    // Both roles are paged at once: the round the incident stood at when it became critical
    // (1 when opened critical, 2 when a warning was raised), not a later repeat.
    let round = incident["attempts"].as_i64().unwrap();
    let got = || {
        recv.got()
            .iter()
            .map(|r| format!("{} {} {}", r.endpoint, r.kind(), r.body["data"]))
            .collect::<Vec<_>>()
    };
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let paged = ["owner", "admin"].iter().all(|e| {
                recv.got().iter().any(|r| {
                    r.endpoint == *e
                        && ["incident.triggered", "incident.notify"].contains(&r.kind())
                        && r.body["data"]["incident_id"] == id.as_str()
                        && r.body["data"]["severity"] == "critical"
                        && r.attempt() == round
                })
            });
            if paged {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(waited.await.is_ok(), "not paged: {:#?}", got());
    // Unacknowledged, it escalates: safe mode, no earlier than the delay after it became
    // critical.
    guard_is(&w, "safe_mode", Duration::from_secs(10)).await;
    // By the server's own clock: safe mode the whole delay after the incident became critical
    // (the test's polls may see either moment late under load).
    let (_, v) = w.get(&format!("/v1/incidents/{id}")).await;
    let at = |f: &str| {
        let text = v["incident"][f]
            .as_str()
            .unwrap_or_else(|| panic!("{f}: {v}"));
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let waited = at("safe_mode_at") - at("escalated_at");
    assert!(
        waited >= time::Duration::milliseconds(2_000),
        "{waited} {v}"
    );
    let (_, g) = w.get("/v1/guard").await;
    assert!(
        g["reason"].as_str().unwrap().contains("unacknowledged"),
        "{g}"
    );
    assert_eq!(g["exit_conditions"]["unacknowledged"], json!([id]), "{g}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(task.await.unwrap() > 0, "no answer in fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_within_the_no_ack_delay_keeps_the_guard_out_of_safe_mode() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let (w, stop, task, _recv, incident) = outage_under_load(&pg, &mut redis, 2_000).await;
    let id = incident["incident_id"].as_str().unwrap();
    let (s, v) = w.post(&format!("/v1/incidents/{id}/ack"), json!({})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("acknowledged")), "{v}");
    // Past the delay, with the outage and the load still on: never safe mode.
    let until = std::time::Instant::now() + Duration::from_millis(3_000);
    while std::time::Instant::now() < until {
        let g = w.get("/v1/status").await.1["guard"].clone();
        assert_ne!(g, "safe_mode", "{}", w.tail_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, v) = w.get(&format!("/v1/incidents/{id}")).await;
    assert!(v["incident"]["safe_mode_at"].is_null(), "{v}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(task.await.unwrap() > 0, "no answer in fallback");
}
