//! Lock hierarchy (DESIGN §4.1, `tree: true`), run on every backend by `conformance.rs`: an
//! exclusive parent excludes its children and the reverse, shared with shared is compatible at
//! any level, `blocked_at` names where the conflict is, intentions move with extends and end
//! with releases and expiries, one counter per tree orders a later parent holder after a stale
//! child holder, and a tree key is a namespace of its own.

use std::time::Duration;

use serde_json::{json, Value};

use super::{token, Env};

/// `key` as a path segment: its levels' `/` percent-encoded.
fn seg(key: &str) -> String {
    key.replace('/', "%2F")
}

async fn take(e: &Env, key: &str, owner: &str, ttl_ms: i64, mode: &str) -> (u16, Value) {
    let body = json!({"owner": owner, "ttl_ms": ttl_ms, "mode": mode, "tree": true});
    e.w.post(&format!("/v1/locks/{}/acquire", seg(key)), body)
        .await
}

async fn give_back(e: &Env, key: &str, owner: &str, v: &Value) {
    let body = json!({"owner": owner, "fencing_token": token(v), "tree": true});
    let (s, r) =
        e.w.post(&format!("/v1/locks/{}/release", seg(key)), body)
            .await;
    assert_eq!((s, r["state"].as_str()), (200, Some("released")), "{r}");
}

/// `owner`'s ask of `key` is refused, blocked by `by` at `at`.
async fn refused(e: &Env, key: &str, owner: &str, mode: &str, by: &str, at: &str) {
    let (s, v) = take(e, key, owner, 5_000, mode).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (409, Some("lock_busy")),
        "{key} {mode}: {v}"
    );
    assert_eq!(
        (v["blocked_by"].as_str(), v["blocked_at"].as_str()),
        (Some(by), Some(at)),
        "{key} {mode}: {v}"
    );
}

/// An exclusive ask of `owner` that waits up to 5 s, in a task of its own.
fn waiting(e: &Env, key: &str, owner: &str) -> tokio::task::JoinHandle<(u16, Value)> {
    let http = e.w.http.clone();
    let url = format!("{}/v1/locks/{}/acquire", e.w.base(), seg(key));
    let body = json!({"owner": owner, "ttl_ms": 5_000, "wait_ms": 5_000, "tree": true});
    tokio::spawn(async move {
        let r = http.post(url).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    })
}

async fn check(e: &Env, resource: &str, t: i64) -> (u16, Value) {
    let body = json!({"token": t});
    e.w.post(&format!("/v1/fences/{resource}/check"), body)
        .await
}

pub async fn hierarchy(e: &Env) {
    // An exclusive parent excludes every lease below it, at any depth.
    let (s, clinic) = take(e, "t1", "admin", 30_000, "exclusive").await;
    assert_eq!(
        (s, clinic["lock_mode"].as_str()),
        (200, Some("exclusive")),
        "{clinic}"
    );
    refused(e, "t1/c:42", "nurse", "shared", "admin", "t1").await;
    refused(e, "t1/c:42", "nurse", "exclusive", "admin", "t1").await;
    refused(e, "t1/c:42/note:1", "nurse", "shared", "admin", "t1").await;
    // An owner never blocks itself: the parent's holder takes a child.
    let (s, own) = take(e, "t1/c:1", "admin", 30_000, "exclusive").await;
    assert_eq!(s, 200, "{own}");
    give_back(e, "t1/c:1", "admin", &own).await;
    give_back(e, "t1", "admin", &clinic).await;

    // A shared child excludes an exclusive parent, not a shared one.
    let (s, reading) = take(e, "t1/c:42", "nurse", 30_000, "shared").await;
    assert_eq!(s, 200, "{reading}");
    let (s, peer) = take(e, "t1", "auditor", 30_000, "shared").await;
    assert_eq!(s, 200, "shared with shared: {peer}");
    // The key's own holders are named first, then the levels above it, then those below.
    refused(e, "t1", "admin", "exclusive", "auditor", "t1").await;
    give_back(e, "t1", "auditor", &peer).await;
    refused(e, "t1", "admin", "exclusive", "nurse", "t1/c:42").await;
    // An exclusive child excludes a shared parent too; siblings do not meet.
    let (s, writing) = take(e, "t1/c:43", "doctor", 30_000, "exclusive").await;
    assert_eq!(s, 200, "{writing}");
    refused(e, "t1", "auditor", "shared", "doctor", "t1/c:43").await;
    let (s, sibling) = take(e, "t1/c:44", "other", 30_000, "exclusive").await;
    assert_eq!(s, 200, "siblings are independent: {sibling}");
    give_back(e, "t1/c:44", "other", &sibling).await;
    // A shared parent excludes an exclusive child, not a shared one.
    let (s, peer) = take(e, "t2", "auditor", 30_000, "shared").await;
    assert_eq!(s, 200, "{peer}");
    refused(e, "t2/c:1", "doctor", "exclusive", "auditor", "t2").await;
    let (s, r) = take(e, "t2/c:1", "nurse", 30_000, "shared").await;
    assert_eq!(s, 200, "{r}");

    // A tree key is not the plain key of the same name, and is read with `tree`.
    let (s, plain) = e.w.acquire("t1", "stranger", 5_000, 0).await;
    assert_eq!(s, 200, "the plain key is another object: {plain}");
    assert_eq!(e.w.release("t1", "stranger", token(&plain)).await.0, 200);
    let (s, v) = e.w.get("/v1/locks/t1%2Fc:43?tree=true").await;
    assert_eq!((s, v["owner"].as_str()), (200, Some("doctor")), "{v}");
    let (s, v) = e.w.get("/v1/locks/t1%2Fc:43").await;
    assert_eq!((s, v["state"].as_str()), (404, Some("not_held")), "{v}");

    // One counter per tree: a stale child holder's token loses to a later parent holder's.
    let stale = token(&writing);
    assert_eq!(check(e, "t1-db", stale).await.0, 200);
    give_back(e, "t1/c:43", "doctor", &writing).await;
    give_back(e, "t1/c:42", "nurse", &reading).await;
    let (s, later) = take(e, "t1", "admin", 30_000, "exclusive").await;
    assert_eq!(s, 200, "released children leave no intention: {later}");
    assert!(token(&later) > stale, "{later} after {stale}");
    assert_eq!(check(e, "t1-db", token(&later)).await.0, 200);
    let (s, v) = check(e, "t1-db", stale).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("stale_token")), "{v}");
    give_back(e, "t1", "admin", &later).await;

    // An intention moves with its lease's extend, and ends with its expiry.
    let (s, short) = take(e, "t3/a/b", "nurse", 300, "exclusive").await;
    assert_eq!(s, 200, "{short}");
    let body = json!({"owner": "nurse", "fencing_token": token(&short), "ttl_ms": 1_500,
                      "tree": true});
    let (s, v) = e.w.post("/v1/locks/t3%2Fa%2Fb/extend", body).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("extended")), "{v}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    refused(e, "t3", "admin", "exclusive", "nurse", "t3/a/b").await;
    refused(e, "t3/a", "admin", "shared", "nurse", "t3/a/b").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (s, v) = take(e, "t3", "admin", 5_000, "exclusive").await;
    assert_eq!(s, 200, "an expired child leaves no intention: {v}");

    // A waiting parent is granted once the child below it goes.
    let (s, child) = take(e, "t4/x", "nurse", 30_000, "exclusive").await;
    assert_eq!(s, 200, "{child}");
    let waiter = waiting(e, "t4", "admin");
    tokio::time::sleep(Duration::from_millis(200)).await;
    give_back(e, "t4/x", "nurse", &child).await;
    let (s, v) = waiter.await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert!(token(&v) > token(&child));

    // A waiting exclusive parent keeps new leases below it out, so a stream of short child
    // leases cannot starve it.
    let (s, child) = take(e, "t6/c:1", "nurse", 30_000, "shared").await;
    assert_eq!(s, 200, "{child}");
    let waiter = waiting(e, "t6", "admin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    refused(e, "t6/c:2", "aide", "shared", "admin", "t6").await;
    refused(e, "t6/c:2/x", "aide", "exclusive", "admin", "t6").await;
    give_back(e, "t6/c:1", "nurse", &child).await;
    let (s, v) = waiter.await.unwrap();
    assert_eq!(s, 200, "{v}");

    // A lock group may hold tree keys: two siblings together exclude their parent until the
    // group is released; a group meeting a held parent takes nothing and names the parent.
    let body = json!({"owner": "nurse", "ttl_ms": 30_000,
        "locks": [{"key": "t7/a", "tree": true}, {"key": "t7/b", "tree": true, "mode": "shared"}]});
    let (s, g) = e.w.post("/v1/lock-groups/acquire", body).await;
    assert_eq!(
        (s, g["locks"][0]["tree"].as_bool()),
        (200, Some(true)),
        "{g}"
    );
    refused(e, "t7", "admin", "exclusive", "nurse", "t7/a").await;
    let (s, v) = take(e, "t7/b", "aide", 30_000, "shared").await;
    assert_eq!(s, 200, "a shared member admits other readers: {v}");
    give_back(e, "t7/b", "aide", &v).await;
    let id = g["group_id"].as_str().unwrap();
    let (s, v) =
        e.w.post(
            &format!("/v1/lock-groups/{id}/release"),
            json!({"owner": "nurse"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, parent) = take(e, "t7", "admin", 30_000, "exclusive").await;
    assert_eq!(s, 200, "the released group left no intention: {parent}");
    let body = json!({"owner": "nurse", "ttl_ms": 30_000,
        "locks": [{"key": "t8"}, {"key": "t7/c", "tree": true}]});
    let (s, v) = e.w.post("/v1/lock-groups/acquire", body).await;
    assert_eq!(
        (s, v["blocked_at"].as_str(), v["blocked_by"].as_str()),
        (409, Some("t7"), Some("admin")),
        "{v}"
    );
    assert_eq!(
        e.w.acquire("t8", "other", 1_000, 0).await.0,
        200,
        "nothing of it held"
    );
    give_back(e, "t7", "admin", &parent).await;

    // Bad tree keys are refused and change nothing.
    for bad in ["t5%2F%2Fx", "%2Ft5", "t5%2F"] {
        let (s, v) = take(e, bad, "nurse", 5_000, "exclusive").await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid_key")),
            "{bad}: {v}"
        );
    }
    let deep = vec!["l"; 17].join("%2F");
    let (s, v) = take(e, &deep, "nurse", 5_000, "exclusive").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_key")), "{v}");
    let (s, v) = take(e, "t5", "other", 5_000, "exclusive").await;
    assert_eq!(s, 200, "the refused asks left nothing: {v}");
}
