//! Deny by default (G9) through the real binary: every endpoint refuses a missing, malformed,
//! unknown, revoked or expired token with 401 and a token without its scope with 403, before
//! anything changes; tenants see and touch only their own objects; a revocation reaches a
//! second instance within one tier lease; protected mode serves loopback only until the first
//! token exists; and no secret ever reaches the log.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{cli_token, Postgres, Redis, Warden};
use serde_json::{json, Value};

/// Sends `method path` with `token` (if any) and `body`: status, `code`-bearing JSON, and the
/// `WWW-Authenticate` header.
async fn call(
    w: &Warden,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let mut req = w
        .http
        .request(method.parse().unwrap(), format!("{}{path}", w.base()));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if method != "GET" && method != "DELETE" {
        req = req.json(body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap_or(Value::Null), challenge)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every operation of the OpenAPI document (generated from the router) with its path
/// parameters filled, and whether it is public.
fn operations(spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let filled = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "k" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            out.push((method.to_uppercase(), filled));
        }
    }
    out
}

/// A body that would be accepted by most POST endpoints if the access check let it through.
fn plausible_body() -> Value {
    json!({"owner": "o", "ttl_ms": 60000, "token": 1, "fencing_token": 1, "total": 5,
           "user_id": "u", "quantity": 1, "intent_id": "i", "intent_type": "t",
           "worker": "w", "limit": 10, "lease_ms": 1000, "response": {}, "seq": 1,
           "commit_sequence": 1, "action": "dismiss", "actor": "a", "name": "n",
           "tenant": "default", "scopes": ["admin"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_strangers_and_wrong_scopes_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/w.db", dir.path().display());
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", db.clone()),
        ("WARDEN_AUTH", "required".into()),
        ("WARDEN_TIER_LEASE_MS", "500".into()),
    ]);
    w.wait_readyz(Duration::from_secs(10)).await;
    let all = "locks,idempotency,streams,review,reservations,inventory,metrics,admin";
    let root = cli_token(&db, "root", "default", all, None);
    let metrics_only = cli_token(&db, "scraper", "default", "metrics", None);
    let locks_only = cli_token(&db, "worker", "default", "locks", None);
    let expiring = cli_token(&db, "brief", "default", all, Some(1));
    let revoked = cli_token(&db, "gone", "default", all, None);
    let (_, listed, _) = call(&w, "GET", "/v1/tokens", Some(&bearer(&root)), &Value::Null).await;
    let id_of = |t: &str| t.split('_').nth(1).unwrap().to_owned();
    let (s, v, _) = call(
        &w,
        "DELETE",
        &format!("/v1/tokens/{}", id_of(&revoked)),
        Some(&bearer(&root)),
        &Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("token_revoked")),
        "{v}"
    );
    let tokens_before = listed["tokens"].as_array().unwrap().len();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let unknown = "wdn_0123456789abcdef_".to_owned() + &"0".repeat(64);
    let strangers: Vec<(String, Option<String>)> = vec![
        ("no token".into(), None),
        ("not bearer".into(), Some("Basic cm9vdDpyb290".into())),
        ("malformed".into(), Some("Bearer wdn_nope".into())),
        ("unknown".into(), Some(bearer(&unknown))),
        (
            "a wrong secret".into(),
            Some(bearer(&format!("wdn_{}_{}", id_of(&root), "f".repeat(64)))),
        ),
        ("revoked".into(), Some(bearer(&revoked))),
        ("expired".into(), Some(bearer(&expiring))),
    ];
    let (_, spec, _) = call(&w, "GET", "/openapi.json", None, &Value::Null).await;
    let ops = operations(&spec);
    assert!(
        ops.len() > 20,
        "the document lists the router's operations: {}",
        ops.len()
    );
    let body = plausible_body();
    let mut checked = 0;
    for (method, path) in &ops {
        let public = matches!(path.as_str(), "/healthz" | "/readyz" | "/openapi.json");
        for (who, auth) in &strangers {
            let (s, v, challenge) = call(&w, method, path, auth.as_deref(), &body).await;
            if public {
                assert!(
                    s < 400 || s == 503,
                    "{method} {path} is public, {who} got {s}: {v}"
                );
                continue;
            }
            assert_eq!(
                (s, v["code"].as_str()),
                (401, Some("unauthenticated")),
                "{method} {path} with {who}: {v}"
            );
            assert!(
                challenge.is_some_and(|c| c.starts_with("Bearer")),
                "{method} {path}: no WWW-Authenticate"
            );
            checked += 1;
        }
        if public || path == "/v1/status" {
            continue;
        }
        // A token without the route's scope: `locks` for everything but the lock routes
        // (locks, fences, semaphores, lock groups), `metrics` for those.
        let lock_route = [
            "/v1/locks",
            "/v1/fences",
            "/v1/semaphores",
            "/v1/lock-groups",
        ];
        let wrong = if lock_route.iter().any(|p| path.starts_with(p)) {
            &metrics_only
        } else {
            &locks_only
        };
        let (s, v, _) = call(&w, method, path, Some(&bearer(wrong)), &body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path} with a wrong scope: {v}"
        );
    }
    assert!(checked > 100, "{checked} refusals checked");

    // Nothing changed: no lock, stock, stream, review item or token appeared, and the
    // idempotency key starts fresh with the epoch's first token.
    let root = bearer(&root);
    let get = |path: &'static str| call(&w, "GET", path, Some(&root), &Value::Null);
    assert_eq!(get("/v1/locks/k").await.0, 404);
    assert_eq!(get("/v1/inventory/k").await.0, 404);
    assert_eq!(get("/v1/streams/k").await.0, 404);
    let (_, review, _) = get("/v1/review?state=all").await;
    assert_eq!(
        review["items"].as_array().map(Vec::len),
        Some(0),
        "{review}"
    );
    let (_, listed, _) = get("/v1/tokens").await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), tokens_before);
    let (s, v, _) = call(
        &w,
        "POST",
        "/v1/idempotency/k/begin",
        Some(&root),
        &json!({}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (201, Some("started")), "{v}");
    assert_eq!(
        v["token"].as_i64().unwrap() & 0xffff_ffff,
        1,
        "no earlier claim of k"
    );

    // Refusals are counted by code.
    let (_, text, _) = (
        0,
        w.http
            .get(format!("{}/metrics", w.base()))
            .header("authorization", &root)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        (),
    );
    let count = |code: &str| {
        crate::support::metric(
            &text,
            &format!("warden_access_denied_total{{code=\"{code}\"}}"),
        )
    };
    assert!(count("unauthenticated") >= checked as f64, "{text}");
    assert!(count("forbidden") > 20.0);

    // No secret ever reached the log.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = std::fs::read_to_string(&w.log).unwrap();
    for t in [&root[7..], &metrics_only, &locks_only, &expiring, &revoked] {
        let secret = t.rsplit('_').next().unwrap();
        assert!(!log.contains(secret), "a token secret is in the log");
    }
    assert!(
        log.contains("token revoked"),
        "the revocation is logged (by id)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_and_touch_only_their_own_objects() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let mut env = crate::support::fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_AUTH", "required".into()));
    let w = Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    let scopes = "locks,idempotency,streams,review,reservations,inventory";
    let clinic = bearer(&cli_token(&pg.url(), "clinic-app", "clinic", scopes, None));
    let shop = bearer(&cli_token(&pg.url(), "shop-app", "shop", scopes, None));
    let (_, ready) = w.get("/readyz").await;
    assert_eq!(
        ready["tier"], "redis",
        "the CLI, run without Redis, switched nothing: {ready}"
    );
    let post = |auth: &String, path: &str, body: Value| {
        let (auth, path) = (auth.clone(), path.to_owned());
        let w = &w;
        async move {
            let (s, v, _) = call(w, "POST", &path, Some(&auth), &body).await;
            (s, v)
        }
    };
    let get = |auth: &String, path: &str| {
        let (auth, path) = (auth.clone(), path.to_owned());
        let w = &w;
        async move {
            let (s, v, _) = call(w, "GET", &path, Some(&auth), &Value::Null).await;
            (s, v)
        }
    };

    // Locks: the same key is two locks.
    let (s, a) = post(
        &clinic,
        "/v1/locks/k/acquire",
        json!({"owner": "nurse", "ttl_ms": 60000}),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    let (s, b) = post(
        &shop,
        "/v1/locks/k/acquire",
        json!({"owner": "cart", "ttl_ms": 60000}),
    )
    .await;
    assert_eq!(s, 200, "the shop's k is not the clinic's: {b}");
    assert_eq!(get(&shop, "/v1/locks/k").await.1["owner"], "cart");
    let token = a["fencing_token"].as_i64().unwrap();
    let (s, v) = post(
        &shop,
        "/v1/locks/k/release",
        json!({"owner": "nurse", "fencing_token": token}),
    )
    .await;
    assert_eq!(s, 409, "the shop cannot release the clinic's lock: {v}");
    let (s, v) = get(&clinic, "/v1/locks/k").await;
    assert_eq!(
        (s, v["owner"].as_str()),
        (200, Some("nurse")),
        "{v}\n{}",
        w.tail_log()
    );

    // Stock and reservations.
    let (s, _, _) = call(
        &w,
        "PUT",
        "/v1/inventory/sku",
        Some(&clinic),
        &json!({"total": 5}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = get(&shop, "/v1/inventory/sku").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("unknown_sku")), "{v}");
    let (s, v) = post(
        &shop,
        "/v1/inventory/sku/reservations",
        json!({"user_id": "u", "quantity": 1}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (409, Some("out_of_stock")), "{v}");
    let (s, r) = post(
        &clinic,
        "/v1/inventory/sku/reservations",
        json!({"user_id": "u", "quantity": 1}),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    let id = r["reservation_id"].as_str().unwrap().to_owned();
    assert!(
        !id.contains('\u{1f}'),
        "ids are answered as the tenant names them: {id}"
    );
    let (s, v) = post(&shop, &format!("/v1/reservations/{id}/confirm"), json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("unknown_reservation")),
        "{v}"
    );
    let (s, v) = get(&clinic, "/v1/inventory/sku").await;
    assert_eq!(
        (s, v["reserved"].as_i64(), v["sku"].as_str()),
        (200, Some(1), Some("sku")),
        "{v}"
    );
    let (s, v) = post(
        &clinic,
        &format!("/v1/reservations/{id}/confirm"),
        json!({}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("confirmed")), "{v}");

    // Idempotency keys.
    let (s, v) = post(&clinic, "/v1/idempotency/pay-1/begin", json!({})).await;
    assert_eq!(s, 201, "{v}");
    let claim = v["token"].as_i64().unwrap();
    let (s, v) = post(
        &clinic,
        "/v1/idempotency/pay-1/complete",
        json!({"token": claim, "response": {"ok": 1}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&shop, "/v1/idempotency/pay-1/begin", json!({})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (201, Some("started")),
        "the shop's pay-1 is new: {v}"
    );

    // Streams, dispatch and review.
    let (s, v) = post(
        &clinic,
        "/v1/streams/contact-1/intents",
        json!({"intent_id": "m1", "intent_type": "send"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = get(&shop, "/v1/streams/contact-1").await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = post(
        &shop,
        "/v1/dispatch/claim",
        json!({"worker": "w", "limit": 10, "lease_ms": 1000}),
    )
    .await;
    assert_eq!(
        (s, v["intents"].as_array().map(Vec::len)),
        (200, Some(0)),
        "the shop leases none of the clinic's intents: {v}"
    );
    let (s, v) = post(
        &clinic,
        "/v1/dispatch/claim",
        json!({"worker": "w", "limit": 10, "lease_ms": 1000}),
    )
    .await;
    assert_eq!(
        (s, v["intents"][0]["stream"].as_str()),
        (200, Some("contact-1")),
        "{v}"
    );

    // An admin acts on another tenant only by naming it; others may not.
    let admin = bearer(&cli_token(&pg.url(), "ops", "default", "admin,locks", None));
    let as_clinic = |auth: &String| {
        w.http
            .get(format!("{}/v1/locks/k", w.base()))
            .header("authorization", auth.as_str())
            .header("x-warden-tenant", "clinic")
    };
    let v: Value = as_clinic(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["owner"], "nurse", "{v}");
    assert_eq!(
        as_clinic(&shop).send().await.unwrap().status().as_u16(),
        403
    );
    let bad = w
        .http
        .get(format!("{}/v1/locks/k", w.base()))
        .header("authorization", admin.as_str())
        .header("x-warden-tenant", "Not A Tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    // Fences: the same resource is two fences.
    assert_eq!(
        post(&clinic, "/v1/fences/res/check", json!({"token": 100}))
            .await
            .0,
        200
    );
    let (s, v) = post(&shop, "/v1/fences/res/check", json!({"token": 1})).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("accepted")), "{v}");

    // Across a failover to SQL and a fail-back to Redis (whose arming copies SQL's leases in),
    // the same key stays two locks.
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(15)).await;
    let lock = |owner: &str| json!({"owner": owner, "ttl_ms": 60000});
    let (s, v) = post(&clinic, "/v1/locks/k2/acquire", lock("nurse")).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("fallback")), "{v}");
    let (s, v) = post(&shop, "/v1/locks/k2/acquire", lock("cart")).await;
    assert_eq!(s, 200, "on SQL too, the shop's k2 is its own: {v}");
    let (s, v) = get(&shop, "/v1/inventory/sku").await;
    assert_eq!(s, 404, "{v}");
    redis.restart();
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    assert_eq!(get(&clinic, "/v1/locks/k2").await.1["owner"], "nurse");
    assert_eq!(get(&shop, "/v1/locks/k2").await.1["owner"], "cart");
    let (s, v) = post(&shop, "/v1/locks/k2/acquire", lock("thief")).await;
    assert_eq!((s, v["state"].as_str()), (409, Some("lock_busy")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_another_instance_within_one_tier_lease() {
    let pg = Postgres::database();
    let env = || {
        vec![
            ("WARDEN_DATABASE_URL", pg.url()),
            ("WARDEN_AUTH", "required".into()),
            ("WARDEN_TIER_LEASE_MS", "500".into()),
        ]
    };
    let one = Warden::start(&env());
    let two = Warden::start(&env());
    one.wait_readyz(Duration::from_secs(10)).await;
    two.wait_readyz(Duration::from_secs(10)).await;
    let admin = bearer(&cli_token(&pg.url(), "ops", "default", "admin", None));
    let worker = cli_token(&pg.url(), "worker", "default", "locks", None);
    async fn acquire(w: &Warden, token: &str, key: &str) -> u16 {
        let path = format!("/v1/locks/{key}/acquire");
        let body = json!({"owner": "o", "ttl_ms": 1000});
        call(w, "POST", &path, Some(&bearer(token)), &body).await.0
    }
    // Both instances have checked the token (and keep it for a tier lease).
    assert_eq!(acquire(&two, &worker, "a").await, 200);
    assert_eq!(acquire(&one, &worker, "b").await, 200);
    let id = worker.split('_').nth(1).unwrap();
    let (s, v, _) = call(
        &one,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        Some(&admin),
        &Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let revoked_at = Instant::now();
    assert_eq!(
        acquire(&one, &worker, "c").await,
        401,
        "refused at once where it was revoked"
    );
    loop {
        if acquire(&two, &worker, "d").await == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(500 + 400),
            "instance two still accepts a token revoked {:?} ago",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The first address of this machine that is not loopback, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .split_whitespace()
        .filter_map(|a| a.parse().ok())
        .find(|a: &std::net::IpAddr| !a.is_loopback() && a.is_ipv4())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_mode_serves_loopback_until_the_first_token_and_strangers_never() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/w.db", dir.path().display());
    let w = Warden::start_on("0.0.0.0", &[("WARDEN_DATABASE_URL", db)]);
    let port = w.port;
    w.wait_readyz(Duration::from_secs(10)).await;
    let body = json!({"owner": "o", "ttl_ms": 1000});
    let (s, v, _) = call(&w, "POST", "/v1/locks/a/acquire", None, &body).await;
    assert_eq!(s, 200, "a newcomer's curl on localhost works: {v}");
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert_eq!(
        log.matches("protected mode").count(),
        1,
        "start-up says so once"
    );
    let outside = outside_address();
    if let Some(ip) = outside {
        let r = w
            .http
            .post(format!("http://{ip}:{port}/v1/locks/b/acquire"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            401,
            "a stranger on {ip} needs a token even now"
        );
    } else {
        assert!(
            std::env::var("CI").is_err(),
            "no non-loopback address to test from"
        );
    }
    let (s, created, _) = call(
        &w,
        "POST",
        "/v1/tokens",
        None,
        &json!({"name": "ops", "tenant": "default", "scopes": ["admin", "locks"]}),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let (s, v, _) = call(&w, "POST", "/v1/locks/c/acquire", None, &body).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("unauthenticated")),
        "after the first token, loopback needs one too: {v}"
    );
    let token = bearer(created["token"].as_str().unwrap());
    let (s, v, _) = call(&w, "POST", "/v1/locks/c/acquire", Some(&token), &body).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_serves_prometheus_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let scrape = crate::support::free_port();
    let w = Warden::start(&[
        (
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}/w.db", dir.path().display()),
        ),
        ("WARDEN_AUTH", "required".into()),
        ("WARDEN_METRICS_LISTEN", format!("127.0.0.1:{scrape}")),
    ]);
    w.wait_readyz(Duration::from_secs(10)).await;
    let (s, _, _) = call(&w, "GET", "/metrics", None, &Value::Null).await;
    assert_eq!(s, 401, "the main listener's /metrics needs a token");
    let r = w
        .http
        .get(format!("http://127.0.0.1:{scrape}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("warden_access_denied_total"), "{text}");
    let other = w
        .http
        .post(format!("http://127.0.0.1:{scrape}/v1/locks/k/acquire"))
        .json(&json!({"owner": "o", "ttl_ms": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status().as_u16(),
        404,
        "the metrics listener serves nothing else"
    );
}
