//! `warden-bench bare`: the physical limit of a path on this machine short of Redis and SQL
//! themselves — a bare axum server making the same service calls as Warden's handlers (the
//! same tier, stores, batching and scripts), without Warden's middleware, validation, problem
//! answers, metrics or logs. Configured like `warden serve` (environment); answers `/readyz`
//! with the tier, and the calls of the headline suites (lock acquires, idempotency
//! begin/complete, stock and reservations, stream intake, commit and state) with the fields the
//! suites read.
//! It is a measuring stick, not a service: nothing here checks its input.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use warden::idem::{BeginRequest, Begun};
use warden::key::Key;
use warden::lock::{AcquireRequest, Acquired};
use warden::reserve::{ReserveRequest, Reserved};
use warden::service::Warden;
use warden::stream::rules::NewIntent;
use warden::stream::{CommitRequest, Committed, Intake, Read};

type App = State<Arc<Warden>>;

fn key(raw: &str) -> Result<Key, (axum::http::StatusCode, String)> {
    Key::parse(raw).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

type Answer = Result<(StatusCode, Json<Value>), (StatusCode, String)>;

async fn kv_get(State(w): App, Path(k): Path<String>) -> Answer {
    Ok(match w.kv.get(&key(&k)?).await {
        Ok((warden::kv::KvRead::Found(r), _)) => {
            let value: Value = serde_json::from_str(&r.value).unwrap_or(Value::Null);
            (
                StatusCode::OK,
                Json(json!({"value": value, "version": r.version})),
            )
        }
        Ok(_) => (StatusCode::NOT_FOUND, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn kv_put(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let value = body["value"].to_string();
    let any = warden::store::sql::KvExpect::Any;
    Ok(match w.kv.put(&key(&k)?, &value, None, any).await {
        Ok((warden::kv::KvPut::Stored(r), _)) => {
            (StatusCode::OK, Json(json!({"version": r.version})))
        }
        Ok(_) => (StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn session_create(State(w): App, Json(body): Json<Value>) -> Answer {
    let req = warden::session::CreateRequest {
        tenant: "default".into(),
        principal: body["principal"].as_str().unwrap_or_default().to_owned(),
        data: body["data"].to_string(),
        idle_ttl_ms: body["idle_ttl_ms"].as_i64().unwrap_or(60_000),
        absolute_ttl_ms: body["absolute_ttl_ms"].as_i64().unwrap_or(60_000),
        limit: None,
    };
    Ok(match w.sessions.create(&req).await {
        Ok((warden::session::SessionCreated::Created(id, r, _), _)) => (
            StatusCode::CREATED,
            Json(json!({"session_id": id, "version": r.version})),
        ),
        Ok(_) => (StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn session_get(State(w): App, Path(id): Path<String>) -> Answer {
    Ok(match w.sessions.get("default", &id, false).await {
        Ok((warden::session::SessionRead::Active(r), _)) => {
            let data: Value = serde_json::from_str(&r.data).unwrap_or(Value::Null);
            (
                StatusCode::OK,
                Json(json!({"data": data, "version": r.version})),
            )
        }
        Ok(_) => (StatusCode::GONE, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn session_put(State(w): App, Path(id): Path<String>, Json(body): Json<Value>) -> Answer {
    let data = body["data"].to_string();
    let expected = body["expected_version"].as_i64().unwrap_or(1);
    Ok(match w.sessions.put("default", &id, data, expected).await {
        Ok((warden::session::SessionSaved::Saved(r), _)) => {
            (StatusCode::OK, Json(json!({"version": r.version})))
        }
        Ok(_) => (StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn acquire(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let req = AcquireRequest {
        key: key(&k)?,
        owner: body["owner"].as_str().unwrap_or("bare").to_owned(),
        ttl_ms: body["ttl_ms"].as_i64().unwrap_or(10_000),
        wait_ms: 0,
        max_hold_ms: None,
        shared: false,
        deadlock_priority: 0,
    };
    Ok(match w.locks.acquire(&req).await {
        Acquired::Granted(g) => (
            StatusCode::OK,
            Json(json!({"fencing_token": g.token, "mode": g.mode.as_str()})),
        ),
        Acquired::Busy { .. } | Acquired::Deadlock { .. } => {
            (StatusCode::CONFLICT, Json(json!({})))
        }
        Acquired::Blocked(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
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
        Ok((Begun::Started { token, .. }, _)) => {
            (StatusCode::CREATED, Json(json!({"token": token})))
        }
        Ok((Begun::Completed { response, .. }, _)) => (
            StatusCode::OK,
            Json(json!({"response": serde_json::from_str::<Value>(&response).ok()})),
        ),
        Ok(_) => (StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn complete(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let token = body["token"].as_i64().unwrap_or(0);
    let response = body["response"].to_string();
    Ok(
        match w.idempotency.complete(&key(&k)?, token, response).await {
            Ok(_) => (StatusCode::OK, Json(json!({}))),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
        },
    )
}

async fn set_total(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let total = body["total"].as_i64().unwrap_or(0);
    Ok(match w.reservations.set_total(&key(&k)?, total).await {
        Ok(_) => (StatusCode::OK, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn stock(State(w): App, Path(k): Path<String>) -> Answer {
    Ok(match w.reservations.stock(&key(&k)?).await {
        Ok((Some(s), _)) => (StatusCode::OK, Json(json!({"reserved": s.reserved}))),
        Ok((None, _)) => (StatusCode::NOT_FOUND, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn reserve(State(w): App, Path(k): Path<String>, Json(body): Json<Value>) -> Answer {
    let req = ReserveRequest {
        sku: key(&k)?,
        user_id: body["user_id"].as_str().unwrap_or("bare").to_owned(),
        quantity: body["quantity"].as_i64().unwrap_or(1),
        ttl_ms: 600_000,
    };
    Ok(match w.reservations.reserve(&req).await {
        Ok((Reserved::Reserved { id, .. }, _)) => (StatusCode::CREATED, Json(json!({"id": id}))),
        Ok(_) => (StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn intake(State(w): App, Path(stream): Path<String>, Json(body): Json<Value>) -> Answer {
    let text = |f: &str| body[f].as_str().unwrap_or("").to_owned();
    let n = NewIntent {
        stream,
        intent_id: text("intent_id"),
        priority: body["dispatch_priority"].as_i64().unwrap_or(0),
        intent_type: text("intent_type"),
        payload: body["payload"].to_string(),
        correlation: Default::default(),
        sensitive: false,
    };
    Ok(match w.streams.intake(n).await {
        Ok((Intake::Accepted { seq, .. }, _)) => {
            (StatusCode::CREATED, Json(json!({"commit_sequence": seq})))
        }
        Ok(_) => (StatusCode::CONFLICT, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn commit(State(w): App, Path(stream): Path<String>, Json(body): Json<Value>) -> Answer {
    let req = CommitRequest {
        stream,
        seq: body["commit_sequence"].as_i64().unwrap_or(0),
        intent_id: body["intent_id"].as_str().unwrap_or("").to_owned(),
        expected_version: None,
        wait_ms: 0,
    };
    Ok(match w.streams.commit(&req).await {
        Ok((Committed::Causal { version }, _)) => {
            (StatusCode::OK, Json(json!({"version": version})))
        }
        Ok(_) => (StatusCode::ACCEPTED, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
}

async fn stream_state(State(w): App, Path(stream): Path<String>) -> Answer {
    Ok(match w.streams.state(&stream).await {
        Ok((Read::Found(s), _)) => (
            StatusCode::OK,
            Json(json!({"last_committed": s.counters.last_committed,
                "next_sequence": s.counters.assigned + 1, "version": s.counters.version,
                "waiting": s.waiting.iter().map(|i| i.seq).collect::<Vec<_>>()})),
        ),
        Ok((Read::Unknown, _)) => (StatusCode::NOT_FOUND, Json(json!({}))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
    })
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
        .route("/v1/inventory/{sku}", put(set_total).get(stock))
        .route("/v1/inventory/{sku}/reservations", post(reserve))
        .route("/v1/streams/{stream}", get(stream_state))
        .route("/v1/streams/{stream}/intents", post(intake))
        .route("/v1/streams/{stream}/commits", post(commit))
        .route("/v1/kv/{key}", get(kv_get).put(kv_put))
        .route("/v1/sessions", post(session_create))
        .route("/v1/sessions/{id}", get(session_get).put(session_put))
        .with_state(Arc::new(w));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
