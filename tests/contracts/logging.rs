//! Logging stays off the request path: with stderr blocked (a pipe nobody reads), requests are
//! still answered promptly, the lines that do not fit are dropped and counted, and the lines
//! that are written carry the request's `correlation_id`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, metric};
use futures::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_log_drops_and_counts_lines_instead_of_stalling_requests() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // stderr is a pipe this test never reads: once its buffer is full the writer blocks.
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("serve")
        .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
        .env("WARDEN_CONFIG", dir.path().join("none.toml"))
        .env_remove("WARDEN_REDIS_URL")
        .env(
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}/w.db", dir.path().display()),
        )
        .env("WARDEN_LOG", "debug")
        .env("WARDEN_LOG_BUFFER_LINES", "64")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = || async {
        let r = http.get(format!("{base}/readyz")).send().await;
        r.is_ok_and(|r| r.status() == 200)
    };
    while !ready().await {
        assert!(Instant::now() < deadline, "warden did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Far more than a pipe holds: every answer is logged at debug, with sqlx's own lines.
    let started = Instant::now();
    for round in 0..20 {
        let calls = (0..50).map(|i| {
            http.post(format!("{base}/v1/locks/log-{round}-{i}/acquire"))
                .json(&json!({"owner": "o", "ttl_ms": 60_000}))
                .send()
        });
        for r in join_all(calls).await {
            assert_eq!(r.expect("answered while the log is blocked").status(), 200);
        }
    }
    let took = started.elapsed();
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped = metric(&text, "warden_log_lines_dropped_total");
    let _ = child.kill();
    let _ = child.wait();
    assert!(dropped > 0.0, "no line dropped\n{text}");
    assert!(
        took < Duration::from_secs(30),
        "1000 acquires took {took:?}"
    );
}

/// Every log line carries a `correlation_id`: requests', and those of work no request asked
/// for — start-up, the tier supervisor's switches and arming, background loops, shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_carries_a_correlation_id_through_a_failover() {
    let pg = crate::support::Postgres::database();
    let mut redis = crate::support::Redis::start();
    let mut env = crate::support::fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_LOG", "debug".into()));
    let mut w = crate::support::Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    assert_eq!(w.acquire("log-a", "o", 1_000, 0).await.0, 200);
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(15)).await;
    assert_eq!(w.acquire("log-b", "o", 1_000, 0).await.0, 200);
    redis.restart();
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    assert_eq!(w.terminate().map(|s| s.success()), Some(true));

    let log = std::fs::read_to_string(&w.log).unwrap();
    let mut lines = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["span"]["correlation_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "no correlation_id: {line}");
        lines += 1;
    }
    for expected in [
        "tier switch",
        "redis armed for epoch",
        "listening",
        "shutting down",
    ] {
        assert!(log.contains(expected), "no {expected:?} line");
    }
    assert!(lines > 20, "{lines} lines");
}

/// Above `info` too: a `warn` filter keeps the warnings of a failover, and each still carries
/// the `correlation_id` of the span it was logged in (the spans are never filtered out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warn_filter_keeps_the_correlation_id_on_every_line() {
    let pg = crate::support::Postgres::database();
    let mut redis = crate::support::Redis::start();
    let mut env = crate::support::fast_failover(&pg, Some(redis.url()));
    env.push(("WARDEN_LOG", "warn".into()));
    let w = crate::support::Warden::start(&env);
    w.wait_ready_on("redis", Duration::from_secs(10)).await;
    redis.kill();
    w.wait_ready_on("sql", Duration::from_secs(15)).await;
    let log = std::fs::read_to_string(&w.log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(log.contains("tier switch"), "{log}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["level"] == "WARN" || v["level"] == "ERROR", "{line}");
        let id = v["span"]["correlation_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "no correlation_id: {line}");
    }
}
