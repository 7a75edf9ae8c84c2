//! G8 on the incident, guard and audit endpoints, in-process (the real router and service, no
//! socket): every malformed request gets a 4xx problem document with a stable code, and opens,
//! acknowledges, notes, moves and audits nothing.

use crate::support::in_process::InProcess;
use crate::support::problems::{assert_problems, case, Case};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_guard_requests_change_nothing() {
    let w = InProcess::start(32 * 1024).await;
    let (s, v) = w
        .post(
            "/v1/incidents",
            json!({"event_action": "trigger", "dedup_key": "base", "severity": "warning",
                "summary": "the one incident", "source": "t"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["incident_id"].as_str().unwrap().to_owned();
    let (_, before) = w.get("/v1/audit?limit=1000").await;

    let inc = "/v1/incidents";
    let am = "/v1/alerts/alertmanager";
    let long = "k".repeat(513);
    let summary = "s".repeat(1025);
    let details = format!(
        r#"{{"event_action":"trigger","severity":"info","summary":"s","details":{{"x":"{}"}}}}"#,
        "d".repeat(17 * 1024)
    );
    let alerts: Vec<String> = (0..101)
        .map(|i| format!(r#"{{"status":"firing","fingerprint":"f{i}"}}"#))
        .collect();
    let too_many = format!(r#"{{"version":"4","alerts":[{}]}}"#, alerts.join(","));
    let cases: Vec<Case> = vec![
        case("POST", inc, "{not json", 400, "malformed_json"),
        case("POST", inc, "[1]", 422, "invalid_body"),
        case("POST", inc, r#"{"dedup_key":"a"}"#, 422, "invalid_body"),
        case(
            "POST",
            inc,
            r#"{"event_action":"explode","dedup_key":"a"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"trigger","summary":"s"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"trigger","severity":"urgent","summary":"s"}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"trigger","severity":"info","summary":""}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            inc,
            &format!(r#"{{"event_action":"trigger","severity":"info","summary":"{summary}"}}"#),
            422,
            "out_of_range",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"trigger","severity":"info","summary":"a\u0001b"}"#,
            422,
            "out_of_range",
        ),
        case("POST", inc, &details, 422, "out_of_range"),
        case(
            "POST",
            inc,
            &format!(
                r#"{{"event_action":"trigger","severity":"info","summary":"s","dedup_key":"{long}"}}"#
            ),
            422,
            "invalid_dedup_key",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"acknowledge"}"#,
            422,
            "invalid_dedup_key",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"resolve","dedup_key":""}"#,
            422,
            "invalid_dedup_key",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"trigger","severity":7,"summary":"s"}"#,
            422,
            "invalid_body",
        ),
        (
            "POST",
            inc.to_owned(),
            None,
            br#"{"event_action":"trigger"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        case(
            "POST",
            inc,
            r#"{"event_action":"acknowledge","dedup_key":"never-opened"}"#,
            404,
            "unknown_incident",
        ),
        case(
            "POST",
            am,
            r#"{"version":"3","alerts":[{"status":"firing"}]}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            am,
            r#"{"version":"4","alerts":[]}"#,
            422,
            "out_of_range",
        ),
        case("POST", am, &too_many, 422, "out_of_range"),
        case(
            "POST",
            am,
            r#"{"version":"4","alerts":[{"status":"pending"}]}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            am,
            r#"{"version":"4","alerts":{"status":"firing"}}"#,
            422,
            "invalid_body",
        ),
        case("GET", "/v1/incidents?state=open", "", 422, "out_of_range"),
        case("GET", "/v1/incidents?limit=0", "", 422, "out_of_range"),
        case("GET", "/v1/incidents?limit=x", "", 400, "invalid_query"),
        case("GET", "/v1/incidents/inc_nope", "", 404, "unknown_incident"),
        case(
            "GET",
            &format!("/v1/incidents/{long}"),
            "",
            400,
            "invalid_key",
        ),
        case(
            "POST",
            "/v1/incidents/inc_nope/ack",
            "",
            404,
            "unknown_incident",
        ),
        case(
            "POST",
            "/v1/incidents/inc_nope/resolve",
            "",
            404,
            "unknown_incident",
        ),
        case(
            "POST",
            &format!("/v1/incidents/{id}/notes"),
            r#"{"note":""}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            &format!("/v1/incidents/{id}/notes"),
            r#"{}"#,
            422,
            "invalid_body",
        ),
        case(
            "POST",
            "/v1/incidents/inc_nope/notes",
            r#"{"note":"n"}"#,
            404,
            "unknown_incident",
        ),
        case(
            "GET",
            "/v1/incidents/inc_nope/evidence",
            "",
            404,
            "unknown_incident",
        ),
        case("POST", "/v1/guard/enter", r#"{}"#, 422, "invalid_body"),
        case(
            "POST",
            "/v1/guard/enter",
            r#"{"reason":""}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            "/v1/guard/enter",
            &format!(r#"{{"reason":"{}"}}"#, "r".repeat(2049)),
            422,
            "out_of_range",
        ),
        case(
            "POST",
            "/v1/guard/recovery-actions",
            r#"{"action":""}"#,
            422,
            "out_of_range",
        ),
        case(
            "POST",
            "/v1/guard/recovery-actions",
            r#"{"action":"a"}"#,
            409,
            "not_in_safe_mode",
        ),
        case("GET", "/v1/audit?after=-1", "", 422, "out_of_range"),
        case("GET", "/v1/audit?limit=1001", "", 422, "out_of_range"),
        case("GET", "/v1/audit?after=zz", "", 400, "invalid_query"),
    ];
    assert_problems(&w, cases).await;

    // Nothing changed: one incident, unacknowledged, no note; the guard normal; the audit
    // chain as before.
    let (_, list) = w.get("/v1/incidents").await;
    let list = list["incidents"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "triggered");
    assert_eq!(list[0]["duplicates"], 0);
    let (_, g) = w.get("/v1/guard").await;
    assert_eq!(g["guard"], "normal", "{g}");
    let (_, after) = w.get("/v1/audit?limit=1000").await;
    assert_eq!(before["entries"], after["entries"]);
    let (_, verified) = w.get("/v1/audit/verify").await;
    assert_eq!(verified["state"], "intact", "{verified}");
    w.stop().await;
}
