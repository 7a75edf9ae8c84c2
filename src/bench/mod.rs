//! `warden bench locks`: drives a running Warden over HTTP and prints throughput and latency
//! percentiles per operation, in the mode the target runs in; with `--redis-port` it also runs
//! raw `redis-benchmark` EVAL of the same acquire script on the same Redis, and the ratio.
//! Figures are measured, never asserted.

mod client;

use std::time::{Duration, Instant};

use serde_json::json;

use crate::store::redis::{slot_keys, ACQUIRE_LUA};
use client::Conn;

/// Arguments of `warden bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure (only `locks` for now).
    #[arg(default_value = "locks")]
    pub suite: String,
    /// Base URL of the Warden under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent clients, comma separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Port of the same Redis, on 127.0.0.1, for the raw `redis-benchmark` baseline.
    #[arg(long)]
    pub redis_port: Option<u16>,
}

/// Latency samples in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i] as f64 / 1000.0
    }

    fn line(&mut self) -> String {
        format!(
            "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
            self.pct(0.50),
            self.pct(0.95),
            self.pct(0.99)
        )
    }
}

#[derive(Default)]
struct Run {
    ops: usize,
    refused: usize,
    acquire: Samples,
    release: Samples,
    elapsed: Duration,
}

/// `clients` loops for `seconds`, each on its own keep-alive connection: acquire a key (unique
/// per client, or unique per call when `pairs` is false) and, for pairs, release it.
async fn drive(args: &BenchArgs, clients: usize, pairs: bool, tag: &str) -> Run {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = args.url.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let mut conn = None;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                if conn.is_none() {
                    conn = Conn::connect(&base).await.ok();
                }
                let Some(http) = conn.as_mut() else {
                    run.refused += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let key = if pairs {
                    format!("bench-{tag}-{c}")
                } else {
                    format!("bench-{tag}-{c}-{n}")
                };
                let t = Instant::now();
                let body = json!({"owner": format!("c{c}"), "ttl_ms": 10_000});
                let Ok((status, v)) = http.post(&format!("/v1/locks/{key}/acquire"), &body).await
                else {
                    run.refused += 1;
                    conn = None;
                    continue;
                };
                run.acquire.0.push(t.elapsed().as_micros() as u64);
                if status != 200 {
                    run.refused += 1;
                    continue;
                }
                if pairs {
                    let t = Instant::now();
                    let body =
                        json!({"owner": format!("c{c}"), "fencing_token": v["fencing_token"]});
                    let released = http.post(&format!("/v1/locks/{key}/release"), &body).await;
                    run.release.0.push(t.elapsed().as_micros() as u64);
                    if !matches!(released, Ok((200, _))) {
                        run.refused += 1;
                        continue;
                    }
                }
                run.ops += 1;
            }
            run
        }));
    }
    let mut total = Run::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.ops += r.ops;
            total.refused += r.refused;
            total.acquire.0.extend(r.acquire.0);
            total.release.0.extend(r.release.0);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Raw `redis-benchmark` EVAL of the acquire script at `clients`; returns requests/s and p99.
fn redis_baseline(
    port: u16,
    clients: usize,
    epoch: i64,
    requests: usize,
) -> Result<(f64, f64), String> {
    let slot = slot_keys("warden:{rb}:lock");
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            &clients.to_string(),
        ])
        .args(["-n", &requests.to_string(), "-r", "100000000", "--csv"])
        .args([
            "EVAL",
            ACQUIRE_LUA,
            "3",
            &slot.gate,
            "warden:{rb}:__rand_int__:lock",
        ])
        .arg(&slot.counter)
        .args([&epoch.to_string(), "owner", "1000"])
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text.lines().last().ok_or("no redis-benchmark output")?;
    let cols: Vec<f64> = row
        .split(',')
        .skip(1)
        .filter_map(|c| c.trim_matches('"').parse().ok())
        .collect();
    match (cols.first(), cols.get(5)) {
        (Some(rps), Some(p99)) => Ok((*rps, *p99)),
        _ => Err(format!("cannot parse redis-benchmark output: {text}")),
    }
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.suite != "locks" {
        return Err(format!(
            "unknown bench suite {:?} (available: locks)",
            args.suite
        ));
    }
    let (_, status) = Conn::connect(&args.url).await?.get("/v1/status").await?;
    let mode = if status["tier"] == "redis" {
        "primary"
    } else {
        "fallback"
    };
    let epoch = status["epoch"].as_i64().unwrap_or(0);
    println!(
        "# warden bench locks: target {} mode {mode} epoch {epoch}, {} s per row",
        args.url, args.seconds
    );
    let tag = format!("{}", crate::clock::now_ms());
    for &c in &args.clients {
        let mut r = drive(&args, c, true, &format!("{tag}-p{c}")).await;
        let secs = r.elapsed.as_secs_f64();
        println!(
            "{mode:8} acquire+release clients {c:3}: {:9.0} pairs/s  refused {:5}  acquire {}  release {}",
            r.ops as f64 / secs, r.refused, r.acquire.line(), r.release.line()
        );
    }
    for &c in &args.clients {
        let mut r = drive(&args, c, false, &format!("{tag}-a{c}")).await;
        let secs = r.elapsed.as_secs_f64();
        let rate = r.ops as f64 / secs;
        print!(
            "{mode:8} acquire (new keys) clients {c:3}: {rate:9.0} acquires/s  refused {:5}  {}",
            r.refused,
            r.acquire.line()
        );
        match args
            .redis_port
            .map(|p| redis_baseline(p, c, epoch, (rate as usize * 2).clamp(20_000, 400_000)))
        {
            Some(Ok((rps, p99))) => println!(
                "  | raw redis-benchmark EVAL: {rps:9.0} req/s p99 {p99:.2} ms  ratio {:.2}",
                rate / rps
            ),
            Some(Err(e)) => println!("  | baseline failed: {e}"),
            None => println!(),
        }
    }
    Ok(())
}
