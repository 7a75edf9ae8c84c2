//! G10 through the real binary, real PostgreSQL and Redis, and a real HTTP receiver, with the
//! guard's timers shortened to hundreds of milliseconds: escalation without an ACK, an ACK
//! racing the repeats, safe mode's per-feature behaviour, the exit and its green window (reset
//! by killing Redis), held intents committing in order afterwards, the audit chain caught
//! being edited, two instances sharing the guard and the escalation through a SIGKILL, and a
//! receiver that fails, times out and throttles.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::webhooks::{Receiver, Reply};
use support::{Postgres, Redis, Warden};

/// Escalation timers: repeats every 400 ms for 2 s (rounds 1–5), safe mode at 1 s, a health
/// tick of 50 ms, a green window of 1.5 s.
fn timers() -> Vec<(&'static str, String)> {
    vec![
        ("WARDEN_GUARD_NOTIFY_INTERVAL_MS", "400".into()),
        ("WARDEN_GUARD_NOTIFY_WINDOW_MS", "2000".into()),
        ("WARDEN_GUARD_SAFE_MODE_AFTER_MS", "1000".into()),
        ("WARDEN_GUARD_EXIT_GREEN_MS", "1500".into()),
        ("WARDEN_GUARD_HEALTH_TICK_MS", "50".into()),
        ("WARDEN_TIER_LEASE_MS", "400".into()),
    ]
}

fn env(
    pg: &Postgres,
    recv: &Receiver,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut e = vec![("WARDEN_DATABASE_URL", pg.url())];
    e.extend(timers());
    e.extend(recv.settings());
    e.extend(extra.iter().cloned());
    e
}

async fn trigger(w: &Warden, key: &str, severity: &str) -> Value {
    let body = json!({"event_action": "trigger", "dedup_key": key, "severity": severity,
        "summary": format!("{key} is down"), "source": "tests"});
    let (s, v) = w.post("/v1/incidents", body).await;
    assert_eq!((s, v["state"].as_str()), (202, Some("triggered")), "{v}");
    v
}

/// Waits until `done` holds (checked every 20 ms), at most `limit`.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the guard state `w` reports (in `/v1/status`) is `state`.
async fn guard_is(w: &Warden, state: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let s = w.get("/v1/status").await.1;
        if s["guard"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "guard never {state}: {s}\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Per (endpoint, type): the rounds received, one per distinct `webhook-id` (a retry of the
/// same id is the same delivery).
fn rounds(recv: &Receiver) -> BTreeMap<(String, String), Vec<i64>> {
    let mut seen: HashMap<String, (String, String, i64)> = HashMap::new();
    for r in recv.got() {
        assert!(r.signed, "unsigned or badly signed delivery: {:?}", r.body);
        let entry = (r.endpoint.clone(), r.kind().to_owned(), r.attempt());
        if let Some(before) = seen.insert(r.id.clone(), entry.clone()) {
            assert_eq!(before, entry, "one webhook-id carried two events");
        }
    }
    let mut out: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (endpoint, kind, round) in seen.into_values() {
        out.entry((endpoint, kind)).or_default().push(round);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn of<'a>(r: &'a BTreeMap<(String, String), Vec<i64>>, endpoint: &str, kind: &str) -> &'a [i64] {
    r.get(&(endpoint.to_owned(), kind.to_owned()))
        .map_or(&[], Vec::as_slice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_critical_incident_escalates_then_files_one_ticket_then_falls_silent() {
    let pg = Postgres::start();
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
    let pg = Postgres::start();
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
    let pg = Postgres::start();
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
    let pg = Postgres::start();
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
    let pg = Postgres::start();
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

/// `method` on `path` with bearer `token`: status and body.
async fn as_token(w: &Warden, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = w
        .http
        .request(method.parse().unwrap(), format!("{}{path}", w.base()))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_belong_to_their_tenant_and_the_guard_to_operators() {
    let pg = Postgres::start();
    let recv = Receiver::start().await;
    let w = Warden::start(&env(&pg, &recv, &[("WARDEN_AUTH", "required".into())]));
    let clinic = support::cli_token(
        &pg.url(),
        "clinic-app",
        "clinic",
        "incidents,guard,audit",
        None,
    );
    let shop = support::cli_token(&pg.url(), "shop-app", "shop", "incidents", None);
    let ops = support::cli_token(
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

/// A Warden with `extra` settings that started on Redis and stays on SQL after Redis is
/// killed (the breaker stays open); the §10 rate is not judged, only the lock p95.
async fn on_fallback(
    pg: &Postgres,
    recv: &Receiver,
    redis: &mut Redis,
    extra: &[(&'static str, String)],
) -> Warden {
    let mut settings = vec![
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_BREAKER_OPEN_MS", "60000".into()),
        ("WARDEN_FAILOVER_GRACE_MS", "200".into()),
        ("WARDEN_REDIS_TIMEOUT_MS", "100".into()),
        ("WARDEN_GUARD_MIN_SAMPLES", "1000000000".into()),
    ];
    settings.extend(extra.iter().cloned());
    let w = Warden::start(&env(pg, recv, &settings));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    w
}

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
    let pg = Postgres::start();
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
