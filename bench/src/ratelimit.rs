//! `warden-bench ratelimit`: checks of one policy over 10 000 subjects through HTTP, with the
//! same-run baselines: raw `redis-benchmark` EVALSHA of `rl_check.lua`, and redis-cell's
//! `CL.THROTTLE` when that module is loaded in the same Redis. Then the in-process library
//! (`RateLimits::check`, no HTTP) on an embedded Warden: on the same Redis, and in `local`
//! mode (SQLite alone).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::{Baseline, Row};
use super::{baseline, BenchArgs};
use warden::key::Key;
use warden::store::redis::RL_CHECK_LUA;

/// The benchmark's policy: a limit no client reaches, so every check does the full work of an
/// admission (read, decide, write).
const POLICY: &str = "bench-rl";
/// Subjects the clients spread over.
const SUBJECTS: usize = 10_000;

fn policy() -> serde_json::Value {
    json!({"limits": [{"name": "second", "algorithm": "gcra", "rate": 1_000_000_000i64,
        "period_ms": 1_000, "burst": 1_000_000_000i64}]})
}

#[derive(Clone)]
struct Checks;

impl Step for Checks {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let path = format!("/v1/ratelimit/{POLICY}/s{}/check", pick(c, n, SUBJECTS));
        run.single(http, &path, &json!({"cost": 1}), 200).await
    }
}

/// redis-cell's `CL.THROTTLE` on the same Redis, when the module is loaded there.
fn cell(port: u16, clients: usize, requests: usize) -> Option<Result<Baseline, String>> {
    let modules = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "MODULE", "LIST"])
        .output()
        .ok()?;
    if !String::from_utf8_lossy(&modules.stdout).contains("redis-cell") {
        return None;
    }
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "10000", "--csv", "CL.THROTTLE", "cell:__rand_int__"])
        .args(["1000000000", "1000000000", "1", "1"])
        .output();
    Some(
        out.map_err(|e| e.to_string())
            .and_then(|o| baseline::parse_csv(&String::from_utf8_lossy(&o.stdout)))
            .map(|(rate, p99_ms)| Baseline {
                what: "redis-benchmark CL.THROTTLE (redis-cell)".into(),
                rate,
                p99_ms,
            }),
    )
}

/// Runs the suite against the Warden at `--url`, then the library rows.
pub(crate) async fn run(args: &BenchArgs, mode: &str) -> Result<Vec<Row>, String> {
    let mut conn = Conn::connect(&args.url).await?;
    let (s, v) = conn
        .put(&format!("/v1/ratelimit/policies/{POLICY}"), &policy())
        .await?;
    if s != 200 {
        return Err(format!("policy not saved: {s} {v}"));
    }
    let mut rows = Vec::new();
    for &c in &args.clients {
        let mut r = drive(args, c, Checks).await;
        let mut row = Row::named("ratelimit check", "checks/s", mode, c, &mut r, &["check"]);
        row.keys = Some(SUBJECTS);
        if mode == "primary" {
            let base = args.redis_port.map(|p| {
                let keys = ["warden:{rl__rand_int__}:second:g".to_owned()];
                let argv: Vec<String> = ["1", "0", "g", "1000000000", "1000000", "1000000000"]
                    .map(str::to_owned)
                    .to_vec();
                let n = baseline::requests(row.rate);
                baseline::eval(p, c, n, "rl_check.lua", RL_CHECK_LUA, &keys, &argv)
            });
            baseline::attach(&mut row, base);
            if let Some(p) = args.redis_port {
                match cell(p, c, baseline::requests(row.rate)) {
                    Some(Ok(b)) => println!(
                        "# {c} clients: {} {:.0}/s, p99 {:.2} ms",
                        b.what, b.rate, b.p99_ms
                    ),
                    Some(Err(e)) => eprintln!("redis-cell baseline failed: {e}"),
                    None => println!("# redis-cell not loaded in this Redis: no CL.THROTTLE row"),
                }
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The in-process library on an embedded Warden: `mode` `primary` (Redis at `redis_port`)
/// or `local` (SQLite alone), `clients` tasks calling `RateLimits::check` for `seconds`.
pub(crate) async fn library(args: &BenchArgs, redis_port: Option<u16>) -> Result<Vec<Row>, String> {
    let dir = std::env::temp_dir().join(format!("warden-bench-rl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut config = warden::config::Config::default();
    config.database.url = format!("sqlite://{}/w.db", dir.display());
    if let Some(p) = redis_port {
        // Database 1: its own tier epoch must not meet the gates of the Warden under test.
        config.redis.url = format!("redis://127.0.0.1:{p}/1");
    }
    let w = warden::service::Warden::start(&config)
        .await
        .map_err(|e| e.to_string())?;
    let tier = if redis_port.is_some() { "redis" } else { "sql" };
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.tier.status().ready.is_err() || w.tier.status().tier.map(|t| t.as_str()) != Some(tier) {
        if Instant::now() > deadline {
            return Err(format!("embedded warden never ready on {tier}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let name = Key::parse(POLICY).map_err(|e| e.to_string())?;
    let p: warden::ratelimit::Policy =
        serde_json::from_value(policy()).map_err(|e| e.to_string())?;
    w.ratelimits
        .save_policy(&name, &p, warden::store::sql::Expect::Anything, "bench")
        .await
        .map_err(|b| b.reason().to_owned())?;
    let mode = if redis_port.is_some() {
        "primary"
    } else {
        "local"
    };
    let limits = w.ratelimits.clone();
    let subjects: Arc<Vec<Key>> = Arc::new(
        (0..SUBJECTS)
            .map(|i| Key::parse(&format!("s{i}")).expect("valid key"))
            .collect(),
    );
    let mut rows = Vec::new();
    for &c in &args.clients {
        let started = Instant::now();
        let until = started + Duration::from_secs(args.seconds);
        let tasks: Vec<_> = (0..c)
            .map(|t| {
                let (limits, name, subjects) = (limits.clone(), name.clone(), subjects.clone());
                tokio::spawn(async move {
                    let mut run = Run::default();
                    let mut n = 0u64;
                    while Instant::now() < until {
                        n += 1;
                        let subject = &subjects[pick(t, n, SUBJECTS)];
                        let at = Instant::now();
                        let checked = limits.check(&name, subject, 1).await;
                        run.first.0.push(at.elapsed().as_micros() as u64);
                        run.count(matches!(checked, warden::ratelimit::Checked::Allowed(_)));
                    }
                    run
                })
            })
            .collect();
        let mut total = Run::default();
        for t in tasks {
            let r = t.await.map_err(|e| e.to_string())?;
            total.ops += r.ops;
            total.refused += r.refused;
            total.first.0.extend(r.first.0);
        }
        total.elapsed = started.elapsed();
        let mut row = Row::named(
            "ratelimit check (library)",
            "checks/s",
            mode,
            c,
            &mut total,
            &["check"],
        );
        row.keys = Some(SUBJECTS);
        rows.push(row);
    }
    w.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}
