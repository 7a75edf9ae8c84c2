//! An in-process Warden for suites that need no process to die (pure input validation, G8):
//! the real `api::app()` router over a real `service::Warden` on a fresh SQLite file, driven
//! with `oneshot` — no socket, no child process; and a service alone on real servers for the
//! in-process library suites.

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

use super::problems::Target;

/// A Warden running inside the test process.
pub struct InProcess {
    app: axum::Router,
    warden: Option<std::sync::Arc<warden::service::Warden>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts one on a fresh SQLite file with a `max_body_bytes` body limit.
    pub async fn start(max_body_bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let flags = warden::config::Flags {
            database_url: Some(format!("sqlite://{}/w.db", dir.path().display())),
            set: vec![format!("max_body_bytes={max_body_bytes}")],
            config: dir.path().join("none.toml"),
            ..Default::default()
        };
        let config = flags.resolve().expect("valid settings");
        let warden = warden::service::Warden::start(&config)
            .await
            .expect("warden starts");
        let warden = std::sync::Arc::new(warden);
        let app = warden::api::app(warden::api::state(warden.clone()), config.max_body_bytes);
        Self {
            app,
            warden: Some(warden),
            _dir: dir,
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let req = Request::get("/metrics")
            .body(Body::empty())
            .expect("a request");
        let (_, _, bytes) = self.call(req).await;
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Runs one request through the router: status, content type and body.
    pub async fn call(&self, req: Request<Body>) -> (u16, String, axum::body::Bytes) {
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("a body");
        (status, ct, bytes)
    }

    /// POST JSON; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let body = serde_json::to_vec(&body).unwrap();
        let (s, _, v) = self
            .send("POST", path, Some("application/json"), body)
            .await;
        (s, v)
    }

    /// Sends JSON with `method` and extra `headers`; returns status and body.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .expect("a request");
        let (status, _, bytes) = self.call(req).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GET; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.send("GET", path, None, Vec::new()).await;
        (s, v)
    }

    /// The running instance.
    pub fn warden(&self) -> &warden::service::Warden {
        self.warden.as_ref().expect("running until stopped")
    }

    /// Stops its background tasks and closes its pool.
    pub async fn stop(mut self) {
        if let Some(w) = self.warden.take() {
            w.shutdown().await;
        }
    }
}

impl Target for InProcess {
    async fn send(
        &self,
        method: &str,
        path: &str,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let req = req.body(Body::from(body)).expect("a request");
        let (status, ct, bytes) = self.call(req).await;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, ct, json)
    }
}

/// A Warden service started in this process on PostgreSQL `pg_url` and Redis `redis_url`
/// (settings `set` as `path=value`), once it serves on Redis; with its (empty) config dir.
pub async fn service_on_redis(
    pg_url: String,
    redis_url: String,
    set: &[&str],
) -> (tempfile::TempDir, warden::service::Warden) {
    let dir = tempfile::tempdir().unwrap();
    let flags = warden::config::Flags {
        database_url: Some(pg_url),
        redis_url: Some(redis_url),
        config: dir.path().join("none.toml"),
        set: set.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let w = warden::service::Warden::start(&flags.resolve().unwrap())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.tier.status().tier != Some(warden::tier::TierName::Redis)
        || w.tier.status().ready.is_err()
    {
        assert!(std::time::Instant::now() < deadline, "never on redis");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (dir, w)
}
