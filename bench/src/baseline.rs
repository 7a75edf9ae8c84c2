//! The same-run baseline: raw `redis-benchmark` EVAL of a Warden Lua step on the same Redis,
//! with random keys or arguments, at the same client count.

use super::row::{Baseline, Row};
use warden::store::redis::{slot_keys, ACQUIRE_LUA, SEM_ACQUIRE_LUA, SHARED_LUA};

/// Raw `acquire.lua` at `clients`, each call on a new key (`requests` calls), as the lock
/// acquire's same-run baseline: the same keys and arguments Warden passes for an exclusive
/// acquire that does not wait.
pub(crate) fn acquire_eval(
    port: u16,
    clients: usize,
    requests: usize,
    epoch: i64,
) -> Result<Baseline, String> {
    let key = |suffix: &str| format!("warden:{{rb}}:__rand_int__:{suffix}");
    let lock = key("lock");
    let slot = slot_keys(&lock);
    let keys = [
        slot.gate,
        lock,
        slot.counter,
        key("rd"),
        key("rdexp"),
        key("wwait"),
    ];
    let argv = [
        epoch.to_string(),
        "owner".into(),
        "1000".into(),
        "0".into(),
        "0".into(),
    ];
    eval(
        port,
        clients,
        requests,
        "acquire.lua",
        ACQUIRE_LUA,
        &keys,
        &argv,
    )
}

/// Raw `lock_shared.lua` on new keys, as the shared acquire's same-run baseline.
pub(crate) fn shared_eval(
    port: u16,
    clients: usize,
    requests: usize,
    epoch: i64,
) -> Result<Baseline, String> {
    let key = |suffix: &str| format!("warden:{{rb}}:__rand_int__:{suffix}");
    let lock = key("lock");
    let slot = slot_keys(&lock);
    let mut keys: Vec<String> = ["rd", "rdown", "rdexp", "rdlim"].map(key).into();
    keys.extend([slot.gate, lock, slot.counter, key("wwait")]);
    // redis-benchmark draws each `__rand_int__` on its own, so two calls may share one of
    // the holder keys but not the others; a random owner keeps such a call off the owner's
    // "held" path, whose keys would not match.
    let argv = [epoch.to_string(), "__rand_int__".into(), "1000".into()];
    eval(
        port,
        clients,
        requests,
        "lock_shared.lua",
        SHARED_LUA,
        &keys,
        &argv,
    )
}

/// Raw `sem_acquire.lua` on new semaphores, as the semaphore row's same-run baseline.
pub(crate) fn permit_eval(
    port: u16,
    clients: usize,
    requests: usize,
    epoch: i64,
) -> Result<Baseline, String> {
    let key = |suffix: &str| format!("warden:{{rb}}:__rand_int__:{suffix}");
    let slot = slot_keys(&key("sem"));
    let mut keys: Vec<String> = ["sem", "semown", "semexp", "semlimit"].map(key).into();
    keys.extend([slot.gate, slot.counter]);
    // A random owner, as for `shared_eval`.
    let argv = [
        epoch.to_string(),
        "__rand_int__".into(),
        "4".into(),
        "1".into(),
        "1000".into(),
    ];
    eval(
        port,
        clients,
        requests,
        "sem_acquire.lua",
        SEM_ACQUIRE_LUA,
        &keys,
        &argv,
    )
}

/// Runs `script` (named `what` in reports) with `keys` and `argv` (`__rand_int__` in any of
/// them makes every call touch new data).
pub(crate) fn eval(
    port: u16,
    clients: usize,
    requests: usize,
    what: &str,
    script: &str,
    keys: &[String],
    argv: &[String],
) -> Result<Baseline, String> {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "100000000", "--csv", "EVAL", script])
        .arg(keys.len().to_string())
        .args(keys)
        .args(argv)
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let (rate, p99_ms) = parse_csv(&String::from_utf8_lossy(&out.stdout))?;
    Ok(Baseline {
        what: format!("redis-benchmark EVAL {what}"),
        rate,
        p99_ms,
    })
}

/// Runs one plain command (`__rand_int__` in its arguments makes every call touch new data).
pub(crate) fn command(
    port: u16,
    clients: usize,
    requests: usize,
    cmd: &[&str],
) -> Result<Baseline, String> {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "10000", "--csv"])
        .args(cmd)
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let (rate, p99_ms) = parse_csv(&String::from_utf8_lossy(&out.stdout))?;
    Ok(Baseline {
        what: format!("redis-benchmark {}", cmd[0]),
        rate,
        p99_ms,
    })
}

/// Requests per second and p99 (ms) of a `redis-benchmark --csv` run.
pub(crate) fn parse_csv(text: &str) -> Result<(f64, f64), String> {
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

/// Puts a measured baseline on `row`; a failed one is reported on stderr and left off.
pub(crate) fn attach(row: &mut Row, result: Option<Result<Baseline, String>>) {
    match result {
        Some(Ok(b)) => row.baseline = Some(b),
        Some(Err(e)) => eprintln!("baseline of {} failed: {e}", row.path),
        None => {}
    }
}

/// How many baseline requests to run for a row measured at `rate` ops/s.
pub(crate) fn requests(rate: f64) -> usize {
    (rate as usize * 2).clamp(20_000, 400_000)
}
