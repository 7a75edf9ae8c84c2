//! The causal stream contract (DESIGN §4, G5), run on every backend by `conformance.rs`. The
//! servers run with a 1.5 s causal wait timeout and a 300 ms replay TTL for `reminder` intents.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Env;
use crate::support::Warden;

async fn intake(w: &Warden, stream: &str, id: &str, priority: i64, ty: &str) -> (u16, Value) {
    let body = json!({"intent_id": id, "dispatch_priority": priority, "intent_type": ty,
        "payload": {"intent": id, "note": "ü"}});
    w.post(&format!("/v1/streams/{stream}/intents"), body).await
}

async fn commit(w: &Warden, stream: &str, seq: i64, id: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"commit_sequence": seq, "intent_id": id});
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(x.clone());
    }
    w.post(&format!("/v1/streams/{stream}/commits"), body).await
}

fn seq(v: &Value) -> i64 {
    v["commit_sequence"]
        .as_i64()
        .unwrap_or_else(|| panic!("no commit_sequence in {v}"))
}

async fn stream_state(w: &Warden, stream: &str) -> Value {
    let (s, v) = w.get(&format!("/v1/streams/{stream}")).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Three concurrent intents for one contact with different priorities get 1, 2, 3; dispatched
/// by priority and committed in that order, their effects still apply as 1, 2, 3.
pub async fn priority_never_reorders_commits(e: &Env) {
    let w = &e.w;
    let ids = [("book", 1), ("reschedule", 50), ("cancel", 9)];
    let calls = ids
        .iter()
        .map(|(id, p)| intake(w, "contact-1", id, *p, "book"));
    let mut by_id = HashMap::new();
    for ((id, _), (s, v)) in ids.iter().zip(futures::future::join_all(calls).await) {
        assert_eq!((s, v["state"].as_str()), (201, Some("accepted")), "{v}");
        assert_eq!(v["mode"], e.mode, "{v}");
        by_id.insert(id.to_string(), seq(&v));
    }
    let seqs: BTreeSet<i64> = by_id.values().copied().collect();
    assert_eq!(seqs, BTreeSet::from([1, 2, 3]), "{by_id:?}");

    let (s, v) = w
        .post(
            "/v1/dispatch/claim",
            json!({"worker": "w1", "limit": 10, "lease_ms": 30_000}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("claimed")), "{v}");
    let claimed: Vec<Value> = v["intents"].as_array().unwrap().clone();
    let order: Vec<&str> = claimed
        .iter()
        .map(|i| i["intent_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["reschedule", "cancel", "book"],
        "priority order: {v}"
    );
    for i in &claimed {
        assert_eq!(i["payload"]["note"], "ü");
        assert_eq!(i["stream"], "contact-1");
        assert_eq!(
            i["commit_sequence"].as_i64(),
            Some(by_id[i["intent_id"].as_str().unwrap()])
        );
        assert!(i["lease_expires_at"].as_str().unwrap().ends_with('Z'));
    }
    // Nothing is left to dispatch while the leases live.
    let (_, again) = w.post("/v1/dispatch/claim", json!({"worker": "w2"})).await;
    assert_eq!(again["intents"], json!([]), "{again}");

    // The worker commits in dispatch (priority) order, each commit waiting for its turn.
    let mut pending = Vec::new();
    for i in claimed {
        let (id, s) = (i["intent_id"].as_str().unwrap().to_owned(), seq(&i));
        let (http, url) = (
            w.http.clone(),
            format!("{}/v1/streams/contact-1/commits", w.base()),
        );
        pending.push(tokio::spawn(async move {
            let body = json!({"commit_sequence": s, "intent_id": id, "wait_ms": 10_000});
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut applied = Vec::new();
    for p in pending {
        let (s, v) = p.await.unwrap();
        assert_eq!(
            (s, v["state"].as_str()),
            (200, Some("committed_causal")),
            "{v}"
        );
        applied.push((v["version"].as_i64().unwrap(), seq(&v)));
    }
    // The version each commit produced is its place in the stream's effect order (answers
    // of commits applied in one cascade may reach their clients in any order).
    applied.sort();
    assert_eq!(
        applied,
        [(1, 1), (2, 2), (3, 3)],
        "effects apply in order 1, 2, 3"
    );
    let st = stream_state(w, "contact-1").await;
    assert_eq!(
        (&st["next_sequence"], &st["last_committed"], &st["version"]),
        (&json!(4), &json!(3), &json!(3)),
        "{st}"
    );
}

/// Duplicates, mismatches and stale versions are blocked; a gap waits, then goes to review.
pub async fn conflicts_gaps_and_review(e: &Env) {
    let w = &e.w;
    for id in ["a", "b", "c", "d"] {
        assert_eq!(intake(w, "contact-2", id, 0, "book").await.0, 201);
    }
    let (s, v) = commit(w, "contact-2", 1, "a", json!({"expected_version": 0})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("committed_causal")),
        "{v}"
    );
    assert_eq!(v["version"], 1);
    let blocked = |v: &Value, reason: &str| {
        assert_eq!(v["state"], "blocked_conflict", "{v}");
        assert_eq!(v["reason"], reason, "{v}");
    };
    let (s, v) = commit(w, "contact-2", 1, "a", json!({})).await;
    assert_eq!(s, 409);
    blocked(&v, "already_committed");
    let (s, v) = commit(w, "contact-2", 2, "c", json!({})).await;
    assert_eq!(s, 409);
    blocked(&v, "intent_mismatch");
    let (s, v) = commit(w, "contact-2", 2, "b", json!({"expected_version": 0})).await;
    assert_eq!(s, 409);
    blocked(&v, "version_mismatch");
    assert_eq!(v["version"], 1, "{v}");
    let (s, v) = commit(w, "contact-2", 9, "zz", json!({})).await;
    assert_eq!(s, 409);
    blocked(&v, "unknown_intent");

    // A gap: sequence 3 arrives before 2. It waits (wait_ms), answers 202, stays parked.
    let started = Instant::now();
    let (s, v) = commit(w, "contact-2", 3, "c", json!({"wait_ms": 300})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (202, Some("waiting_previous_commit")),
        "{v}"
    );
    assert_eq!(v["next_expected"], 2);
    assert!(started.elapsed() >= Duration::from_millis(280), "it waited");
    let st = stream_state(w, "contact-2").await;
    assert_eq!(st["waiting"][0]["commit_sequence"], 3, "{st}");
    assert_eq!(st["waiting"][0]["intent_id"], "c", "{st}");
    assert_eq!(st["last_committed"], 1);

    // Still parked after the causal wait timeout (1.5 s): it goes to manual review.
    let deadline = Instant::now() + Duration::from_secs(10);
    let item = loop {
        let (s, v) = w.get("/v1/review").await;
        assert_eq!(s, 200, "{v}");
        let found = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["stream"] == "contact-2" && i["reason"] == "causal_timeout");
        if let Some(i) = found {
            break i.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no review item: {v}\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (item["intent_id"].as_str(), item["commit_sequence"].as_i64()),
        (Some("c"), Some(3))
    );
    assert_eq!(item["status"], "open");
    assert!(item["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(stream_state(w, "contact-2").await["waiting"], json!([]));

    // Its predecessor commits; the reviewed commit does not apply by itself.
    let (s, v) = commit(w, "contact-2", 2, "b", json!({"expected_version": 1})).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(2)), "{v}");
    assert_eq!(stream_state(w, "contact-2").await["last_committed"], 2);
    let (s, v) = commit(w, "contact-2", 3, "c", json!({})).await;
    assert_eq!(s, 409);
    blocked(&v, "in_review");

    // A reviewer requeues it (recorded with the actor); then it commits in order.
    let path = format!("/v1/review/{}/resolve", item["id"].as_str().unwrap());
    let body = json!({"action": "requeue", "actor": "nurse-7", "note": "sequence 2 arrived"});
    let (s, v) = w.post(&path, body.clone()).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("resolved")), "{v}");
    assert_eq!(
        (v["item"]["action"].as_str(), v["item"]["actor"].as_str()),
        (Some("requeue"), Some("nurse-7"))
    );
    let (s, v) = w.post(&path, body).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_resolved")),
        "{v}"
    );
    let (_, v) = w.get("/v1/review?state=resolved&limit=1000").await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == item["id"] && i["actor"] == "nurse-7"),
        "{v}"
    );
    let (s, v) = commit(w, "contact-2", 3, "c", json!({})).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(3)), "{v}");

    // A parked commit whose expected version no longer matches when its turn comes.
    let (s, v) = commit(w, "contact-2", 5, "zz", json!({})).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(intake(w, "contact-2", "e", 0, "book").await.0, 201);
    let (s, _) = commit(w, "contact-2", 5, "e", json!({"expected_version": 3})).await;
    assert_eq!(s, 202);
    let (s, v) = commit(w, "contact-2", 4, "d", json!({})).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(4)), "{v}");
    let (_, v) = commit(w, "contact-2", 5, "e", json!({})).await;
    blocked(&v, "in_review");
    let (_, v) = w.get("/v1/review").await;
    let conflict = v["items"].as_array().unwrap().iter().any(|i| {
        i["stream"] == "contact-2" && i["intent_id"] == "e" && i["reason"] == "version_conflict"
    });
    assert!(conflict, "{v}");
}

/// Replay checks the TTL first, then the version, and only then answers `replayed`.
pub async fn replay_fences(e: &Env) {
    let w = &e.w;
    assert_eq!(intake(w, "contact-3", "r1", 0, "book").await.0, 201);
    assert_eq!(intake(w, "contact-3", "r2", 0, "reminder").await.0, 201);
    assert_eq!(commit(w, "contact-3", 1, "r1", json!({})).await.0, 200);
    let replay = |id: &'static str, as_of: i64| async move {
        let path = format!("/v1/streams/contact-3/intents/{id}/replay");
        w.post(&path, json!({ "as_of_version": as_of })).await
    };
    let (s, v) = replay("r1", 1).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("replayed")), "{v}");
    assert_eq!(
        (v["version"].as_i64(), v["commit_sequence"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["intent"]["payload"]["intent"], "r1");
    let (s, v) = replay("r1", 0).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("conflict_blocked")),
        "{v}"
    );
    assert_eq!(v["version"], 1);
    let (s, v) = replay("nope", 1).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("unknown_intent")),
        "{v}"
    );

    // `reminder` intents live 300 ms: later, replay is refused whatever the version, and the
    // intent waits for a human.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for as_of in [1, 0] {
        let (s, v) = replay("r2", as_of).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (410, Some("expired_manual")),
            "{v}"
        );
    }
    let (_, v) = w.get("/v1/review").await;
    let items: Vec<&Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["stream"] == "contact-3")
        .collect();
    assert_eq!(
        items.len(),
        1,
        "one open item, however often it is asked: {v}"
    );
    assert_eq!(items[0]["reason"], "expired_replay");
    let m = w.metrics().await;
    for state in ["replayed", "conflict_blocked", "expired_manual"] {
        let series = format!("warden_answers_total{{op=\"stream_replay\",state=\"{state}\"}}");
        assert!(m.contains(&series), "{series} missing");
    }
    assert!(m.contains("warden_review_open"), "review depth gauge");
}

/// Intake is idempotent on `intent_id`; other content under the same id is a conflict.
pub async fn intake_is_idempotent(e: &Env) {
    let w = &e.w;
    let (s, a) = intake(w, "contact-4", "x", 3, "book").await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = intake(w, "contact-4", "x", 3, "book").await;
    assert_eq!((s, seq(&b)), (200, seq(&a)), "{b}");
    let (s, v) = intake(w, "contact-4", "x", 4, "book").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("intent_conflict")),
        "{v}"
    );
    assert_eq!(stream_state(w, "contact-4").await["next_sequence"], 2);
    let (s, v) = w.get("/v1/streams/never-used").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("unknown_stream")),
        "{v}"
    );
    // 40 racing intakes of 20 ids: 20 sequences, 1..=20, each id keeping one.
    let ids: Vec<String> = (0..40).map(|i| format!("id{}", i % 20)).collect();
    let calls = ids.iter().map(|id| intake(w, "contact-5", id, 0, "book"));
    let mut seen: HashMap<String, i64> = HashMap::new();
    for (s, v) in futures::future::join_all(calls).await {
        assert!(s == 200 || s == 201, "{v}");
        let id = v["intent_id"].as_str().unwrap().to_owned();
        if let Some(prev) = seen.insert(id, seq(&v)) {
            assert_eq!(prev, seq(&v), "{v}");
        }
    }
    let seqs: BTreeSet<i64> = seen.values().copied().collect();
    assert_eq!(seqs, (1..=20).collect(), "no sequence reused or skipped");
}

/// A dispatch lease that runs out returns its intent to the queue.
pub async fn expired_leases_return_to_the_queue(e: &Env) {
    let w = &e.w;
    assert_eq!(intake(w, "contact-6", "l", 1_000_000, "book").await.0, 201);
    let claim = |worker: &str| {
        w.post(
            "/v1/dispatch/claim",
            json!({"worker": worker, "limit": 1, "lease_ms": 300}),
        )
    };
    let (_, v) = claim("w1").await;
    assert_eq!(v["intents"][0]["intent_id"], "l", "{v}");
    let (_, v) = claim("w2").await;
    assert_ne!(v["intents"][0]["intent_id"], "l", "leased: {v}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, v) = claim("w3").await;
    assert_eq!(v["intents"][0]["intent_id"], "l", "back in the queue: {v}");
}
