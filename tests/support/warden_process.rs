//! `warden serve` processes under test: started with an environment, driven over HTTP,
//! killed and restarted, their log kept for failure messages.

use super::*;

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
    /// Starts `warden serve` with `env` (plus a free `WARDEN_LISTEN`) and waits until it has
    /// started (see [`Warden::restart`]).
    pub fn start(env: &[(&str, String)]) -> Self {
        Self::start_on("127.0.0.1", env)
    }

    /// [`Warden::start`], listening on `host` (`0.0.0.0` to be reachable from outside).
    pub fn start_on(host: &'static str, env: &[(&str, String)]) -> Self {
        let mut w = Self::spawned(host, env);
        w.restart();
        w
    }

    /// Starts `warden serve` and waits only until its port answers (`/healthz`), which it does
    /// while the instance is still starting.
    pub fn start_answering(env: &[(&str, String)]) -> Self {
        let mut w = Self::spawned("127.0.0.1", env);
        w.launch();
        w.wait_answering("/healthz", |_| true);
        w
    }

    fn spawned(host: &'static str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Warden {
            host,
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            child: None,
            log: dir.path().join("warden.log"),
            _dir: dir,
            // The helpers' client trusts a test's self-signed certificate; tests/contracts/https.rs
            // checks verification with a client of its own.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .danger_accept_invalid_certs(env.iter().any(|(k, _)| *k == "WARDEN_TLS_CERT"))
                .build()
                .unwrap(),
        }
    }

    /// (Re)starts the process on the same port and waits until the instance has started: its
    /// `/readyz` answers, and not 503 `starting` (ready or not, as its tiers allow).
    pub fn restart(&mut self) {
        self.launch();
        self.wait_answering("/readyz", |body| !body.contains(r#""code":"starting""#));
    }

    fn launch(&mut self) {
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
    }

    /// Polls `path` until it answers with a body `ok` accepts: over a plain socket (no process
    /// per poll), or with `curl` under TLS. Fails at once if the process has exited.
    fn wait_answering(&mut self, path: &str, ok: impl Fn(&str) -> bool) {
        let url = format!("{}{path}", self.base());
        let (tls, port) = (self.tls(), self.port);
        let mut exited = None;
        let child = &mut self.child;
        let up = poll_until(Duration::from_secs(20), || {
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                exited = Some(status);
                return true;
            }
            let body = if tls {
                std::process::Command::new("curl")
                    .args(["-sk", &url])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            } else {
                get_plain(port, path)
            };
            body.is_some_and(|b| !b.is_empty() && ok(&b))
        });
        assert!(
            up && exited.is_none(),
            "warden {path} never answered as started (exit: {exited:?}); its log:\n{}",
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

/// The body of `GET path` on `127.0.0.1:port` over HTTP/1.0 with a blocking socket, if it
/// answered at all.
fn get_plain(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

impl Drop for Warden {
    fn drop(&mut self) {
        // Under scripts/coverage.sh a process writes its profile only when it exits: let it
        // exit (SIGTERM; it drains for up to 5 s when its stores are gone), then kill it as
        // always.
        if std::env::var_os("WARDEN_TEST_COVERAGE").is_some() {
            if let Some(c) = self.child.as_mut() {
                signal(c.id(), "-TERM");
                let _ = poll_until(Duration::from_secs(8), || {
                    c.try_wait().ok().flatten().is_some()
                });
            }
        }
        kill9(&mut self.child);
    }
}

/// Settings that make failover quick enough for tests. The §10 fallback rate is not judged
/// (`tests/faults/guard*.rs` test it): a test's outage is most of its short life, so its rate
/// would pass 20 % and open a critical incident that is not what the test is about.
pub fn fast_failover(pg: &Postgres, redis: Option<String>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_GUARD_MIN_SAMPLES", "1000000000".to_string()),
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
