//! G8: every malformed request gets a 4xx problem document with a stable code, never a 5xx,
//! and changes no state. The validation suites run in-process (the real router and service, no
//! socket: nothing here needs a process to die); garbage bytes on a socket and the log lines
//! go through the real binary.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::in_process::InProcess;
use crate::support::problems::{assert_problems, small_warden, Case};
use crate::support::Warden;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_problem_answers_and_change_nothing() {
    let w = InProcess::start(4096).await;
    let js = Some("application/json");
    let long_key = "k".repeat(513);
    let acquire = "/v1/locks/k/acquire";
    let cases: Vec<Case> = vec![
        (
            "POST",
            acquire.into(),
            js,
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            acquire.into(),
            js,
            b"".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            acquire.into(),
            js,
            vec![b'{', 0xff, 0xfe, b'}'],
            400,
            "malformed_json",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":"10"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":7,"ttl_ms":10}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":1.5}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"[1,2]"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":0}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":3600001}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":-5}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":100,"wait_ms":-1}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a","ttl_ms":100,"wait_ms":60001}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"","ttl_ms":100}"#.to_vec(),
            422,
            "invalid_owner",
        ),
        (
            "POST",
            acquire.into(),
            js,
            br#"{"owner":"a\u0001","ttl_ms":100}"#.to_vec(),
            422,
            "invalid_owner",
        ),
        (
            "POST",
            acquire.into(),
            None,
            br#"{"owner":"a","ttl_ms":100}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            acquire.into(),
            js,
            vec![b' '; 5000],
            413,
            "body_too_large",
        ),
        (
            "POST",
            format!("/v1/locks/{long_key}/acquire"),
            js,
            br#"{"owner":"a","ttl_ms":100}"#.to_vec(),
            400,
            "invalid_key",
        ),
        (
            "POST",
            "/v1/locks/a%0Ab/acquire".into(),
            js,
            br#"{"owner":"a","ttl_ms":100}"#.to_vec(),
            400,
            "invalid_key",
        ),
        (
            "POST",
            "/v1/locks/%FF%FE/acquire".into(),
            js,
            br#"{"owner":"a","ttl_ms":100}"#.to_vec(),
            400,
            "invalid_key",
        ),
        (
            "POST",
            "/v1/locks/k/extend".into(),
            js,
            br#"{"owner":"a","fencing_token":0,"ttl_ms":10}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            "/v1/locks/k/release".into(),
            js,
            br#"{"owner":"a","fencing_token":9007199254740992}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            "/v1/locks/k/release".into(),
            js,
            br#"{"owner":"a"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/fences/r/check".into(),
            js,
            br#"{"token":-1}"#.to_vec(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            "/v1/fences/r/check".into(),
            js,
            br#"{"token":99999999999999999999}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "GET",
            format!("/v1/locks/{long_key}"),
            None,
            vec![],
            400,
            "invalid_key",
        ),
        ("GET", "/v1/nothing".into(), None, vec![], 404, "not_found"),
        (
            "DELETE",
            acquire.into(),
            None,
            vec![],
            405,
            "method_not_allowed",
        ),
    ];
    assert_problems(&w, cases).await;

    // Nothing changed: the lock is free, its first grant is the first token of the epoch, and
    // the fence saw no token.
    let (s, v) = w.get("/v1/locks/k").await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = w.post(acquire, json!({"owner": "a", "ttl_ms": 1000})).await;
    assert_eq!(s, 200);
    assert_eq!(v["fencing_token"].as_i64().unwrap() & 0xffff_ffff, 1);
    let (s, v) = w.post("/v1/fences/r/check", json!({"token": 1})).await;
    assert_eq!((s, v["highest"].as_i64()), (200, Some(1)));

    let metrics = w.metrics().await;
    assert!(metrics.contains("warden_bad_input_total{code=\"out_of_range\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_does_not_take_the_service_down() {
    let (_dir, w) = small_warden().await;
    for junk in [
        &b"\x00\xff\xfe garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        &[0u8; 2048],
    ] {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", w.port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(junk);
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        }
    }
    let (s, _) = w.get("/healthz").await;
    assert_eq!(s, 200);
    let (s, v) = w.acquire("k", "a", 1000, 0).await;
    assert_eq!(s, 200, "still granting: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_idempotency_requests_claim_nothing() {
    let w = InProcess::start(4096).await;
    let js = Some("application/json");
    let begin = "/v1/idempotency/k/begin".to_string();
    let complete = "/v1/idempotency/k/complete".to_string();
    let body = |s: &str| s.as_bytes().to_vec();
    let long_fp = format!(r#"{{"fingerprint":"{}"}}"#, "f".repeat(513));
    let big = format!(r#"{{"token":1,"response":"{}"}}"#, "x".repeat(5000));
    let cases: Vec<Case> = vec![
        ("POST", begin.clone(), js, body("{"), 400, "malformed_json"),
        // serde fills a struct from an array by position; a body must be an object.
        (
            "POST",
            begin.clone(),
            js,
            body("[null, null]"),
            422,
            "invalid_body",
        ),
        ("POST", begin.clone(), js, body(" []"), 422, "invalid_body"),
        (
            "POST",
            begin.clone(),
            js,
            vec![0xff, 0xfe],
            400,
            "malformed_json",
        ),
        (
            "POST",
            begin.clone(),
            None,
            body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"lease_ms":0}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"lease_ms":3600001}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"lease_ms":5000,"ttl_ms":4999}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"ttl_ms":2592000001}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"wait_ms":-1}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"fingerprint":7}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            begin.clone(),
            js,
            body(r#"{"lease_ms":"10"}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            begin.clone(),
            js,
            long_fp.into_bytes(),
            422,
            "out_of_range",
        ),
        (
            "POST",
            format!("/v1/idempotency/{}/begin", "k".repeat(513)),
            js,
            body("{}"),
            400,
            "invalid_key",
        ),
        (
            "POST",
            "/v1/idempotency/a%00b/begin".into(),
            js,
            body("{}"),
            400,
            "invalid_key",
        ),
        (
            "POST",
            complete.clone(),
            js,
            body(r#"{"token":1}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            complete.clone(),
            js,
            body(r#"{"token":0,"response":{}}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            complete.clone(),
            js,
            body(r#"{"token":"1","response":{}}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            complete.clone(),
            js,
            body(r#"{"token":1,"response":{"a":}}"#),
            400,
            "malformed_json",
        ),
        (
            "POST",
            complete.clone(),
            js,
            big.into_bytes(),
            413,
            "body_too_large",
        ),
        (
            "POST",
            "/v1/idempotency/k/fail".into(),
            js,
            body("{}"),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/idempotency/k/fail".into(),
            js,
            body(r#"{"token":9007199254740992}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            "/v1/idempotency/k/extend".into(),
            js,
            body(r#"{"token":1,"lease_ms":0}"#),
            422,
            "out_of_range",
        ),
        (
            "GET",
            begin.clone(),
            None,
            vec![],
            405,
            "method_not_allowed",
        ),
    ];
    assert_problems(&w, cases).await;

    // Nothing was claimed or recorded: the key starts fresh, with the epoch's first token.
    let (s, v) = w.post(&begin, json!({})).await;
    assert_eq!((s, v["state"].as_str()), (201, Some("started")), "{v}");
    assert_eq!(v["token"].as_i64().unwrap() & 0xffff_ffff, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_reservation_requests_change_no_stock() {
    let w = InProcess::start(4096).await;
    let js = Some("application/json");
    let (s, v) = w
        .json("PUT", "/v1/inventory/s", &[], json!({ "total": 5 }))
        .await;
    assert_eq!(s, 200, "{v}");
    let res = "/v1/inventory/s/reservations".to_string();
    let body = |s: &str| s.as_bytes().to_vec();
    let cases: Vec<Case> = vec![
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"u","quantity":0}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"u","quantity":-1}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"u","quantity":1000001}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"quantity":1}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"","quantity":1}"#),
            422,
            "invalid_user",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"a\u0007b","quantity":1}"#),
            422,
            "invalid_user",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"u","quantity":1,"ttl_ms":0}"#),
            422,
            "out_of_range",
        ),
        (
            "POST",
            res.clone(),
            js,
            body(r#"{"user_id":"u","quantity":"1"}"#),
            422,
            "invalid_body",
        ),
        ("POST", res.clone(), js, body("{"), 400, "malformed_json"),
        (
            "POST",
            res.clone(),
            None,
            body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "PUT",
            "/v1/inventory/s".into(),
            js,
            body(r#"{"total":-1}"#),
            422,
            "out_of_range",
        ),
        (
            "PUT",
            "/v1/inventory/s".into(),
            js,
            body(r#"{"total":1.5}"#),
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/v1/inventory/s".into(),
            js,
            body(r#"{}"#),
            422,
            "invalid_body",
        ),
        (
            "PUT",
            format!("/v1/inventory/{}", "k".repeat(513)),
            js,
            body(r#"{"total":1}"#),
            400,
            "invalid_key",
        ),
        (
            "GET",
            "/v1/inventory/unknown".into(),
            None,
            vec![],
            404,
            "unknown_sku",
        ),
        (
            "POST",
            "/v1/reservations/r_unknown/confirm".into(),
            None,
            vec![],
            404,
            "unknown_reservation",
        ),
        (
            "POST",
            "/v1/reservations/r_unknown/release".into(),
            None,
            vec![],
            404,
            "unknown_reservation",
        ),
        (
            "DELETE",
            "/v1/inventory/s".into(),
            None,
            vec![],
            405,
            "method_not_allowed",
        ),
    ];
    assert_problems(&w, cases).await;
    // A bad Idempotency-Key is refused before anything is held.
    let long_key = "k".repeat(600);
    let (s, v) = w
        .json(
            "POST",
            &res,
            &[("Idempotency-Key", long_key.as_str())],
            json!({"user_id": "u", "quantity": 1}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("invalid_idempotency_key")),
        "{v}"
    );

    let (s, v) = w.get("/v1/inventory/s").await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["available"].as_i64(), v["reserved"].as_i64()),
        (Some(5), Some(0)),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_is_echoed_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warden::start(&[
        (
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}/w.db", dir.path().display()),
        ),
        // One line per answer is opt-in (debug); the default logs refusals only.
        ("WARDEN_LOG", "info,warden=debug".into()),
    ]);
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    let r = w
        .http
        .post(format!("{}/v1/locks/corr/acquire", w.base()))
        .header("x-correlation-id", "req-42.abc")
        .json(&json!({"owner": "a", "ttl_ms": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "req-42.abc");
    let r = w
        .http
        .get(format!("{}/healthz", w.base()))
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()["x-correlation-id"].is_empty(),
        "generated when absent"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = std::fs::read_to_string(&w.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("\"op\":\"lock_acquire\""))
        .expect("an answer log line");
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["correlation_id"], "req-42.abc", "{line}");
    assert_eq!(v["fields"]["state"], "lock_acquired_fallback");

    // The OpenAPI document lists every lock endpoint.
    let (_, spec) = w.get("/openapi.json").await;
    for p in [
        "/v1/locks/{key}/acquire",
        "/v1/locks/{key}/extend",
        "/v1/locks/{key}/release",
        "/v1/locks/{key}",
        "/v1/fences/{resource}/check",
        "/v1/status",
        "/readyz",
    ] {
        assert!(
            spec["paths"][p].is_object(),
            "{p} missing from openapi.json"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_requests_create_nothing() {
    let w = InProcess::start(4096).await;
    let js = Some("application/json");
    let tokens = "/v1/tokens".to_string();
    let body = |s: &str| s.as_bytes().to_vec();
    let long_name = format!(
        r#"{{"name":"{}","tenant":"default","scopes":["locks"]}}"#,
        "n".repeat(129)
    );
    let many = format!(
        r#"{{"name":"n","tenant":"default","scopes":[{}]}}"#,
        vec!["\"locks\""; 17].join(",")
    );
    let cases: Vec<Case> = vec![
        ("POST", tokens.clone(), js, body("{"), 400, "malformed_json"),
        ("POST", tokens.clone(), js, body("[]"), 422, "invalid_body"),
        (
            "POST",
            tokens.clone(),
            None,
            body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            tokens.clone(),
            js,
            body(r#"{"name":"n","tenant":"default"}"#),
            422,
            "invalid_body",
        ),
        (
            "POST",
            tokens.clone(),
            js,
            body(r#"{"name":"","tenant":"default","scopes":["locks"]}"#),
            422,
            "invalid_name",
        ),
        (
            "POST",
            tokens.clone(),
            js,
            body(&long_name),
            422,
            "invalid_name",
        ),
        (
            "POST",
            tokens.clone(),
            js,
            body(r#"{"name":"n","tenant":"Shop A","scopes":["locks"]}"#),
            422,
            "invalid_tenant",
        ),
        (
            "POST",
            tokens.clone(),
            js,
            body(r#"{"name":"n","tenant":"default","scopes":[]}"#),
            422,
            "out_of_range",
        ),
        ("POST", tokens.clone(), js, body(&many), 422, "out_of_range"),
        (
            "POST",
            tokens.clone(),
            js,
            body(r#"{"name":"n","tenant":"default","scopes":["root"]}"#),
            422,
            "invalid_scope",
        ),
        (
            "POST",
            tokens.clone(),
            js,
            body(r#"{"name":"n","tenant":"default","scopes":["locks"],"ttl_ms":0}"#),
            422,
            "out_of_range",
        ),
        (
            "DELETE",
            "/v1/tokens/nope".into(),
            None,
            Vec::new(),
            404,
            "unknown_token",
        ),
        (
            "PUT",
            tokens.clone(),
            js,
            body("{}"),
            405,
            "method_not_allowed",
        ),
    ];
    assert_problems(&w, cases).await;
    // Nothing was created: the list is empty, and protected mode still serves loopback.
    let (s, v) = w.get("/v1/tokens").await;
    assert_eq!(
        (s, v["tokens"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    // The OpenAPI document lists the token create's field codes.
    let (_, spec) = w.get("/openapi.json").await;
    let text = spec["paths"]["/v1/tokens"]["post"]["responses"]["422"].to_string();
    for code in [
        "invalid_name",
        "invalid_tenant",
        "invalid_scope",
        "out_of_range",
    ] {
        assert!(text.contains(code), "{code} is not listed: {text}");
    }
}
