//! `warden-bench bare`: the physical limit of a path on this machine short of Redis and SQL
//! themselves — a bare axum server making the same service calls as Warden's handlers (the
//! same tier, stores, batching and scripts), without Warden's middleware, validation, problem
//! answers, metrics or logs. Configured like `warden serve` (environment); answers `/readyz`
//! with the tier, lock acquires and idempotency begin/complete with the fields the suites read.
//! It is a measuring stick, not a service: nothing here checks its input.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use warden::idem::{BeginRequest, Begun};
use warden::key::Key;
use warden::lock::{AcquireRequest, Acquired};
use warden::service::Warden;

type App = State<Arc<Warden>>;

fn key(raw: &str) -> Result<Key, (axum::http::StatusCode, String)> {
    Key::parse(raw).map_err(|e| (axum::http::StatusCode::BAD_REQUEST, e.to_string()))
}

type Answer = Result<(axum::http::StatusCode, Json<Value>), (axum::http::StatusCode, String)>;

async fn acquire(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let req = AcquireRequest {
        key: key(&k)?,
        owner: body["owner"].as_str().unwrap_or("bare").to_owned(),
        ttl_ms: body["ttl_ms"].as_i64().unwrap_or(10_000),
        wait_ms: 0,
    };
    Ok(match w.locks.acquire(&req).await {
        Acquired::Granted(g) => (
            axum::http::StatusCode::OK,
            Json(json!({"fencing_token": g.token, "mode": g.mode.as_str()})),
        ),
        Acquired::Busy { .. } => (axum::http::StatusCode::CONFLICT, Json(json!({}))),
        Acquired::Blocked(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn begin(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let req = BeginRequest {
        key: key(&k)?,
        fingerprint: body["fingerprint"].as_str().unwrap_or("").to_owned(),
        lease_ms: 30_000,
        ttl_ms: 86_400_000,
        wait_ms: 0,
    };
    Ok(match w.idempotency.begin(&req).await {
        Ok((Begun::Started { token, .. }, _)) => (
            axum::http::StatusCode::CREATED,
            Json(json!({"token": token})),
        ),
        Ok((Begun::Completed { response, .. }, _)) => (
            axum::http::StatusCode::OK,
            Json(json!({"response": serde_json::from_str::<Value>(&response).ok()})),
        ),
        Ok(_) => (axum::http::StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn complete(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let token = body["token"].as_i64().unwrap_or(0);
    let response = body["response"].to_string();
    Ok(
        match w.idempotency.complete(&key(&k)?, token, response).await {
            Ok(_) => (axum::http::StatusCode::OK, Json(json!({}))),
            Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
        },
    )
}

async fn readyz(State(w): App) -> Json<Value> {
    let s = w.tier.status();
    Json(json!({"tier": s.tier.map(|t| t.as_str()), "epoch": s.epoch}))
}

/// Serves until killed.
pub(crate) async fn serve() -> Result<(), String> {
    let config = warden::config::Flags::default()
        .resolve()
        .map_err(|e| e.to_string())?;
    let listen = config.listen.clone();
    let w = Warden::start(&config).await.map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/readyz", get(readyz))
        .route("/v1/locks/{key}/acquire", post(acquire))
        .route("/v1/idempotency/{key}/begin", post(begin))
        .route("/v1/idempotency/{key}/complete", post(complete))
        .with_state(Arc::new(w));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
