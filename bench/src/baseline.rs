//! The same-run baseline: raw `redis-benchmark` EVALSHA of a Warden Lua step on the same Redis,
//! with random keys or arguments, at the same client count.

use super::row::{Baseline, Row};
use warden::store::redis::{slot_keys, ACQUIRE_LUA, GROUP_LUA, SEM_ACQUIRE_LUA, SHARED_LUA};

/// A lock step whose raw script is a row's same-run baseline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockStep {
    /// `acquire.lua`, an exclusive acquire that does not wait.
    Acquire,
    /// `lock_shared.lua`, a shared acquire.
    Shared,
    /// `sem_acquire.lua`, one permit of a semaphore of 4.
    Permit,
    /// `lock_group.lua`, a group of this many exclusive members in one slot.
    Group(usize),
}

/// A key of the baseline's slot, new on every call.
fn new_key(suffix: &str) -> String {
    format!("warden:{{rb}}:__rand_int__:{suffix}")
}

/// Raw `step` at `clients`, each of `requests` calls on new keys, with the keys and arguments
/// Warden passes. redis-benchmark draws each `__rand_int__` on its own, so two calls may share
/// one key of a holder set but not the others; a random owner keeps such a call off the
/// owner's "held" path, whose keys would not match.
pub(crate) fn lock_eval(
    step: LockStep,
    port: u16,
    clients: usize,
    requests: usize,
    epoch: i64,
) -> Result<Baseline, String> {
    let lock = new_key("lock");
    let slot = slot_keys(&lock);
    let set = |names: [&str; 4]| names.map(new_key).into_iter();
    let epoch = epoch.to_string();
    let (what, script, keys, argv): (_, _, Vec<String>, Vec<&str>) = match step {
        LockStep::Acquire => (
            "acquire.lua",
            ACQUIRE_LUA,
            [slot.gate, lock, slot.counter]
                .into_iter()
                .chain(["rd", "rdexp", "wwait"].map(new_key))
                .collect(),
            vec![&epoch, "owner", "1000", "0", "0"],
        ),
        LockStep::Shared => (
            "lock_shared.lua",
            SHARED_LUA,
            set(["rd", "rdown", "rdexp", "rdlim"])
                .chain([slot.gate, lock, slot.counter, new_key("wwait")])
                .collect(),
            vec![&epoch, "__rand_int__", "1000"],
        ),
        LockStep::Group(members) => {
            let member = ["lock", "rd", "rdown", "rdexp", "rdlim", "wwait"].map(new_key);
            let keys = [slot.gate, slot.counter]
                .into_iter()
                .chain((0..members).flat_map(|_| member.clone()));
            let mut argv = vec![epoch.as_str(), "__rand_int__", "1000"];
            argv.extend(std::iter::repeat_n("0", members));
            ("lock_group.lua", GROUP_LUA, keys.collect(), argv)
        }
        LockStep::Permit => {
            let slot = slot_keys(&new_key("sem"));
            let keys =
                set(["sem", "semown", "semexp", "semlimit"]).chain([slot.gate, slot.counter]);
            (
                "sem_acquire.lua",
                SEM_ACQUIRE_LUA,
                keys.collect(),
                vec![&epoch, "__rand_int__", "4", "1", "1000"],
            )
        }
    };
    let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
    eval(port, clients, requests, what, script, &keys, &argv)
}

/// Runs `script` (named `what` in reports) with `keys` and `argv` (`__rand_int__` in any of
/// them makes every call touch new data), by its SHA as Warden runs it (`EVALSHA`, after a
/// `SCRIPT LOAD`): `EVAL` would send and hash the whole script on every call, which Warden
/// never does.
pub(crate) fn eval(
    port: u16,
    clients: usize,
    requests: usize,
    what: &str,
    script: &str,
    keys: &[String],
    argv: &[String],
) -> Result<Baseline, String> {
    let loaded = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "SCRIPT",
            "LOAD",
            script,
        ])
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let sha = String::from_utf8_lossy(&loaded.stdout).trim().to_owned();
    if sha.len() != 40 {
        return Err(format!("SCRIPT LOAD of {what} answered {sha:?}"));
    }
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", "100000000", "--csv", "EVALSHA", &sha])
        .arg(keys.len().to_string())
        .args(keys)
        .args(argv)
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let (rate, p99_ms) = parse_csv(&String::from_utf8_lossy(&out.stdout))?;
    Ok(Baseline {
        what: format!("redis-benchmark EVALSHA {what}"),
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
