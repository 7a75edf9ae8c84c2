//! `warden-bench <suite>`: drives a running Warden over HTTP and prints throughput and latency
//! percentiles per operation, in the mode the target runs in; with `--redis-port` it also runs
//! raw `redis-benchmark` EVALSHA of the same Lua step on the same Redis, and prints the ratio.
//! Figures are measured, never asserted. A crate of its own, so Warden's production build
//! carries none of its dependencies.

mod all;
mod bare;
mod baseline;
mod chart;
mod client;
mod cpu;
mod drive;
mod flash;
mod groups;
mod idem;
mod kv;
mod locks;
mod pgbench;
mod profile;
mod ratelimit;
mod row;
mod scaling;
mod servers;
mod sessions;
mod streams;
mod summary;
mod targets;
mod wrk;

use client::Conn;
use row::Row;

/// Arguments of `warden-bench`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "warden-bench",
    about = "Drive a running Warden and print throughput and latency percentiles"
)]
pub struct BenchArgs {
    /// What to measure: `locks`, `locks-wrk` (wrk drives the acquires), `idempotency`,
    /// `flash-sale`, `streams`, `ratelimit` (HTTP, then the in-process library), `kv`, `sessions`, `bare` (serve the bare baseline, configured like `warden serve`), `profile` (one suite under `perf`), `chart` (redraw the charts of a report), or `all`: every suite in both modes on throwaway Redis and
    /// PostgreSQL it starts itself, with scaling rows, a summary against the targets, JSON
    /// and PNG charts (`--url` and `--redis-port` are then ignored).
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
    /// `all`: rounds; every figure of the summary is the median of the rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// `all`: seconds per scaling point.
    #[arg(long, default_value_t = 3)]
    pub scaling_seconds: u64,
    /// `all`: only these suites (comma separated; default every one).
    #[arg(long, value_delimiter = ',')]
    pub suites: Vec<String>,
    /// `all`: skip the scaling rows.
    #[arg(long)]
    pub no_scaling: bool,
    /// `profile`: the suite to profile.
    #[arg(long)]
    pub path: Option<String>,
    /// `profile`: record call graphs (frame pointers: build with
    /// `RUSTFLAGS="-C force-frame-pointers=yes"`) and print inclusive costs.
    #[arg(long)]
    pub callers: bool,
    /// `profile`: `primary` or `fallback`.
    #[arg(long, default_value = "primary")]
    pub mode: String,
    /// `all`, `profile`: a setting for the Warden under test, as `VARIABLE=value` (repeatable),
    /// e.g. `--warden-env WARDEN_IDEMPOTENCY_WRITER_CONCURRENCY=2`; default settings otherwise.
    #[arg(long = "warden-env")]
    pub warden_env: Vec<String>,
    /// `chart`: a JSON report of `all` to draw the charts of again (next to it).
    #[arg(long)]
    pub input: Option<String>,
    /// `all`: where the JSON, the text and the charts go (raw runs stay out of git; copy the
    /// report and charts a doc cites into `docs/bench/`).
    #[arg(long, default_value = "target/bench")]
    pub out: String,
}

impl BenchArgs {
    /// Whether `all` runs `suite`: every suite unless `--suites` names some.
    pub fn wants(&self, suite: &str) -> bool {
        self.suites.is_empty() || self.suites.iter().any(|s| s == suite)
    }
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
    // Interrupted or terminated, the run is dropped, and with it the servers it started.
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Err::<(), String>("interrupted".into())
    };
    let outcome = tokio::select! {
        r = run(args) => r,
        r = stop => r,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark.
async fn run(args: BenchArgs) -> Result<(), String> {
    match (args.suite.as_str(), &args.input) {
        ("all", _) => return all::run(&args).await,
        ("chart", Some(input)) => return all::redraw(std::path::Path::new(input)),
        ("profile", _) => return profile::run(&args).await,
        ("bare", _) => return bare::serve().await,
        ("chart", None) => return Err("chart needs --input <report.json>".into()),
        _ => {}
    }
    let (mode, epoch) = target(&args.url).await?;
    println!(
        "# warden-bench {}: target {} mode {mode} epoch {epoch}, {} s per row",
        args.suite, args.url, args.seconds
    );
    let tag = format!("{}", warden::runtime::clock::now_ms());
    let rows: Vec<Row> = match args.suite.as_str() {
        "locks" => locks::run(&args, mode, epoch, &tag).await?,
        "locks-wrk" => wrk::run(&args, mode, epoch)?,
        "idempotency" => idem::run(&args, mode, &tag).await?,
        "flash-sale" => flash::run(&args, mode, epoch, &tag).await?,
        "streams" => streams::run(&args, mode, &tag).await?,
        "kv" => kv::run(&args, mode, &tag).await?,
        "sessions" => sessions::run(&args, mode, &tag).await?,
        "ratelimit" => {
            let mut rows = ratelimit::run(&args, mode).await?;
            let redis = if mode == "primary" { args.redis_port } else { None };
            if mode == "fallback" || redis.is_some() {
                rows.extend(ratelimit::library(&args, redis).await?);
            }
            rows
        }
        other => {
            return Err(format!(
                "unknown bench suite {other:?} (available: all, locks, locks-wrk, idempotency, flash-sale, streams, ratelimit, kv, sessions)"
            ))
        }
    };
    for row in rows {
        println!("{}", row.line());
    }
    Ok(())
}
