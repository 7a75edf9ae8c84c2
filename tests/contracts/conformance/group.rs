//! Lock groups (DESIGN §4.1), run on every backend by `conformance.rs`: all or nothing, a
//! token per key, a busy member leaving nothing held (`blocked_at`), waiting holding nothing,
//! extend and release by id, reversed key orders racing without deadlock or a partial group,
//! and bad member lists refused.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Env;

async fn group(e: &Env, owner: &str, keys: &[&str], wait_ms: i64) -> (u16, Value) {
    let locks: Vec<Value> = keys.iter().map(|k| json!({"key": k})).collect();
    let body = json!({"owner": owner, "ttl_ms": 10_000, "wait_ms": wait_ms, "locks": locks});
    e.w.post("/v1/lock-groups/acquire", body).await
}

async fn holder(e: &Env, key: &str) -> Option<String> {
    let (_, v) = e.w.get(&format!("/v1/locks/{key}")).await;
    v["owner"].as_str().map(str::to_owned)
}

pub async fn all_or_nothing(e: &Env) {
    let w = &e.w;
    let body = json!({"owner": "o1", "ttl_ms": 10_000,
        "locks": [{"key": "g-b", "mode": "shared"}, {"key": "g-a"}]});
    let (s, g) = w.post("/v1/lock-groups/acquire", body).await;
    assert_eq!(
        (s, g["state"].as_str()),
        (200, Some("lock_group_acquired")),
        "{g}"
    );
    assert_eq!(g["mode"], e.mode);
    let locks = g["locks"].as_array().unwrap();
    let keys: Vec<&str> = locks.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["g-a", "g-b"], "members in key order: {g}");
    assert_eq!(locks[1]["lock_mode"], "shared");
    assert!(locks
        .iter()
        .all(|l| l["fencing_token"].as_i64().unwrap() > 0));
    assert_eq!(holder(e, "g-a").await.as_deref(), Some("o1"));
    let id = g["group_id"].as_str().unwrap().to_owned();

    // Another group meeting a held key takes nothing, and says where it was blocked.
    let (s, v) = group(e, "o2", &["g-c", "g-a"], 0).await;
    assert_eq!(
        (s, v["state"].as_str(), v["blocked_at"].as_str()),
        (409, Some("lock_busy"), Some("g-a")),
        "{v}"
    );
    assert_eq!(v["blocked_by"], "o1", "{v}");
    assert_eq!(holder(e, "g-c").await, None, "no partial group");

    let (extend_path, release_path) = (
        format!("/v1/lock-groups/{id}/extend"),
        format!("/v1/lock-groups/{id}/release"),
    );
    let extend = |owner: &str| w.post(&extend_path, json!({"owner": owner, "ttl_ms": 20_000}));
    let (s, v) = extend("o1").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
    assert!(v["ttl_ms_remaining"].as_i64().unwrap() > 10_000, "{v}");
    let (s, v) = extend("o2").await;
    assert_eq!((s, v["state"].as_str()), (409, Some("not_owner")), "{v}");
    let release = || w.post(&release_path, json!({"owner": "o1"}));
    let (s, v) = release().await;
    assert_eq!((s, v["state"].as_str()), (200, Some("released")), "{v}");
    assert_eq!(holder(e, "g-a").await, None);
    let (s, v) = release().await;
    assert_eq!(
        (s, v["state"].as_str(), v["reason"].as_str()),
        (409, Some("lock_lost"), Some("expired")),
        "{v}"
    );

    waits_holding_nothing(e).await;
    // 1 000 rounds on the Redis Cluster, where `g-x` and `g-y` lie in different slots.
    let rounds = if e._cluster.is_some() { 1_000 } else { 60 };
    reversed_orders_never_deadlock(e, ["g-x", "g-y"], rounds).await;
    one_slot(e).await;
    bad_member_lists(e).await;
}

/// Keys sharing a hash tag (a leading `{tag}`) lie in one slot, where Redis takes the whole
/// group in one step: the answers are the same.
async fn one_slot(e: &Env) {
    let body = json!({"owner": "o1", "ttl_ms": 10_000,
        "locks": [{"key": "{s}-b", "mode": "shared"}, {"key": "{s}-a"}]});
    let (s, g) = e.w.post("/v1/lock-groups/acquire", body.clone()).await;
    assert_eq!(s, 200, "{g}");
    let tokens = |g: &Value| -> Vec<i64> {
        let locks = g["locks"].as_array().unwrap();
        locks
            .iter()
            .map(|l| l["fencing_token"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(g["locks"][1]["lock_mode"], "shared", "{g}");
    // The owner's retry finds its own leases, as one member's retry would.
    let (s, again) = e.w.post("/v1/lock-groups/acquire", body).await;
    assert_eq!((s, tokens(&again)), (200, tokens(&g)), "{again}");
    let (s, v) = group(e, "o2", &["{s}-c", "{s}-b"], 0).await;
    assert_eq!(
        (s, v["blocked_at"].as_str(), v["blocked_by"].as_str()),
        (409, Some("{s}-b"), Some("o1")),
        "{v}"
    );
    assert_eq!(holder(e, "{s}-c").await, None, "no partial group");
    let id = g["group_id"].as_str().unwrap();
    let (s, v) =
        e.w.post(
            &format!("/v1/lock-groups/{id}/release"),
            json!({"owner": "o1"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = group(e, "o2", &["{s}-c", "{s}-b"], 0).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        tokens(&v)[0] > tokens(&g)[1],
        "a later grant of {{s}}-b: {v}"
    );
    reversed_orders_never_deadlock(e, ["{s}-x", "{s}-y"], 60).await;
}

async fn waits_holding_nothing(e: &Env) {
    let (_, busy) = e.w.acquire("g-w", "x", 600, 0).await;
    assert!(busy["fencing_token"].as_i64().is_some(), "{busy}");
    let http = e.w.http.clone();
    let url = format!("{}/v1/lock-groups/acquire", e.w.base());
    let waiting = tokio::spawn(async move {
        let body = json!({"owner": "o3", "ttl_ms": 5_000, "wait_ms": 5_000,
            "locks": [{"key": "g-v"}, {"key": "g-w"}]});
        let r = http.post(url).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        holder(e, "g-v").await,
        None,
        "a waiting group holds nothing"
    );
    let (s, v) = waiting.await.unwrap();
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("lock_group_acquired")),
        "{v}"
    );
    assert_eq!(holder(e, "g-v").await.as_deref(), Some("o3"));
}

/// Two owners take `[x, y]` and `[y, x]` with `wait_ms`, `rounds` times each, each round
/// released.
async fn reversed_orders_never_deadlock(e: &Env, [x, y]: [&'static str; 2], rounds: usize) {
    let t0 = Instant::now();
    let run = |owner: &'static str, keys: [&'static str; 2]| {
        let (http, base) = (e.w.http.clone(), e.w.base());
        tokio::spawn(async move {
            let mut held = Vec::new();
            for i in 0..rounds {
                let locks: Vec<Value> = keys.iter().map(|k| json!({"key": k})).collect();
                let body =
                    json!({"owner": owner, "ttl_ms": 5_000, "wait_ms": 10_000, "locks": locks});
                let url = format!("{base}/v1/lock-groups/acquire");
                let r = http.post(url).json(&body).send().await.unwrap();
                let (s, v) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
                let got = t0.elapsed();
                assert_eq!(s, 200, "{owner} round {i}: {v}");
                let id = v["group_id"].as_str().unwrap();
                let sent = t0.elapsed();
                let url = format!("{base}/v1/lock-groups/{id}/release");
                let r = http
                    .post(url)
                    .json(&json!({"owner": owner}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200, "{owner} round {i}");
                held.push((got, sent));
            }
            held
        })
    };
    let one = run("left", [x, y]);
    let two = run("right", [y, x]);
    let (left, right) = (one.await.unwrap(), two.await.unwrap());
    // Mutual exclusion over the whole group: from the grant's answer to the release's send,
    // no interval of one owner overlaps one of the other's.
    for (a0, a1) in &left {
        for (b0, b1) in &right {
            assert!(
                a1 <= b0 || b1 <= a0,
                "left {a0:?}..{a1:?} overlaps right {b0:?}..{b1:?}"
            );
        }
    }
}

async fn bad_member_lists(e: &Env) {
    let many: Vec<String> = (0..65).map(|i| format!("g-m{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for (keys, code) in [
        (many.as_slice(), "out_of_range"),
        (&[][..], "out_of_range"),
        (&["g-d", "g-d"][..], "duplicate_key"),
        (&["g-d", ""][..], "invalid_key"),
    ] {
        let (s, v) = group(e, "o4", keys, 0).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (422, Some(code)),
            "{} keys: {v}",
            keys.len()
        );
    }
    // A tree member with an empty level; the same name as a tree key and a plain key is two
    // objects, not a duplicate.
    let locks = json!([{"key": "g-d"}, {"key": "g-t//x", "tree": true}]);
    let body = json!({"owner": "o4", "ttl_ms": 1_000, "locks": locks});
    let (s, v) = e.w.post("/v1/lock-groups/acquire", body).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("invalid_key")), "{v}");
    assert_eq!(holder(e, "g-d").await, None);
    assert_eq!(holder(e, "g-m0").await, None);
    let locks = json!([{"key": "g-e"}, {"key": "g-e", "tree": true}]);
    let body = json!({"owner": "o4", "ttl_ms": 1_000, "locks": locks});
    let (s, v) = e.w.post("/v1/lock-groups/acquire", body).await;
    assert_eq!(s, 200, "{v}");
}
