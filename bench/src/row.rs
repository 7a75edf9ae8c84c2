//! One measured row: what was driven, in which mode, how fast, how slow at the tail, and the
//! same-run baseline it is compared with. Every figure in a row was measured in that run.

use serde::{Deserialize, Serialize};

use super::cpu::CpuShare;
use super::drive::{Run, Samples};

/// Latency of one step of an operation (a pair has two), in ms.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StepLatency {
    /// The call, e.g. `acquire`.
    pub name: String,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile, when the generator reports it (wrk does not).
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl StepLatency {
    fn of(name: &str, samples: &mut Samples) -> Self {
        Self {
            name: name.to_owned(),
            p50_ms: samples.pct(0.50),
            p95_ms: Some(samples.pct(0.95)),
            p99_ms: samples.pct(0.99),
        }
    }
}

/// The physical limit a row is compared with, measured in the same run.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Baseline {
    /// What ran, e.g. `redis-benchmark EVALSHA acquire.lua` or `pgbench claim`.
    pub what: String,
    /// Its operations per second.
    pub rate: f64,
    /// Its p99 latency, ms.
    pub p99_ms: f64,
}

/// One measurement.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Row {
    /// The path, e.g. `lock acquire (new keys)`.
    pub path: String,
    /// `primary` (Redis, SQL durable) or `fallback` (SQL alone).
    pub mode: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys, streams or SKUs the clients spread over, when the path has such a working set.
    pub keys: Option<usize>,
    /// What one operation is, e.g. `pairs/s`.
    pub unit: String,
    /// Completed operations per second.
    pub rate: f64,
    /// Calls that failed or answered something other than success.
    pub refused: usize,
    /// Latency per step.
    pub steps: Vec<StepLatency>,
    /// What the row checked after the run (e.g. `oversells 0`), if anything.
    pub check: Option<String>,
    /// The same-run baseline, if one was measured.
    pub baseline: Option<Baseline>,
    /// `fresh` or `warmed` database, when the run says.
    pub database: Option<String>,
    /// Which round of `bench all` measured it.
    pub round: Option<usize>,
    /// CPU per party during the measurement, in cores.
    pub cpu: Option<CpuShare>,
}

impl Row {
    /// A row from a finished run, naming its steps (one, or two for pairs).
    pub(crate) fn named(
        path: &str,
        unit: &str,
        mode: &str,
        clients: usize,
        run: &mut Run,
        steps: &[&str],
    ) -> Self {
        let mut latency = vec![StepLatency::of(steps[0], &mut run.first)];
        if let Some(second) = steps.get(1) {
            latency.push(StepLatency::of(second, &mut run.second));
        }
        Self {
            path: path.to_owned(),
            mode: mode.to_owned(),
            clients,
            keys: None,
            unit: unit.to_owned(),
            rate: run.rate(),
            refused: run.refused,
            steps: latency,
            check: None,
            baseline: None,
            database: None,
            round: None,
            cpu: run.cpu,
        }
    }

    /// The slowest step's median, ms.
    pub fn p50_ms(&self) -> f64 {
        self.steps.iter().map(|s| s.p50_ms).fold(0.0, f64::max)
    }

    /// The slowest step's p99, ms: what a caller of any step can meet at the tail.
    pub fn p99_ms(&self) -> f64 {
        self.steps.iter().map(|s| s.p99_ms).fold(0.0, f64::max)
    }

    /// Throughput against the baseline's.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .filter(|b| b.rate > 0.0)
            .map(|b| self.rate / b.rate)
    }

    /// The row as one printed line.
    pub fn line(&self) -> String {
        let keys = self.keys.map(|k| format!(" keys {k}")).unwrap_or_default();
        let mut out = format!(
            "{:8} {}{keys} clients {:3}: {:9.0} {}  refused {:5}",
            self.mode, self.path, self.clients, self.rate, self.unit, self.refused
        );
        for s in &self.steps {
            let p95 = s
                .p95_ms
                .map(|p| format!(" p95 {p:.2} ms"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} p50 {:.2} ms{p95} p99 {:.2} ms",
                s.name, s.p50_ms, s.p99_ms
            ));
        }
        if let Some(cpu) = &self.cpu {
            out.push_str(&format!(
                "  cpu: generator {:.2} warden {:.2} redis {:.2} postgres {:.2}",
                cpu.generator, cpu.warden, cpu.redis, cpu.postgres
            ));
        }
        if let Some(check) = &self.check {
            out.push_str(&format!("  {check}"));
        }
        if let (Some(b), Some(r)) = (&self.baseline, self.ratio()) {
            out.push_str(&format!(
                "  | {}: {:.0}/s p99 {:.2} ms  ratio {r:.2}",
                b.what, b.rate, b.p99_ms
            ));
        }
        out
    }
}
