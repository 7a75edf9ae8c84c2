//! A real HTTP webhook receiver for the guard's tests: it records every request (headers, body,
//! arrival), verifies Standard Webhooks signatures independently of Warden's code, and answers
//! each path from a script (a status per request, a delay, a `Retry-After`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// This status at once.
    Status(u16),
    /// This status after a delay (longer than Warden's timeout: a timeout).
    Slow(u16, Duration),
    /// 429 with `Retry-After: <secs>`.
    RetryAfter(u64),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path after `/hook/` (the role's endpoint name).
    pub endpoint: String,
    /// `webhook-id`.
    pub id: String,
    /// When it arrived (test clock).
    pub at: Instant,
    /// The body, parsed.
    pub body: Value,
    /// Whether its signature verified against the endpoint's secret.
    pub signed: bool,
}

impl Received {
    /// The event type.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    /// `data.attempt`.
    pub fn attempt(&self) -> i64 {
        self.body["data"]["attempt"].as_i64().unwrap_or(-1)
    }
}

#[derive(Default)]
struct Inner {
    got: Vec<Received>,
    script: HashMap<String, VecDeque<Reply>>,
    secrets: HashMap<String, String>,
}

/// The receiver.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub port: u16,
}

/// A `whsec_` secret (24 random-looking bytes, fixed per name).
pub fn secret(name: &str) -> String {
    let key: Vec<u8> = name.bytes().cycle().take(24).collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

fn verify(secret: &str, id: &str, ts: &str, body: &[u8], signature: &str) -> bool {
    let Some(b64) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    signature.split(' ').any(|s| s == expected)
}

async fn hook(
    State(r): State<Receiver>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let reply = {
        let mut inner = r.inner.lock().unwrap();
        let secret = inner.secrets.get(&endpoint).cloned().unwrap_or_default();
        let got = Received {
            signed: verify(&secret, &id, &ts, &body, &sig),
            endpoint: endpoint.clone(),
            id,
            at: Instant::now(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        inner.got.push(got);
        inner
            .script
            .get_mut(&endpoint)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Reply::Slow(s, d) => {
            tokio::time::sleep(d).await;
            StatusCode::from_u16(s).unwrap().into_response()
        }
        Reply::RetryAfter(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
        )
            .into_response(),
    }
}

impl Receiver {
    /// Starts listening on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Receiver {
            inner: Arc::default(),
            port,
        };
        let app = axum::Router::new()
            .route("/hook/{endpoint}", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    /// The URL of endpoint `name`, whose requests are checked against `secret(name)`.
    pub fn endpoint(&self, name: &str) -> String {
        self.inner
            .lock()
            .unwrap()
            .secrets
            .insert(name.to_owned(), secret(name));
        format!("http://127.0.0.1:{}/hook/{name}", self.port)
    }

    /// Answers the next requests to `name` with `replies`, in order (then 200).
    pub fn script(&self, name: &str, replies: &[Reply]) {
        self.inner
            .lock()
            .unwrap()
            .script
            .insert(name.to_owned(), replies.iter().copied().collect());
    }

    /// Everything received so far.
    pub fn got(&self) -> Vec<Received> {
        self.inner.lock().unwrap().got.clone()
    }

    /// Received by `endpoint`, of type `kind`.
    pub fn of(&self, endpoint: &str, kind: &str) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| r.endpoint == endpoint && r.kind() == kind)
            .collect()
    }

    /// The settings pointing the owner and the superadmin at endpoints `owner` and `admin`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WARDEN_NOTIFY_OWNER_URL", self.endpoint("owner")),
            ("WARDEN_NOTIFY_OWNER_SECRET", secret("owner")),
            ("WARDEN_NOTIFY_SUPERADMIN_URL", self.endpoint("admin")),
            ("WARDEN_NOTIFY_SUPERADMIN_SECRET", secret("admin")),
            ("WARDEN_NOTIFY_POLL_MS", "20".into()),
        ]
    }
}
