//! `/openapi.json` tells the truth: schemathesis generates valid and invalid requests for every
//! operation of a running Warden (on Redis and PostgreSQL) and checks that no answer is a 5xx,
//! that every status, media type and body is the documented one, and that invalid input is
//! refused. Any failure fails the test.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Postgres, Redis, Warden};

/// The checks the run applies (all must pass).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,negative_data_rejection";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let Some(bin) = support::tool("SCHEMATHESIS", "schemathesis") else {
        return;
    };
    let pg = Postgres::start();
    let redis = Redis::start();
    let w = Warden::start(&[
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_LOG", "warn".into()),
        ("WARDEN_AUTH", "required".into()),
    ]);
    w.wait_ready_on("redis", Duration::from_secs(20)).await;
    // Every scope, so positive cases reach their handlers; negative cases without it must be
    // refused (401), as documented.
    let scopes = "locks,idempotency,streams,review,reservations,inventory,metrics,admin,cache";
    let token = support::cli_token(&pg.url(), "schemathesis", "default", scopes, None);
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
}
