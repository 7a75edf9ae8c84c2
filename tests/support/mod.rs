//! Test harness: real `redis-server`, PostgreSQL and `warden` processes on free ports in
//! temporary directories, killed and restarted to inject faults. Nothing is mocked.
#![allow(dead_code)]

pub mod guard;
pub mod history;
pub mod in_process;
mod postgres_server;
pub mod problems;
pub mod proxy;
mod redis_server;
mod shared_postgres;
mod warden_process;
pub mod webhooks;

// Every test binary compiles the whole harness and uses only part of it.
#[allow(unused_imports)]
pub use postgres_server::Postgres;
#[allow(unused_imports)]
pub use redis_server::{Redis, RedisCluster};
#[allow(unused_imports)]
pub use warden_process::{fast_failover, Warden};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The value of `series` (name and labels, exactly as printed) in a Prometheus text, 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// An external tool the suite needs: `$<env>`, else `name` on `PATH`. Without it a test fails
/// under `CI` and is skipped (with a message) elsewhere; `scripts/test.sh` provides each.
pub fn tool(env: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env).map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "{name} not found (scripts/test.sh provides it)"
        );
        eprintln!("skipped: {name} not found (scripts/test.sh provides it)");
    }
    found
}

/// `warden token create` on database `db` (as an operator would): the token text.
pub fn cli_token(db: &str, name: &str, tenant: &str, scopes: &str, ttl_ms: Option<i64>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args([
        "token", "create", "--name", name, "--tenant", tenant, "--scopes", scopes,
    ])
    .env("WARDEN_DATABASE_URL", db)
    .env("WARDEN_CONFIG", "/nonexistent/warden.toml")
    .env_remove("WARDEN_REDIS_URL");
    if let Some(ttl) = ttl_ms {
        cmd.args(["--ttl-ms", &ttl.to_string()]);
    }
    let out = cmd.output().expect("warden token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().next().unwrap_or_default().to_owned();
    assert!(token.starts_with("wdn_"), "{text}");
    token
}

/// A SQL store on a fresh SQLite file (keep the directory as long as the store).
pub async fn sqlite_store() -> (tempfile::TempDir, warden::store::sql::SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/w.db", dir.path().display());
    let sql = warden::store::sql::SqlStore::connect(&url, 2, Duration::from_secs(2));
    (dir, sql.await.unwrap())
}

/// A SQL store on a fresh PostgreSQL database (keep it as long as the store).
pub async fn postgres_store() -> (Postgres, warden::store::sql::SqlStore) {
    let pg = Postgres::database();
    let url = pg.url();
    let sql = warden::store::sql::SqlStore::connect(&url, 2, Duration::from_secs(2));
    let sql = sql.await.unwrap();
    (pg, sql)
}

/// Retries `call` while it answers 503 (a tier switch in progress), for at most 20 s; the
/// last answer.
pub async fn through_switch<F, Fut>(mut call: F) -> (u16, Value)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = call().await;
        if s != 503 || Instant::now() > deadline {
            return (s, v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nobody listens on right now, in 20000–29999: below the kernel's ephemeral range
/// (32768–60999) and below the Redis Cluster bus ports (node port + 10 000, see
/// [`free_cluster_port`]).
///
/// Servers are stopped and restarted on their port; a port from the ephemeral range could be
/// taken meanwhile as the local end of some outgoing connection, and the restart would fail.
pub fn free_port() -> u16 {
    free_in(20_000, 10_000, bindable)
}

/// A port for a Redis Cluster node, in 20000–22767, whose bus port (+10 000) is free too and
/// below the ephemeral range.
pub fn free_cluster_port() -> u16 {
    free_in(20_000, 2_768, |p| bindable(p) && bindable(p + 10_000))
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port in `from..from + span` that passes `free`, spread by process and call.
fn free_in(from: u16, span: u32, free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = from + (seed.wrapping_add(n.wrapping_mul(104_729)) % span) as u16;
        if free(port) {
            return port;
        }
    }
}

fn require(bin: &str) -> PathBuf {
    let p = PathBuf::from(bin);
    if p.is_absolute() && p.exists() {
        return p;
    }
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    panic!("{bin} not found: run scripts/test.sh, which installs redis-server and postgresql");
}

fn wait_until(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    assert!(poll_until(timeout, ok), "timed out waiting for {what}");
}

/// Whether `ok` holds within `timeout`, polled every 25 ms.
/// Waits until `done` holds (checked every 20 ms without blocking the runtime), failing the
/// test with `what` after `limit`: a wait for a state, never for a fixed time.
pub async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn poll_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A small deterministic generator (xorshift) for random histories: a failing history is
/// replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
