//! The closed-loop driver: each simulated client runs one operation after another on its own
//! keep-alive connection for a fixed time; every call's latency is kept, none is sampled away.

use std::future::Future;
use std::time::{Duration, Instant};

use super::client::Conn;
use super::cpu::{self, CpuShare};
use super::BenchArgs;
use serde_json::Value;

/// Latency samples in microseconds.
#[derive(Default)]
pub(crate) struct Samples(pub(crate) Vec<u64>);

impl Samples {
    /// The `p` quantile (0–1) in ms; 0 when nothing was timed.
    pub(crate) fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i] as f64 / 1000.0
    }

    /// Times one call.
    pub(crate) async fn time<T>(&mut self, call: impl Future<Output = T>) -> T {
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
    pub(crate) ops: usize,
    /// Calls that failed or answered something unexpected.
    pub(crate) refused: usize,
    /// Latencies of the first step of an operation.
    pub(crate) first: Samples,
    /// Latencies of the second step, for pairs.
    pub(crate) second: Samples,
    pub(crate) elapsed: Duration,
    /// CPU per party over the measurement.
    pub(crate) cpu: Option<CpuShare>,
}

impl Run {
    /// Counts one operation as done or refused.
    pub(crate) fn count(&mut self, ok: bool) {
        if ok {
            self.ops += 1;
        } else {
            self.refused += 1;
        }
    }

    /// One timed call (first step) that must answer `expect`.
    pub(crate) async fn single(
        &mut self,
        http: &mut Conn,
        path: &str,
        body: &Value,
        expect: u16,
    ) -> Result<(), String> {
        self.expect(http.post(path, body), expect).await
    }

    /// Times `call` (first step) and counts it done if it answered `expect`.
    async fn expect(
        &mut self,
        call: impl Future<Output = Result<(u16, Value), String>>,
        expect: u16,
    ) -> Result<(), String> {
        let status = self.first.time(call).await?.0;
        self.count(status == expect);
        Ok(())
    }

    /// One timed `GET` that must answer `expect`.
    pub(crate) async fn get(
        &mut self,
        http: &mut Conn,
        path: &str,
        expect: u16,
    ) -> Result<(), String> {
        self.expect(http.get(path), expect).await
    }

    /// One timed `PUT` that must answer `expect`.
    pub(crate) async fn put(
        &mut self,
        http: &mut Conn,
        path: &str,
        body: &Value,
        expect: u16,
    ) -> Result<(), String> {
        self.expect(http.put(path, body), expect).await
    }

    /// Two timed calls: the first must answer `expect`, the second is built from its answer
    /// and must answer 200.
    pub(crate) async fn pair(
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

    /// Completed operations per second.
    pub(crate) fn rate(&self) -> f64 {
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
    let cpu = cpu::snapshot();
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
    total.cpu = Some(cpu.share(&cpu::snapshot(), total.elapsed.as_secs_f64()));
    total
}

/// Which of `k` keys call `n` of client `c` touches: spread evenly and without a pattern the
/// store could favour (splitmix64 of the pair).
pub(crate) fn pick(c: usize, n: u64, k: usize) -> usize {
    let mut z = ((c as u64) << 40 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % k.max(1) as u64) as usize
}
