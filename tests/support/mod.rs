//! Test harness: real `redis-server`, PostgreSQL and `warden` processes on free ports in
//! temporary directories, killed and restarted to inject faults. Nothing is mocked.
#![allow(dead_code)]

pub mod guard;
pub mod history;
pub mod in_process;
pub mod problems;
pub mod proxy;
pub mod webhooks;

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

/// A SQL store on a fresh PostgreSQL cluster (keep the cluster as long as the store).
pub async fn postgres_store() -> (Postgres, warden::store::sql::SqlStore) {
    let pg = Postgres::start();
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
fn poll_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
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

/// A throwaway `redis-server`.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let mut r = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port, with no data.
    pub fn restart(&mut self) {
        kill9(&mut self.child);
        let child = Command::new(require("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis", Duration::from_secs(10), || {
            redis_cli(port, &["PING"]).is_some_and(|s| s.contains("PONG"))
        });
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        kill9(&mut self.child);
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that accepts nothing and answers nothing.
    pub fn stall(&self, on: bool) {
        let pid = self.child.as_ref().expect("running").id();
        signal(pid, if on { "-STOP" } else { "-CONT" });
    }

    pub fn cli(&self, args: &[&str]) -> Option<String> {
        redis_cli(self.port, args)
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new(require("redis-cli"))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// A throwaway Redis Cluster of three masters.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_cluster_port()).collect();
        let mut children = Vec::new();
        for p in &ports {
            let d = dir.path().join(p.to_string());
            std::fs::create_dir_all(&d).unwrap();
            children.push(
                Command::new(require("redis-server"))
                    .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .arg("--dir")
                    .arg(&d)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn redis-server"),
            );
        }
        for p in &ports {
            let p = *p;
            wait_until("cluster node", Duration::from_secs(10), || {
                redis_cli(p, &["PING"]).is_some_and(|s| s.contains("PONG"))
            });
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new(require("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster create failed");
        for p in &ports {
            let p = *p;
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                redis_cli(p, &["CLUSTER", "INFO"]).is_some_and(|s| s.contains("cluster_state:ok"))
            });
        }
        RedisCluster {
            ports,
            _dir: dir,
            children,
        }
    }

    /// Runs `redis-cli` with `args` on every master; their outputs.
    pub fn cli_all(&self, args: &[&str]) -> Vec<Option<String>> {
        self.ports.iter().map(|p| redis_cli(*p, args)).collect()
    }

    /// Seed list for `WARDEN_REDIS_URL`.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect();
        urls.join(",")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A throwaway PostgreSQL cluster (run as user `postgres` when we are root).
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    running: bool,
}

fn pg_bin(name: &str) -> PathBuf {
    let dir = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).max())
        .unwrap_or_else(|| panic!("PostgreSQL not installed: run scripts/test.sh"));
    dir.join("bin").join(name)
}

fn as_postgres(bin: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A cluster that accepts TLS connections only (`hostssl`), with `cert`/`key` (PEM).
    pub fn start_tls(cert: &str, key: &str) -> Self {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let _ = Command::new("chown")
            .arg("-R")
            .arg("postgres")
            .arg(dir.path())
            .status();
        let status = as_postgres(&pg_bin("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        if let Some((cert, key)) = tls {
            let data = dir.path().join("data");
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .unwrap();
            std::io::Write::write_all(&mut conf, b"\nssl = on\n").unwrap();
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
            for f in ["server.crt", "server.key", "pg_hba.conf"] {
                let _ = Command::new("chown")
                    .arg("postgres")
                    .arg(data.join(f))
                    .status();
            }
            let _ = Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key"))
                .status();
        }
        let mut pg = Postgres {
            port: free_port(),
            dir,
            running: false,
        };
        pg.resume();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, args: &[&str]) -> bool {
        as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Starts the cluster (keeping its data).
    pub fn resume(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let args = [
            "-o",
            &opts,
            "-w",
            "-t",
            "30",
            "-l",
            log.to_str().unwrap(),
            "start",
        ];
        assert!(
            self.ctl(&args),
            "pg_ctl start failed; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) on every PostgreSQL process of this cluster.
    pub fn stall(&self, on: bool) {
        let pidfile = self.dir.path().join("data").join("postmaster.pid");
        let pid: u32 = std::fs::read_to_string(pidfile)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let out = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .unwrap();
        let children = String::from_utf8_lossy(&out.stdout).into_owned();
        let sig = if on { "-STOP" } else { "-CONT" };
        signal(pid, sig);
        for child in children.split_whitespace() {
            signal(child.parse().unwrap(), sig);
        }
    }

    /// Immediate shutdown (like a crash).
    pub fn stop(&mut self) {
        if self.running {
            self.ctl(&["-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `warden serve` process.
pub struct Warden {
    pub port: u16,
    /// The address it listens on (`127.0.0.1` unless started with [`Warden::start_on`]).
    host: &'static str,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Warden {
    /// Starts `warden serve` with `env` (plus a free `WARDEN_LISTEN`) and waits for `/healthz`.
    pub fn start(env: &[(&str, String)]) -> Self {
        Self::start_on("127.0.0.1", env)
    }

    /// [`Warden::start`], listening on `host` (`0.0.0.0` to be reachable from outside).
    pub fn start_on(host: &'static str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Warden {
            host,
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            child: None,
            log: dir.path().join("warden.log"),
            _dir: dir,
            // The helpers' client trusts a test's self-signed certificate; tests/https.rs
            // checks verification with a client of its own.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .danger_accept_invalid_certs(env.iter().any(|(k, _)| *k == "WARDEN_TLS_CERT"))
                .build()
                .unwrap(),
        };
        w.restart();
        w
    }

    /// (Re)starts the process on the same port.
    pub fn restart(&mut self) {
        kill9(&mut self.child);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
        cmd.arg("serve")
            .env("WARDEN_LISTEN", format!("{}:{}", self.host, self.port))
            .env("WARDEN_CONFIG", self._dir.path().join("none.toml"))
            .env_remove("WARDEN_REDIS_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn warden"));
        let url = format!("{}/healthz", self.base());
        let up = poll_until(Duration::from_secs(20), || {
            std::process::Command::new("curl")
                .args(["-sfk", "-o", "/dev/null", &url])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        assert!(
            up,
            "warden /healthz never answered; its log:\n{}",
            self.tail_log()
        );
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        kill9(&mut self.child);
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok()
    }

    pub fn base(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Whether it serves HTTPS (started with `WARDEN_TLS_CERT`).
    pub fn tls(&self) -> bool {
        self.env.iter().any(|(k, _)| k == "WARDEN_TLS_CERT")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// POST JSON; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// A request with `method` and an optional JSON body; returns status and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST a raw JSON text; returns status and the body text, byte for byte.
    pub async fn post_text(&self, path: &str, body: &str) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base()))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// `PUT /v1/inventory/{sku}` with `total`.
    pub async fn put_total(&self, sku: &str, total: i64) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/v1/inventory/{sku}", self.base()))
            .json(&json!({ "total": total }))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/idempotency/{key}/{step}`.
    pub async fn idem(&self, key: &str, step: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/v1/idempotency/{key}/{step}"), body)
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn acquire(&self, key: &str, owner: &str, ttl_ms: i64, wait_ms: i64) -> (u16, Value) {
        self.post(
            &format!("/v1/locks/{key}/acquire"),
            json!({"owner": owner, "ttl_ms": ttl_ms, "wait_ms": wait_ms}),
        )
        .await
    }

    pub async fn release(&self, key: &str, owner: &str, token: i64) -> (u16, Value) {
        self.post(
            &format!("/v1/locks/{key}/release"),
            json!({"owner": owner, "fencing_token": token}),
        )
        .await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await;
        r.expect("metrics").text().await.expect("metrics body")
    }

    /// `POST /v1/fences/{resource}/check`.
    pub async fn fence(&self, resource: &str, token: i64) -> (u16, Value) {
        let path = format!("/v1/fences/{resource}/check");
        self.post(&path, json!({ "token": token })).await
    }

    pub async fn status(&self) -> Value {
        self.get("/v1/status").await.1
    }

    /// Waits until `/readyz` (public, whatever the access mode) reports `tier` and ready.
    pub async fn wait_ready_on(&self, tier: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.get("/readyz").await.1;
            if s["tier"] == tier && s["ready"] == true {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready on {tier}: {s}\n{}",
                self.tail_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `/readyz` every 2 ms until it answers 200, as a newcomer's health check would.
    pub async fn wait_readyz(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, v) = self.get("/readyz").await;
            if s == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never 200: {v}\n{}",
                self.tail_log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn tail_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // A panic's message comes before its backtrace: keep the message lines.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("  ") && !l.starts_with("stack backtrace"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// Settings that make failover quick enough for tests.
pub fn fast_failover(pg: &Postgres, redis: Option<String>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_BREAKER_OPEN_MS", "1000".to_string()),
        ("WARDEN_FAILOVER_GRACE_MS", "800".to_string()),
        ("WARDEN_TIER_LEASE_MS", "400".to_string()),
        ("WARDEN_REDIS_TIMEOUT_MS", "100".to_string()),
        ("WARDEN_LOG", "info".to_string()),
    ];
    if let Some(url) = redis {
        env.push(("WARDEN_REDIS_URL", url));
    }
    env
}
