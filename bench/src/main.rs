//! `warden-bench <suite>`: drives a running Warden over HTTP and prints throughput and latency
//! percentiles per operation, in the mode the target runs in; with `--redis-port` it also runs
//! raw `redis-benchmark` EVAL of the same Lua step on the same Redis, and prints the ratio.
//! Figures are measured, never asserted. A crate of its own, so Warden's production build
//! carries none of its dependencies.

mod baseline;
mod client;
mod flash;
mod idem;
mod locks;
mod streams;
mod wrk;

use std::future::Future;
use std::time::{Duration, Instant};

use client::Conn;
use serde_json::Value;

/// Arguments of `warden-bench`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "warden-bench",
    about = "Drive a running Warden and print throughput and latency percentiles"
)]
pub struct BenchArgs {
    /// What to measure: `locks`, `locks-wrk` (wrk drives the acquires), `idempotency`,
    /// `flash-sale` or `streams`.
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
    /// A token every request carries (`Authorization: Bearer …`).
    #[arg(long)]
    pub token: Option<String>,
}

/// Latency samples in microseconds.
#[derive(Default)]
pub(crate) struct Samples(Vec<u64>);

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

    /// Times one call.
    async fn time<T>(&mut self, call: impl Future<Output = T>) -> T {
        let t = Instant::now();
        let out = call.await;
        self.0.push(t.elapsed().as_micros() as u64);
        out
    }
}

/// What the clients of one measurement did.
#[derive(Default)]
pub(crate) struct Run {
    /// Completed operations (pairs count once).
    ops: usize,
    /// Calls that failed or answered something unexpected.
    refused: usize,
    /// Latencies of the first step of an operation.
    first: Samples,
    /// Latencies of the second step, for pairs.
    second: Samples,
    elapsed: Duration,
}

impl Run {
    /// Counts one operation as done or refused.
    fn count(&mut self, ok: bool) {
        if ok {
            self.ops += 1;
        } else {
            self.refused += 1;
        }
    }

    /// One timed call (first step) that must answer `expect`.
    async fn single(
        &mut self,
        http: &mut Conn,
        path: &str,
        body: &Value,
        expect: u16,
    ) -> Result<(), String> {
        let status = self.first.time(http.post(path, body)).await?.0;
        self.count(status == expect);
        Ok(())
    }

    /// Two timed calls: the first must answer `expect`, the second is built from its answer
    /// and must answer 200.
    async fn pair(
        &mut self,
        http: &mut Conn,
        first: (String, Value),
        expect: u16,
        second: impl FnOnce(&Value) -> (String, Value),
    ) -> Result<(), String> {
        let (status, v) = self.first.time(http.post(&first.0, &first.1)).await?;
        if status != expect {
            self.count(false);
            return Ok(());
        }
        let (path, body) = second(&v);
        let status = self.second.time(http.post(&path, &body)).await?.0;
        self.count(status == 200);
        Ok(())
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// One operation of a suite, run by a client in a loop.
pub(crate) trait Step: Clone + Send + Sync + 'static {
    /// Runs operation `n` of client `c` on `http`, recording into `run`; `Err` drops the
    /// connection.
    fn step(
        &self,
        http: &mut Conn,
        c: usize,
        n: u64,
        run: &mut Run,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// `clients` loops for `seconds`, each on its own keep-alive connection.
pub(crate) async fn drive(args: &BenchArgs, clients: usize, op: impl Step) -> Run {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let base = args.url.clone();
            let op = op.clone();
            tokio::spawn(async move {
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
                    if op.step(http, c, n, &mut run).await.is_err() {
                        run.refused += 1;
                        conn = None;
                    }
                }
                run
            })
        })
        .collect();
    let mut total = Run::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.ops += r.ops;
            total.refused += r.refused;
            total.first.0.extend(r.first.0);
            total.second.0.extend(r.second.0);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// The target's mode and epoch, from `/readyz` (which needs no token).
async fn target(url: &str) -> Result<(&'static str, i64), String> {
    let (_, status) = Conn::connect(url).await?.get("/readyz").await?;
    let mode = if status["tier"] == "redis" {
        "primary"
    } else {
        "fallback"
    };
    Ok((mode, status["epoch"].as_i64().unwrap_or(0)))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = <BenchArgs as clap::Parser>::parse();
    let auth = args.token.as_ref().map(|t| format!("Bearer {t}"));
    let _ = client::AUTHORIZATION.set(auth);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark.
async fn run(args: BenchArgs) -> Result<(), String> {
    let (mode, epoch) = target(&args.url).await?;
    println!(
        "# warden-bench {}: target {} mode {mode} epoch {epoch}, {} s per row",
        args.suite, args.url, args.seconds
    );
    let tag = format!("{}", warden::runtime::clock::now_ms());
    match args.suite.as_str() {
        "locks" => locks::run(&args, mode, epoch, &tag).await,
        "locks-wrk" => wrk::run(&args, mode, epoch).await,
        "idempotency" => idem::run(&args, mode, &tag).await,
        "flash-sale" => flash::run(&args, mode, epoch, &tag).await,
        "streams" => streams::run(&args, mode, &tag).await,
        other => Err(format!(
            "unknown bench suite {other:?} (available: locks, locks-wrk, idempotency, flash-sale, streams)"
        )),
    }
}
