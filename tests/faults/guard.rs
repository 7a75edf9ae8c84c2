//! G10 through the real binary, real PostgreSQL and Redis, and a real HTTP receiver, with the
//! guard's timers shortened to hundreds of milliseconds: escalation without an ACK, an ACK
//! racing the repeats, safe mode's per-feature behaviour, the exit and its green window (reset
//! by killing Redis), held intents committing in order afterwards, the audit chain caught
//! being edited, two instances sharing the guard and the escalation through a SIGKILL, and a
//! receiver that fails, times out and throttles.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::eventually as until;
use crate::support::guard::{as_token, env, guard_is, of, rounds, trigger};
use crate::support::webhooks::{Receiver, Reply};
use crate::support::{Postgres, Redis, Warden};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_critical_incident_escalates_then_files_one_ticket_then_falls_silent() {
    let pg = Postgres::database();
    let recv = Receiver::start().await;
    let w = Warden::start(&env(&pg, &recv, &[]));
    let v = trigger(&w, "db-primary", "critical").await;
    let id = v["incident_id"].as_str().unwrap().to_owned();
    until(Duration::from_secs(10), "the ticket", || {
        !recv.of("admin", "ticket.next_shift").is_empty()
    })
    .await;
    // Nothing more is due: wait well past the window and count.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let r = rounds(&recv);
    for endpoint in ["owner", "admin"] {
        assert_eq!(of(&r, endpoint, "incident.triggered"), [1], "{r:?}");
        assert_eq!(of(&r, endpoint, "incident.notify"), [2, 3, 4, 5], "{r:?}");
        assert_eq!(of(&r, endpoint, "guard.safe_mode_entered"), [0], "{r:?}");
    }
    assert_eq!(of(&r, "owner", "guard.contingency"), [0], "{r:?}");
    assert_eq!(
        of(&r, "admin", "guard.contingency"),
        [] as [i64; 0],
        "{r:?}"
    );
    assert_eq!(of(&r, "admin", "ticket.next_shift").len(), 1, "{r:?}");
    assert_eq!(of(&r, "owner", "ticket.next_shift").len(), 0, "{r:?}");
    // The body is the documented one.
    let first = &recv.of("owner", "incident.triggered")[0].body;
    assert_eq!(first["data"]["incident_id"], id.as_str());
    assert_eq!(first["data"]["dedup_key"], "db-primary");
    assert_eq!(first["data"]["severity"], "critical");
    assert_eq!(first["data"]["role"], "owner");
    assert!(first["data"]["correlation_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert!(first["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    // The incident says where it stands, and the guard is in safe mode on its account.
    let (s, inc) = w.get(&format!("/v1/incidents/{id}")).await;
    assert_eq!(s, 200, "{inc}");
    assert_eq!(inc["incident"]["attempts"], 5, "{inc}");
    assert!(inc["incident"]["safe_mode_at"].is_string(), "{inc}");
    assert!(inc["incident"]["next_notify_at"].is_null(), "{inc}");
    let (_, g) = w.get("/v1/guard").await;
    assert_eq!(g["guard"], "safe_mode", "{g}");
    assert_eq!(g["exit_conditions"]["unacknowledged"], json!([id]), "{g}");
    // The evidence pack holds the timeline with every try and the audit range.
    let (s, pack) = w.get(&format!("/v1/incidents/{id}/evidence")).await;
    assert_eq!(
        (s, pack["state"].as_str()),
        (200, Some("evidence")),
        "{pack}"
    );
    let tries = pack["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "delivery.try")
        .count();
    assert!(tries >= 12, "{pack}");
    assert!(
        pack["audit"]["head_hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{pack}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["evidence", &id])
        .env("WARDEN_DATABASE_URL", pg.url())
        .env("WARDEN_CONFIG", "/nonexistent/warden.toml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["incident"]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_stops_the_repeats_is_idempotent_and_loses_to_a_resolve() {
    let pg = Postgres::database();
    let recv = Receiver::start().await;
    let w = Warden::start(&env(&pg, &recv, &[]));
    let v = trigger(&w, "queue", "critical").await;
    let id = v["incident_id"].as_str().unwrap().to_owned();
    until(Duration::from_secs(5), "round 2", || {
        !recv.of("owner", "incident.notify").is_empty()
    })
    .await;
    let (_, inc) = w.get(&format!("/v1/incidents/{id}")).await;
    let created = inc["incident"]["created_at"].as_str().unwrap().to_owned();
    let (s, a) = w.post(&format!("/v1/incidents/{id}/ack"), json!({})).await;
    assert_eq!((s, a["state"].as_str()), (200, Some("acknowledged")), "{a}");
    let acked_rounds = a["incident"]["attempts"].as_i64().unwrap();
    // A duplicate ACK gets the same answer.
    let (s, again) = w.post(&format!("/v1/incidents/{id}/ack"), json!({})).await;
    assert_eq!(
        (s, again["state"].as_str()),
        (200, Some("acknowledged")),
        "{again}"
    );
    assert_eq!(
        again["incident"]["acknowledged_at"],
        a["incident"]["acknowledged_at"]
    );
    // No round due after the ACK's commit is ever sent, nor safe mode, nor the ticket.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = rounds(&recv);
    for endpoint in ["owner", "admin"] {
        let sent = of(&r, endpoint, "incident.notify");
        assert!(
            sent.iter().all(|n| *n <= acked_rounds),
            "{sent:?} after {acked_rounds} ({created})"
        );
        assert_eq!(of(&r, endpoint, "incident.acknowledged").len(), 1, "{r:?}");
        assert!(
            of(&r, endpoint, "guard.safe_mode_entered").is_empty(),
            "{r:?}"
        );
    }
    assert!(of(&r, "admin", "ticket.next_shift").is_empty(), "{r:?}");
    let (_, g) = w.get("/v1/guard").await;
    assert_eq!(g["guard"], "normal", "{g}");

    // A resolve followed by a late ACK: the resolve wins, the ACK answers 409.
    let v = trigger(&w, "cache", "warning").await;
    let other = v["incident_id"].as_str().unwrap().to_owned();
    let (s, res) = w
        .post(&format!("/v1/incidents/{other}/resolve"), json!({}))
        .await;
    assert_eq!((s, res["state"].as_str()), (200, Some("resolved")), "{res}");
    let (s, late) = w
        .post(&format!("/v1/incidents/{other}/ack"), json!({}))
        .await;
    assert_eq!(
        (s, late["code"].as_str()),
        (409, Some("already_resolved")),
        "{late}"
    );
    let (_, inc) = w.get(&format!("/v1/incidents/{other}")).await;
    assert_eq!(inc["incident"]["status"], "resolved", "{inc}");
    // The same through the PagerDuty shape, by dedup key.
    let v = trigger(&w, "pd", "error").await;
    let body = json!({"event_action": "trigger", "dedup_key": "pd", "payload":
        {"summary": "again", "source": "pd", "severity": "error"}});
    let (s, dup) = w.post("/v1/incidents", body).await;
    assert_eq!(
        (s, dup["state"].as_str()),
        (202, Some("deduplicated")),
        "{dup}"
    );
    assert_eq!(dup["incident_id"], v["incident_id"]);
    let (s, r) = w
        .post(
            "/v1/incidents",
            json!({"event_action": "resolve", "dedup_key": "pd"}),
        )
        .await;
    assert_eq!((s, r["state"].as_str()), (202, Some("resolved")), "{r}");
    let (s, r) = w
        .post(
            "/v1/incidents",
            json!({"event_action": "acknowledge", "dedup_key": "pd"}),
        )
        .await;
    assert_eq!(
        (s, r["code"].as_str()),
        (409, Some("already_resolved")),
        "{r}"
    );
    // Alertmanager: a firing alert opens one, its resolution resolves it.
    let alert = |status: &str| {
        json!({"version": "4", "groupKey": "g", "status": status,
        "receiver": "warden", "alerts": [{"status": status, "fingerprint": "abc123",
        "labels": {"alertname": "DiskFull", "severity": "warning"},
        "annotations": {"summary": "disk full"}}]})
    };
    let (s, fired) = w.post("/v1/alerts/alertmanager", alert("firing")).await;
    assert_eq!(
        (s, fired["state"].as_str()),
        (202, Some("triggered")),
        "{fired}"
    );
    let (s, fired) = w.post("/v1/alerts/alertmanager", alert("firing")).await;
    assert_eq!(
        (s, fired["state"].as_str()),
        (202, Some("deduplicated")),
        "{fired}"
    );
    let (s, gone) = w.post("/v1/alerts/alertmanager", alert("resolved")).await;
    assert_eq!(
        (s, gone["state"].as_str()),
        (202, Some("resolved")),
        "{gone}"
    );
    let (_, list) = w.get("/v1/incidents?state=triggered").await;
    assert!(list["incidents"].as_array().unwrap().is_empty(), "{list}");
}

/// Reserves one unit of `sku` for `user`; the reservation id.
async fn reserve(w: &Warden, sku: &str, user: &str, ttl_ms: i64) -> (u16, Value) {
    let body = json!({"user_id": user, "quantity": 1, "ttl_ms": ttl_ms});
    w.post(&format!("/v1/inventory/{sku}/reservations"), body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_refuses_side_effects_keeps_ingestion_and_ends_only_after_a_green_window() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let recv = Receiver::start().await;
    let extra = [
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_BREAKER_OPEN_MS", "500".into()),
        ("WARDEN_FAILOVER_GRACE_MS", "300".into()),
        ("WARDEN_REDIS_TIMEOUT_MS", "100".into()),
    ];
    let w = Warden::start(&env(&pg, &recv, &extra));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    // Before: a lock granted, a key completed, stock with a confirmed-to-be hold and a short
    // one, intents queued.
    let (s, lock) = w.acquire("printer", "a", 30_000, 0).await;
    assert_eq!(s, 200, "{lock}");
    let token = lock["fencing_token"].as_i64().unwrap();
    let (s, b) = w.idem("paid", "begin", json!({})).await;
    assert_eq!(s, 201, "{b}");
    let done = json!({"token": b["token"], "response": {"ok": true}});
    assert_eq!(w.idem("paid", "complete", done).await.0, 200);
    assert_eq!(w.put_total("sku", 10).await.0, 200);
    let (s, held) = reserve(&w, "sku", "u1", 60_000).await;
    assert_eq!(s, 201, "{held}");
    let (s, short) = reserve(&w, "sku", "u2", 400).await;
    assert_eq!(s, 201, "{short}");
    for i in 1..=2 {
        let body = json!({"intent_id": format!("m{i}"), "intent_type": "send"});
        assert_eq!(w.post("/v1/streams/contact/intents", body).await.0, 201);
    }

    let (s, g) = w.post("/v1/guard/enter", json!({"reason": "drill"})).await;
    assert_eq!(
        (s, g["state"].as_str(), g["guard"].as_str()),
        (200, Some("safe_mode"), Some("safe_mode")),
        "{g}"
    );

    // Side effects: 503 safe_mode.
    let refused: Vec<(u16, Value)> = vec![
        w.acquire("other", "b", 1_000, 0).await,
        w.fence("printer", token).await,
        w.idem("new-key", "begin", json!({})).await,
        w.post(
            "/v1/streams/contact/commits",
            json!({"commit_sequence": 1, "intent_id": "m1"}),
        )
        .await,
        reserve(&w, "sku", "u3", 1_000).await,
        w.post(
            &format!(
                "/v1/reservations/{}/confirm",
                held["reservation_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await,
        w.post(
            "/v1/locks/printer/extend",
            json!({"owner": "a", "fencing_token": token, "ttl_ms": 1000}),
        )
        .await,
    ];
    for (s, v) in &refused {
        assert_eq!((*s, v["reason"].as_str()), (503, Some("safe_mode")), "{v}");
    }
    // Ingestion, replays of completed keys, releases and reads go on.
    let (s, v) = w
        .post(
            "/v1/streams/contact/intents",
            json!({"intent_id": "m3", "intent_type": "send"}),
        )
        .await;
    assert_eq!((s, v["commit_sequence"].as_i64()), (201, Some(3)), "{v}");
    let (s, v) = w.idem("paid", "begin", json!({})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("completed")), "{v}");
    let (s, v) = w
        .post(
            "/v1/dispatch/claim",
            json!({"worker": "w", "limit": 10, "lease_ms": 5000}),
        )
        .await;
    assert_eq!(
        (s, v["intents"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let (s, v) = w.release("printer", "a", token).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("released")), "{v}");
    let (s, _) = w.get("/readyz").await;
    assert_eq!(s, 200);
    // The short hold still expires and returns to stock within a second of its expiry.
    tokio::time::sleep(Duration::from_millis(1_400)).await;
    let (_, stock) = w.get("/v1/inventory/sku").await;
    assert_eq!(stock["reserved"], 1, "{stock}");
    until(Duration::from_secs(5), "the contingency message", || {
        !recv.of("owner", "guard.contingency").is_empty()
    })
    .await;

    // Exit: not without a recovery action; armed with one.
    let (s, v) = w.post("/v1/guard/exit", json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("exit_conditions_unmet")),
        "{v}"
    );
    assert_eq!(v["missing"][0]["condition"], "recovery_action", "{v}");
    let (s, v) = w
        .post(
            "/v1/guard/recovery-actions",
            json!({"action": "drill over", "detail": "nothing broke"}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (201, Some("recorded")), "{v}");
    let (s, v) = w.post("/v1/guard/exit", json!({})).await;
    assert_eq!(
        (s, v["state"].as_str(), v["guard"].as_str()),
        (202, Some("exit_armed"), Some("recovering")),
        "{v}"
    );
    // Killing Redis mid-window restarts it: still recovering (side effects refused) well
    // past the window's length.
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let (_, g) = w.get("/v1/guard").await;
    assert_eq!(g["guard"], "recovering", "{g}");
    assert_eq!(w.acquire("other", "b", 1_000, 0).await.0, 503);
    redis.restart();
    let started = Instant::now();
    guard_is(&w, "normal", Duration::from_secs(20)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(recv.of("owner", "guard.contingency").len(), 1);
    until(Duration::from_secs(5), "the exit event", || {
        !recv.of("owner", "guard.safe_mode_exited").is_empty()
    })
    .await;

    // The held intents dispatch and commit in order.
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    let (s, v) = w
        .post(
            "/v1/dispatch/claim",
            json!({"worker": "w", "limit": 10, "lease_ms": 5000}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let seqs: Vec<i64> = v["intents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["commit_sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3], "{v}");
    for (n, id) in ["m1", "m2", "m3"].iter().enumerate() {
        let body = json!({"commit_sequence": n + 1, "intent_id": id, "wait_ms": 5000});
        let (s, v) = w.post("/v1/streams/contact/commits", body).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (200, Some("committed_causal")),
            "{v}"
        );
    }

    // The audit chain holds every move, verifies, and names the entry someone edited.
    let (_, page) = w.get("/v1/audit?limit=1000").await;
    let actions: BTreeSet<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "guard.enter",
        "guard.recovery_action",
        "guard.exit_armed",
        "guard.green_window_restarted",
        "guard.exit",
    ] {
        assert!(actions.contains(a), "{a} missing from {actions:?}");
    }
    let (s, v) = w.get("/v1/audit/verify").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("intact")), "{v}");
    let edited = page["entries"][1]["seq"].as_i64().unwrap();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&pg.url()).await.unwrap();
    sqlx::query("UPDATE warden_audit SET detail = 'nothing happened' WHERE seq = $1")
        .bind(edited)
        .execute(&db)
        .await
        .unwrap();
    let (s, v) = w.get("/v1/audit/verify").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("broken")), "{v}");
    assert_eq!(v["first_bad"]["seq"], edited, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_safe_mode_and_carry_on_an_escalation_through_a_sigkill() {
    let pg = Postgres::database();
    let recv = Receiver::start().await;
    // A short delivery timeout: the claims A holds when killed end soon after.
    let quick = [("WARDEN_NOTIFY_TIMEOUT_MS", "300".into())];
    let mut a = Warden::start(&env(&pg, &recv, &quick));
    let b = Warden::start(&env(&pg, &recv, &quick));
    assert_eq!(b.acquire("k", "b", 1_000, 0).await.0, 200);
    let (s, _) = a.post("/v1/guard/enter", json!({"reason": "drill"})).await;
    assert_eq!(s, 200);
    let entered = Instant::now();
    guard_is(&b, "safe_mode", Duration::from_secs(3)).await;
    // Within one tier lease (400 ms), with room for a loaded machine's scheduling.
    assert!(
        entered.elapsed() < Duration::from_millis(400 + 500),
        "{:?}",
        entered.elapsed()
    );
    let (s, v) = b.acquire("k2", "b", 1_000, 0).await;
    assert_eq!((s, v["reason"].as_str()), (503, Some("safe_mode")), "{v}");
    let (s, v) = b.fence("k", 1).await;
    assert_eq!((s, v["reason"].as_str()), (503, Some("safe_mode")), "{v}");
    // Leave it (through B) so the escalation below starts from normal.
    assert_eq!(
        b.post("/v1/guard/recovery-actions", json!({"action": "drill"}))
            .await
            .0,
        201
    );
    assert_eq!(b.post("/v1/guard/exit", json!({})).await.0, 202);
    guard_is(&a, "normal", Duration::from_secs(10)).await;

    // An escalation A starts, A killed after round 2: B goes on without repeating or
    // skipping a round.
    let v = trigger(&a, "disk", "critical").await;
    let id = v["incident_id"].as_str().unwrap().to_owned();
    until(Duration::from_secs(5), "round 2", || {
        recv.of("owner", "incident.notify")
            .iter()
            .any(|r| r.attempt() == 2)
    })
    .await;
    a.kill();
    until(Duration::from_secs(15), "the ticket from B", || {
        !recv.of("admin", "ticket.next_shift").is_empty()
    })
    .await;
    // Past the end of any claim A held when it died.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = rounds(&recv);
    for endpoint in ["owner", "admin"] {
        assert_eq!(of(&r, endpoint, "incident.notify"), [2, 3, 4, 5], "{r:?}");
    }
    assert_eq!(of(&r, "admin", "ticket.next_shift").len(), 1, "{r:?}");
    let (_, inc) = b.get(&format!("/v1/incidents/{id}")).await;
    assert_eq!(inc["incident"]["attempts"], 5, "{inc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_with_backoff_then_dead_then_the_other_role_is_told() {
    let pg = Postgres::database();
    let recv = Receiver::start().await;
    recv.script(
        "owner",
        &[
            Reply::Status(500),
            Reply::Slow(200, Duration::from_millis(800)),
            Reply::Status(500),
        ],
    );
    recv.script("admin", &[Reply::RetryAfter(1)]);
    let extra = [
        ("WARDEN_NOTIFY_MAX_TRIES", "3".into()),
        ("WARDEN_NOTIFY_BACKOFF_MS", "100".into()),
        ("WARDEN_NOTIFY_TIMEOUT_MS", "300".into()),
    ];
    let w = Warden::start(&env(&pg, &recv, &extra));
    let v = trigger(&w, "api", "warning").await;
    let id = v["incident_id"].as_str().unwrap().to_owned();
    until(Duration::from_secs(10), "the failover copy", || {
        recv.of("admin", "incident.triggered").len() >= 3
    })
    .await;
    let owner = recv.of("owner", "incident.triggered");
    assert_eq!(owner.len(), 3, "three tries, then dead");
    assert!(
        owner.iter().all(|r| r.id == owner[0].id),
        "a retry keeps its webhook-id"
    );
    let gaps: Vec<Duration> = owner.windows(2).map(|p| p[1].at - p[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    // The superadmin: its own copy (throttled once, honoured), then the owner's failover.
    let admin = recv.of("admin", "incident.triggered");
    let throttled: Vec<_> = admin.iter().filter(|r| r.id == admin[0].id).collect();
    assert_eq!(throttled.len(), 2, "the throttled delivery is retried once");
    let waited = throttled[1].at - throttled[0].at;
    assert!(
        waited >= Duration::from_millis(1_000),
        "Retry-After: 1 honoured: {waited:?}"
    );
    let failover = admin
        .iter()
        .find(|r| r.body["data"]["failover_of"] == owner[0].id.as_str());
    let failover = failover.expect("the owner's dead delivery went to the superadmin");
    assert_eq!(failover.body["data"]["role"], "superadmin");
    // Audited, counted, and in the evidence with each try's status.
    let (_, page) = w.get("/v1/audit?limit=1000").await;
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "delivery.dead"),
        "{page}"
    );
    let metrics = w.metrics().await;
    assert!(
        metrics.contains(r#"warden_deliveries_total{role="owner",outcome="dead"} 1"#),
        "{metrics}"
    );
    let (_, pack) = w.get(&format!("/v1/incidents/{id}/evidence")).await;
    let dead = pack["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == owner[0].id.as_str())
        .unwrap();
    let statuses: Vec<i64> = dead["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 0, 500], "{dead}");
    assert_eq!(dead["state"], "dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_belong_to_their_tenant_and_the_guard_to_operators() {
    let pg = Postgres::database();
    let recv = Receiver::start().await;
    let w = Warden::start(&env(&pg, &recv, &[("WARDEN_AUTH", "required".into())]));
    let clinic = crate::support::cli_token(
        &pg.url(),
        "clinic-app",
        "clinic",
        "incidents,guard,audit",
        None,
    );
    let shop = crate::support::cli_token(&pg.url(), "shop-app", "shop", "incidents", None);
    let ops = crate::support::cli_token(
        &pg.url(),
        "on-call",
        "default",
        "incidents,guard,audit",
        None,
    );
    let body = json!({"event_action": "trigger", "dedup_key": "same-key", "severity": "warning",
        "summary": "clinic trouble", "source": "clinic"});
    let (s, v) = as_token(&w, &clinic, "POST", "/v1/incidents", body.clone()).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("triggered")), "{v}");
    let id = v["incident_id"].as_str().unwrap().to_owned();
    // Another tenant's same key is another incident; the clinic's is not visible to it.
    let (s, v) = as_token(&w, &shop, "POST", "/v1/incidents", body).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("triggered")), "{v}");
    let (s, _) = as_token(&w, &shop, "GET", &format!("/v1/incidents/{id}"), json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = as_token(
        &w,
        &shop,
        "POST",
        &format!("/v1/incidents/{id}/ack"),
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let (_, list) = as_token(&w, &shop, "GET", "/v1/incidents", json!({})).await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 1, "{list}");
    // The actor of an acknowledgement is the token's name.
    let (s, v) = as_token(
        &w,
        &clinic,
        "POST",
        &format!("/v1/incidents/{id}/ack"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["incident"]["acknowledged_by"].as_str()),
        (200, Some("clinic-app")),
        "{v}"
    );
    // The guard and the audit chain are every tenant's: operators only.
    let (s, v) = as_token(
        &w,
        &clinic,
        "POST",
        "/v1/guard/enter",
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("tenant `default`"), "{v}");
    let (s, _) = as_token(&w, &clinic, "GET", "/v1/audit", json!({})).await;
    assert_eq!(s, 403);
    let (s, v) = as_token(&w, &ops, "GET", "/v1/audit?limit=1000", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let acks: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "incident.ack")
        .collect();
    assert_eq!(acks.len(), 1, "{v}");
    assert_eq!(acks[0]["actor"], "clinic-app");
    let creations = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.create")
        .count();
    assert_eq!(creations, 3, "every token creation is audited: {v}");
    let (s, v) = as_token(
        &w,
        &ops,
        "POST",
        "/v1/guard/enter",
        json!({"reason": "drill"}),
    )
    .await;
    assert_eq!((s, v["actor"].as_str()), (200, Some("on-call")), "{v}");
}
