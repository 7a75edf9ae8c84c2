//! `warden-bench locks-wrk`: acquires of new keys driven by an external load generator (wrk,
//! one thread, one connection per client), against the raw acquire script in the same run.

use super::cpu;
use super::row::{Row, StepLatency};
use super::{baseline, BenchArgs};

/// What one wrk run measured.
struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

/// A wrk latency such as `812.00us`, `2.10ms` or `1.01s`, in ms.
fn millis(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else {
        (text.strip_suffix('s')?, 1000.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Reads requests/s, p50, p99 and non-2xx answers from wrk's `--latency` report.
fn parse(report: &str) -> Option<Measured> {
    let field = |label: &str| {
        report.lines().find_map(|l| {
            let rest = l.trim().strip_prefix(label)?;
            rest.split_whitespace().next().map(str::to_owned)
        })
    };
    Some(Measured {
        rate: field("Requests/sec:")?.parse().ok()?,
        p50_ms: millis(&field("50%")?)?,
        p99_ms: millis(&field("99%")?)?,
        non_2xx: field("Non-2xx or 3xx responses:").map_or(Some(0), |n| n.parse().ok())?,
    })
}

/// Seconds in bash's `times` notation, e.g. `1m2.500s`.
fn bash_seconds(text: &str) -> Option<f64> {
    let (m, s) = text.strip_suffix('s')?.split_once('m')?;
    Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// wrk's own CPU seconds (user + system), from the last line of bash's `times`.
fn wrk_cpu(report: &str) -> Option<f64> {
    let mut last = report.lines().last()?.split_whitespace();
    Some(bash_seconds(last.next()?)? + bash_seconds(last.next()?)?)
}

/// Runs wrk (under bash, whose `times` then reports wrk's CPU); returns what it measured and
/// the CPU seconds it used.
fn wrk(
    args: &BenchArgs,
    clients: usize,
    script: &std::path::Path,
) -> Result<(Measured, f64), String> {
    let out = std::process::Command::new("bash")
        .args(["-c", "wrk \"$@\"; times", "wrk"])
        .args(["-t1", "--latency", "-c", &clients.to_string()])
        .args(["-d", &format!("{}s", args.seconds)])
        .arg("-s")
        .arg(script)
        .arg(&args.url)
        .output()
        .map_err(|e| format!("wrk (Debian package wrk): {e}"))?;
    let report = String::from_utf8_lossy(&out.stdout);
    let measured = parse(&report).ok_or_else(|| format!("cannot read wrk's report: {report}"))?;
    Ok((measured, wrk_cpu(&report).unwrap_or(0.0)))
}

/// Acquires of new keys driven by wrk at `c` connections, with the raw script as baseline.
pub(crate) fn acquire(args: &BenchArgs, mode: &str, epoch: i64, c: usize) -> Result<Row, String> {
    let dir = std::env::temp_dir().join(format!("warden-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("acquire.lua");
    std::fs::write(&script, include_str!("wrk_acquire.lua")).map_err(|e| e.to_string())?;
    let before = cpu::snapshot();
    let started = std::time::Instant::now();
    let measured = wrk(args, c, &script);
    let wall = started.elapsed().as_secs_f64();
    let mut cpu = before.share(&cpu::snapshot(), wall);
    let _ = std::fs::remove_dir_all(&dir);
    let (m, wrk_seconds) = measured?;
    cpu.generator += wrk_seconds / wall;
    let mut row = Row {
        path: "lock acquire (new keys, wrk)".into(),
        mode: mode.into(),
        clients: c,
        keys: None,
        unit: "acquires/s".into(),
        rate: m.rate,
        refused: m.non_2xx as usize,
        steps: vec![StepLatency {
            name: "acquire".into(),
            p50_ms: m.p50_ms,
            p95_ms: None,
            p99_ms: m.p99_ms,
        }],
        check: None,
        baseline: None,
        database: None,
        round: None,
        cpu: Some(cpu),
    };
    let base = args.redis_port.map(|p| {
        baseline::lock_eval(
            baseline::LockStep::Acquire,
            p,
            c,
            baseline::requests(m.rate),
            epoch,
        )
    });
    baseline::attach(&mut row, base);
    Ok(row)
}

/// Runs the wrk lock suite.
pub(crate) fn run(args: &BenchArgs, mode: &str, epoch: i64) -> Result<Vec<Row>, String> {
    args.clients
        .iter()
        .map(|&c| acquire(args, mode, epoch, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_latency_report() {
        let report = "Running 5s test @ http://127.0.0.1:1\n  1 threads and 64 connections\n  Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    2.00ms\n     99%    4.10ms\n  100000 requests in 5.00s, 20.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  20000.50\nTransfer/sec:      4.00MB\n";
        let m = parse(report).unwrap();
        assert_eq!((m.rate, m.non_2xx), (20000.5, 3));
        assert!((m.p50_ms - 0.812).abs() < 1e-9 && (m.p99_ms - 4.1).abs() < 1e-9);
        assert_eq!(millis("1.50s"), Some(1500.0));
        assert!(parse("garbage").is_none());
        let times = "0m0.001s 0m0.002s\n0m1.500s 1m0.250s\n";
        assert_eq!(wrk_cpu(times), Some(61.75));
    }
}
