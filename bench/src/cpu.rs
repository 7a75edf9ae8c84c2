//! Where the CPU went during a measurement: user+system time of the load generator (this
//! process), the Warden under test, Redis and every PostgreSQL process, read from `/proc`
//! before and after, in cores (CPU seconds per wall second). Linux only; elsewhere all zero.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// CPU used per party during one measurement, in cores.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default)]
pub struct CpuShare {
    /// The load generator: this process, and wrk when it drives (from bash's `times`).
    pub generator: f64,
    /// The Warden process, when known.
    pub warden: f64,
    /// `redis-server` processes.
    pub redis: f64,
    /// `postgres` processes (server and backends).
    pub postgres: f64,
}

/// The Warden process under test, set by `bench all`.
static WARDEN_PID: Mutex<Option<u32>> = Mutex::new(None);

/// Names the Warden process whose CPU rows report.
pub fn watch_warden(pid: Option<u32>) {
    *WARDEN_PID.lock().unwrap_or_else(|e| e.into_inner()) = pid;
}

/// Clock ticks of user+system time of `/proc/<pid>/stat` and the command name.
fn ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_owned();
    // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Ticks used so far, per party.
#[derive(Clone, Copy, Default)]
pub(crate) struct Snapshot {
    generator: u64,
    warden: u64,
    redis: u64,
    postgres: u64,
}

/// Reads every process's ticks now.
pub(crate) fn snapshot() -> Snapshot {
    let me = std::process::id();
    let warden = *WARDEN_PID.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Snapshot::default();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return s;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((name, t)) = ticks(&stat) else {
            continue;
        };
        if pid == me {
            s.generator += t;
        } else if Some(pid) == warden {
            s.warden += t;
        } else if name.starts_with("redis-server") {
            s.redis += t;
        } else if name == "postgres" {
            s.postgres += t;
        }
    }
    s
}

impl Snapshot {
    /// Cores used between `self` and `later`, over `wall` seconds (100 ticks per second).
    pub(crate) fn share(&self, later: &Snapshot, wall: f64) -> CpuShare {
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / 100.0 / wall.max(1e-9);
        CpuShare {
            generator: cores(self.generator, later.generator),
            warden: cores(self.warden, later.warden),
            redis: cores(self.redis, later.redis),
            postgres: cores(self.postgres, later.postgres),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks_even_with_spaces_in_the_name() {
        let stat = "42 (redis-server *:6379) S 1 42 42 0 -1 4194560 1 0 0 0 170 30 0 0 20 0 4";
        assert_eq!(ticks(stat), Some(("redis-server *:6379".into(), 200)));
        assert_eq!(ticks("garbage"), None);
    }

    #[test]
    fn shares_are_cores() {
        let a = Snapshot::default();
        let b = Snapshot {
            generator: 50,
            warden: 200,
            redis: 0,
            postgres: 100,
        };
        let s = a.share(&b, 2.0);
        assert_eq!((s.generator, s.warden, s.postgres), (0.25, 1.0, 0.5));
    }
}
