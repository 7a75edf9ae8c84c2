//! G8 on the causal stream, dispatch and review endpoints, in-process (the real router and
//! service, no socket: nothing here needs a process to die): every malformed request gets a
//! 4xx problem document with a stable code and assigns, parks, leases and resolves nothing.

use crate::support::in_process::InProcess;
use crate::support::problems::{assert_problems, case, Case};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stream_requests_change_nothing() {
    let w = InProcess::start(4096).await;
    let (s, v) = w
        .post(
            "/v1/streams/s/intents",
            json!({"intent_id": "ok", "intent_type": "book"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    let intents = "/v1/streams/s/intents";
    let commits = "/v1/streams/s/commits";
    let claim = "/v1/dispatch/claim";
    let replay = "/v1/streams/s/intents/ok/replay";
    let long = "k".repeat(513);
    let long_type = format!(r#"{{"intent_id":"a","intent_type":"{}"}}"#, "t".repeat(129));
    let long_id = format!(r#"{{"intent_id":"{long}","intent_type":"book"}}"#);
    let huge = format!(
        r#"{{"intent_id":"a","intent_type":"book","payload":"{}"}}"#,
        "x".repeat(5000)
    );
    let long_note = format!(
        r#"{{"action":"dismiss","actor":"a","note":"{}"}}"#,
        "n".repeat(2049)
    );
    let cases: Vec<Case> = vec![
        case("POST", intents, "{", 400, "malformed_json"),
        case(
            "POST",
            intents,
            r#"{"intent_type":"book"}"#,
            422,
            "invalid_body",
        ),
        case(
            "POST",
            intents,
            r#"{"intent_id":"","intent_type":"book"}"#,
            422,
            "invalid_intent_id",
        ),
        case(
            "POST",
            intents,
            r#"{"intent_id":"a\u0007","intent_type":"book"}"#,
            422,
            "invalid_intent_id",
        ),
        case("POST", intents, &long_id, 422, "invalid_intent_id"),
        case(
            "POST",
            intents,
            r#"{"intent_id":"a","intent_type":""}"#,
            422,
            "invalid_intent_type",
        ),
        case("POST", intents, &long_type, 422, "out_of_range"),
        case(
            "POST",
            intents,
            r#"{"intent_id":"a","intent_type":"b","dispatch_priority":2147483648}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            intents,
            r#"{"intent_id":"a","intent_type":"b","dispatch_priority":1.5}"#,
            422,
            "invalid_body",
        ),
        case(
            "POST",
            intents,
            r#"{"intent_id":"a","intent_type":"b","dispatch_priority":"1"}"#,
            422,
            "invalid_body",
        ),
        case("POST", intents, &huge, 413, "body_too_large"),
        (
            "POST",
            intents.to_owned(),
            None,
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        case(
            "POST",
            &format!("/v1/streams/{long}/intents"),
            r#"{"intent_id":"a","intent_type":"b"}"#,
            400,
            "invalid_key",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":0,"intent_id":"ok"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":-1,"intent_id":"ok"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":9007199254740992,"intent_id":"ok"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            commits,
            r#"{"intent_id":"ok"}"#,
            422,
            "invalid_body",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":1,"intent_id":""}"#,
            422,
            "invalid_intent_id",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":1,"intent_id":"ok","expected_version":-1}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":1,"intent_id":"ok","wait_ms":60001}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            commits,
            r#"{"commit_sequence":"1","intent_id":"ok"}"#,
            422,
            "invalid_body",
        ),
        case("POST", claim, r#"{"worker":""}"#, 422, "invalid_worker"),
        case("POST", claim, r#"{"limit":1}"#, 422, "invalid_body"),
        case(
            "POST",
            claim,
            r#"{"worker":"w","limit":0}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            claim,
            r#"{"worker":"w","limit":1001}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            claim,
            r#"{"worker":"w","lease_ms":0}"#,
            422,
            "out_of_range",
        ),
        case("POST", claim, "[]", 422, "invalid_body"),
        case(
            "POST",
            replay,
            r#"{"as_of_version":-1}"#,
            422,
            "out_of_range",
        ),
        case("POST", replay, r#"{}"#, 422, "invalid_body"),
        case(
            "POST",
            &format!("/v1/streams/s/intents/{long}/replay"),
            r#"{"as_of_version":0}"#,
            400,
            "invalid_key",
        ),
        case(
            "POST",
            "/v1/streams/s/intents/nope/replay",
            r#"{"as_of_version":0}"#,
            404,
            "unknown_intent",
        ),
        case("GET", "/v1/streams/never", "", 404, "unknown_stream"),
        case(
            "GET",
            &format!("/v1/streams/{long}"),
            "",
            400,
            "invalid_key",
        ),
        case("DELETE", "/v1/streams/s", "", 405, "method_not_allowed"),
        case("GET", "/v1/review?state=bogus", "", 422, "out_of_range"),
        case("GET", "/v1/review?limit=0", "", 422, "out_of_range"),
        case("GET", "/v1/review?limit=abc", "", 400, "invalid_query"),
        case(
            "POST",
            "/v1/review/rv_x/resolve",
            r#"{"action":"explode","actor":"a"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            "/v1/review/rv_x/resolve",
            r#"{"action":"dismiss","actor":""}"#,
            422,
            "invalid_actor",
        ),
        case(
            "POST",
            "/v1/review/rv_x/resolve",
            &long_note,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            "/v1/review/rv_x/resolve",
            r#"{"action":"dismiss","actor":"a"}"#,
            404,
            "unknown_review_item",
        ),
        case(
            "POST",
            "/v1/review/rv_x/resolve",
            "{",
            400,
            "malformed_json",
        ),
    ];
    assert_problems(&w, cases).await;

    // Nothing was assigned, parked, leased or queued for review.
    let (_, v) = w.get("/v1/streams/s").await;
    let state = json!([
        v["next_sequence"],
        v["last_committed"],
        v["version"],
        v["waiting"]
    ]);
    assert_eq!(state, json!([2, 0, 0, []]), "{v}");
    let (_, v) = w.get("/v1/review?state=all").await;
    assert_eq!(v["items"], json!([]), "{v}");
    let (_, v) = w.post(claim, json!({"worker": "w", "limit": 10})).await;
    let ids: Vec<&str> = v["intents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["intent_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ok"], "{v}");
    // The OpenAPI document lists every stream, dispatch and review endpoint.
    let (_, spec) = w.get("/openapi.json").await;
    for p in [
        "/v1/streams/{stream}/intents",
        "/v1/streams/{stream}/commits",
        "/v1/streams/{stream}/intents/{intent_id}/replay",
        "/v1/streams/{stream}",
        "/v1/dispatch/claim",
        "/v1/review",
        "/v1/review/{id}/resolve",
    ] {
        assert!(
            spec["paths"][p].is_object(),
            "{p} missing from openapi.json"
        );
    }
    let m = w.metrics().await;
    assert!(
        m.contains("warden_bad_input_total{code=\"invalid_intent_id\"}"),
        "counted"
    );
    w.stop().await;
}
