//! One PostgreSQL cluster per test run, shared by every test that breaks nothing in it: each
//! such test gets a database of its own, created from a migrated template in tens of
//! milliseconds, and dropped when the test ends. The cluster stops when the run ends, however
//! it ends.
//!
//! "The run" is the process that started the test processes (cargo-nextest, or cargo for
//! `cargo test`): the first test process to need the cluster starts it under a file lock, in a
//! directory named after that runner's pid, and leaves a watchdog in a session of its own that
//! stops the cluster and removes its files once the runner is gone, so a panicking or killed
//! test cannot leave it behind.

use std::fs::File;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::postgres_server::{as_postgres, pg_bin, template};
use super::*;

/// The template every test database is created from: migrated by the `warden` binary under
/// test, then closed to connections.
const TEMPLATE_DB: &str = "warden_template";

/// The shared cluster's port, started (or found) once per test process.
pub(super) fn port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(find_or_start)
}

/// A fresh, migrated database on the shared cluster: its name.
pub(super) fn create_database() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let sql = format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}");
    // Two creations from one template at the same instant can collide on its lock: retry.
    let created = poll_until(Duration::from_secs(20), || psql(port(), &sql).is_ok());
    assert!(
        created,
        "could not create database {name}: {:?}",
        psql(port(), &sql)
    );
    name
}

/// Drops a test's database (its connections are closed by force).
pub(super) fn drop_database(name: &str) {
    let _ = psql(
        port(),
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

/// Runs one statement as `postgres` on database `postgres`: Ok, or psql's complaint.
fn psql(port: u16, sql: &str) -> Result<(), String> {
    let out = Command::new(pg_bin("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-d", "postgres", "-p", &port.to_string(), "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn find_or_start() -> u16 {
    let runner = std::os::unix::process::parent_id();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shared-pg")
        .join(runner.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join("lock")).unwrap();
    lock.lock().expect("the shared cluster's lock");
    let port_file = dir.join("port");
    if let Some(port) = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        if psql(port, "SELECT 1").is_ok() {
            return port;
        }
    }
    let port = start(&dir, runner);
    std::fs::write(&port_file, port.to_string()).unwrap();
    port
}

/// Starts the cluster in `dir/data` (a copy of the initdb template), migrates the template
/// database, and leaves the watchdog that stops it all when `runner` exits.
fn start(dir: &Path, runner: u32) -> u16 {
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let _ = Command::new("chown").arg("postgres").arg(dir).status();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(template())
        .arg(&data)
        .status();
    assert!(
        copied.is_ok_and(|s| s.success()),
        "copying the template cluster failed"
    );
    let port = free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=500 \
         -c shared_buffers=64MB",
        dir.display()
    );
    let log = dir.join("log");
    // setsid: the cluster belongs to no test's process group, which the runner may kill.
    let started = Command::new("setsid")
        .args(argv(&pg_bin("pg_ctl")))
        .arg("-D")
        .arg(&data)
        .args(["-o", &opts, "-w", "-t", "60", "-l"])
        .arg(&log)
        .arg("start")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        started.is_ok_and(|s| s.success()),
        "the shared cluster did not start; its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    watch(dir, &data, runner);
    psql(port, &format!("CREATE DATABASE {TEMPLATE_DB}")).expect("template database");
    let url = format!("postgres://postgres@127.0.0.1:{port}/{TEMPLATE_DB}");
    // `token list` connects, which applies every migration, and exits (closing its pool).
    let migrated = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["token", "list"])
        .env("WARDEN_DATABASE_URL", &url)
        .env("WARDEN_CONFIG", "/nonexistent/warden.toml")
        .env_remove("WARDEN_REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("warden token list");
    assert!(
        migrated.status.success(),
        "migrating the template failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    psql(
        port,
        &format!("ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
    )
    .expect("closing the template");
    port
}

/// A process in a session of its own that waits for `runner` to exit, then stops the cluster
/// at once and removes its directory.
fn watch(dir: &Path, data: &Path, runner: u32) {
    let stop = format!(
        "while kill -0 {runner} 2>/dev/null; do sleep 1; done; \
         {} -D '{}' -m immediate -w stop; rm -rf '{}'",
        argv(&pg_bin("pg_ctl")).join(" "),
        data.display(),
        dir.display()
    );
    // `setsid -f` forks it off and returns: init adopts it, so no test process waits for it.
    let left = Command::new("setsid")
        .args(["-f", "sh", "-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        left.is_ok_and(|s| s.success()),
        "the shared cluster's watchdog"
    );
}

/// The whole command line [`as_postgres`] builds for `bin`: `runuser -u postgres -- bin` as
/// root, else `bin`.
fn argv(bin: &Path) -> Vec<String> {
    let cmd = as_postgres(bin);
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
