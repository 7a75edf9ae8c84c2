//! `/openapi.json` tells the truth: schemathesis generates valid and invalid requests for every
//! operation of a running Warden (on Redis and PostgreSQL) and checks that no answer is a 5xx,
//! that every status, media type and body is the documented one, and that invalid input is
//! refused. Any failure fails the test. The fuzzing leaves the guard where it was: normal, with
//! no §10 incident (only `/v1/guard/enter`, which moves it by hand, is left out).

use std::process::Command;
use std::time::Duration;

use crate::support::{Postgres, Redis, Warden};

/// The checks the run applies (all must pass).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,negative_data_rejection";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let Some(bin) = crate::support::tool("SCHEMATHESIS", "schemathesis") else {
        return;
    };
    let pg = Postgres::database();
    let redis = Redis::start();
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_LOG", "warn".into()),
        ("WARDEN_AUTH", "required".into()),
        // §10 judged over a window the run fills, so a mix counted wrongly would show.
        ("WARDEN_GUARD_HEALTH_TICK_MS", "250".into()),
        ("WARDEN_GUARD_RATE_WINDOW_MS", "20000".into()),
        ("WARDEN_GUARD_RATE_MIN_COVERAGE_MS", "2000".into()),
        ("WARDEN_GUARD_MIN_SAMPLES", "50".into()),
    ]);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    // Every scope, so positive cases reach their handlers; negative cases without it must be
    // refused (401), as documented.
    let scopes = "locks,idempotency,streams,review,reservations,inventory,ratelimit,\
                  ratelimit.admin,sessions,kv,cache,incidents,guard,audit,metrics,admin";
    let token = crate::support::cli_token(&pg.url(), "schemathesis", "default", scopes, None);
    let auth = format!("Authorization: Bearer {token}");
    let url = format!("{}/openapi.json", w.base());
    // schemathesis keeps a cache in its working directory: not in the repository.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .current_dir(cwd)
            .args(["run", &url, "--checks", CHECKS, "--header", &auth])
            .args(["--max-examples", "25", "--workers", "2"])
            // The one call that moves the guard by hand: nothing else may move it.
            .args(["--exclude-path", "/v1/guard/enter"])
            // The fuzzer lists the tokens and revoked its own (every later call answered 401);
            // revoking is tested in contracts/access.rs.
            .args(["--exclude-path", "/v1/tokens/{id}"])
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        w.tail_log()
    );
    assert!(
        report.contains("Tested: "),
        "no operation tested:\n{report}"
    );
    // A healthy instance under a fuzzer's mix of calls (session events, incident reads,
    // critical incidents triggered by hand) stays normal: no §10 incident, no guard move.
    // The fuzzer may have revoked its own token (it lists tokens and deletes them): look with
    // a new one.
    let token = crate::support::cli_token(
        &pg.url(),
        "after",
        "default",
        "guard,incidents,metrics",
        None,
    );
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", w.base()))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let guard: serde_json::Value = get("/v1/guard").await.unwrap().json().await.unwrap();
    assert_eq!(guard["guard"], "normal", "{guard}\n{}", w.tail_log());
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let moves: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("warden_guard_moves_total"))
        .collect();
    assert!(moves.is_empty(), "the guard moved: {moves:?}");
    let incidents: serde_json::Value = get("/v1/incidents?state=triggered")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let own = incidents["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["dedup_key"] == "warden:fallback")
        .count();
    assert_eq!(own, 0, "{incidents}");
}
