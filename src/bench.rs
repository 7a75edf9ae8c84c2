//! `warden bench`: drives a running Warden over HTTP and prints throughput and latency
//! percentiles; figures are measured, never asserted.

/// Arguments of `warden bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("not yet".into())
}
