//! Lock and fence endpoints (DESIGN §4 "Locks"): validate, call the domain, answer with the
//! terminal state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, SafeBlockAnswer};
use super::extract::{in_range, owner, token, Body, PathKey};
use super::observe::Op;
use super::problem::ApiError;
use super::AppState;
use crate::fence::FenceOutcome;
use crate::lock::{AcquireRequest, Acquired, LostReason, Touch, MAX_TTL_MS, MAX_WAIT_MS};
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;

/// `POST /v1/locks/{key}/acquire` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcquireBody {
    /// Holder identity (1–512 bytes).
    pub owner: String,
    /// Lease length in ms, 1..=3 600 000.
    pub ttl_ms: i64,
    /// How long to wait in line, in ms (default 0, at most 60 000).
    #[serde(default)]
    pub wait_ms: i64,
}

/// `POST /v1/locks/{key}/extend` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExtendBody {
    /// Holder identity.
    pub owner: String,
    /// Token of the grant being extended.
    pub fencing_token: i64,
    /// New lease length from now, in ms.
    pub ttl_ms: i64,
}

/// `POST /v1/locks/{key}/release` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReleaseBody {
    /// Holder identity.
    pub owner: String,
    /// Token of the grant being released.
    pub fencing_token: i64,
}

/// `POST /v1/fences/{resource}/check` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FenceBody {
    /// Fencing token presented by the writer.
    pub token: i64,
}

/// Answer of the lock endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LockAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// `primary` (Redis) or `fallback` (SQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Fencing token (below 2^53).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// Lease expiry, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For `lock_busy`: when a retry may succeed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// For `lock_lost`, why the lease is gone: `expired`, `superseded` or `tier_switched`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Answer of the fence endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct FenceAnswer {
    /// `accepted` or `stale_token`.
    pub state: &'static str,
    /// Highest token recorded for the resource.
    pub highest: i64,
}

/// The lock and fence routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/locks/{key}/acquire", post(acquire))
        .route("/v1/locks/{key}/extend", post(extend))
        .route("/v1/locks/{key}/release", post(release))
        .route("/v1/locks/{key}", get(read))
        .route("/v1/fences/{resource}/check", post(fence_check))
}

fn reply(op: &Op, key: &str, status: StatusCode, answer: LockAnswer) -> Response {
    op.finish(key, answer.state, answer.mode.unwrap_or("none"));
    (status, Json(answer)).into_response()
}

/// Acquires a lock.
#[utoipa::path(post, path = "/v1/locks/{key}/acquire", request_body = AcquireBody,
    params(("key" = String, Path, description = "lock key")),
    responses(
        (status = 200, description = "lock_acquired_primary / lock_acquired_fallback", body = LockAnswer),
        (status = 409, description = "lock_busy", body = LockAnswer),
        (status = 503, description = "lock_acquire_failed_safe_block", body = SafeBlockAnswer),
        (status = 400, description = "bad input", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn acquire(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<AcquireBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("lock_acquire");
    let req = AcquireRequest {
        owner: owner(&body.owner)?,
        ttl_ms: in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?,
        wait_ms: in_range("wait_ms", body.wait_ms, 0, MAX_WAIT_MS)?,
        key,
    };
    let k = req.key.as_str();
    Ok(match app.locks.acquire(&req).await {
        Acquired::Granted(g) => {
            let state = match g.mode {
                Mode::Primary => "lock_acquired_primary",
                Mode::Fallback => "lock_acquired_fallback",
            };
            let answer = LockAnswer {
                state,
                mode: Some(g.mode.as_str()),
                owner: Some(g.owner),
                fencing_token: Some(g.token),
                expires_at: Some(rfc3339(g.expires_at)),
                ..LockAnswer::default()
            };
            reply(&op, k, StatusCode::OK, answer)
        }
        Acquired::Busy { retry_after_ms } => {
            let answer = LockAnswer {
                state: "lock_busy",
                retry_after_ms: Some(retry_after_ms),
                ..LockAnswer::default()
            };
            reply(&op, k, StatusCode::CONFLICT, answer)
        }
        Acquired::Blocked(b) => blocked(&op, k, "lock_acquire_failed_safe_block", b),
    })
}

/// The 409 answers of extend and release: `not_owner`, or `lock_lost` with its reason.
fn refused(op: &Op, key: &str, mode: Mode, lost: Option<LostReason>) -> Response {
    let answer = LockAnswer {
        state: if lost.is_some() {
            "lock_lost"
        } else {
            "not_owner"
        },
        mode: Some(mode.as_str()),
        reason: lost.map(LostReason::as_str),
        ..LockAnswer::default()
    };
    reply(op, key, StatusCode::CONFLICT, answer)
}

/// Extends a lease held by the caller.
#[utoipa::path(post, path = "/v1/locks/{key}/extend", request_body = ExtendBody,
    params(("key" = String, Path, description = "lock key")),
    responses((status = 200, description = "extended", body = LockAnswer),
        (status = 409, description = "not_owner", body = LockAnswer),
        (status = 503, description = "safe_block", body = SafeBlockAnswer)))]
pub async fn extend(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<ExtendBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("lock_extend");
    let who = owner(&body.owner)?;
    let tok = token("fencing_token", body.fencing_token)?;
    let ttl = in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?;
    let k = key.as_str();
    Ok(match app.locks.extend(&key, &who, tok, ttl).await {
        Ok((Touch::Done(expires_at), mode)) => {
            let answer = LockAnswer {
                state: "extended",
                mode: Some(mode.as_str()),
                owner: Some(who),
                fencing_token: Some(tok),
                expires_at: Some(rfc3339(expires_at)),
                ..LockAnswer::default()
            };
            reply(&op, k, StatusCode::OK, answer)
        }
        Ok((Touch::NotOwner, mode)) => refused(&op, k, mode, None),
        Ok((Touch::Lost(why), mode)) => refused(&op, k, mode, Some(why)),
        Err(b) => blocked(&op, k, "safe_block", b),
    })
}

/// Releases a lease held by the caller.
#[utoipa::path(post, path = "/v1/locks/{key}/release", request_body = ReleaseBody,
    params(("key" = String, Path, description = "lock key")),
    responses((status = 200, description = "released", body = LockAnswer),
        (status = 409, description = "not_owner", body = LockAnswer),
        (status = 503, description = "safe_block", body = SafeBlockAnswer)))]
pub async fn release(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<ReleaseBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("lock_release");
    let who = owner(&body.owner)?;
    let tok = token("fencing_token", body.fencing_token)?;
    let k = key.as_str();
    Ok(match app.locks.release(&key, &who, tok).await {
        Ok((Touch::Done(()), mode)) => {
            let answer = LockAnswer {
                state: "released",
                mode: Some(mode.as_str()),
                ..LockAnswer::default()
            };
            reply(&op, k, StatusCode::OK, answer)
        }
        Ok((Touch::NotOwner, mode)) => refused(&op, k, mode, None),
        Ok((Touch::Lost(why), mode)) => refused(&op, k, mode, Some(why)),
        Err(b) => blocked(&op, k, "safe_block", b),
    })
}

/// Reads the live lease on a key.
#[utoipa::path(get, path = "/v1/locks/{key}",
    params(("key" = String, Path, description = "lock key")),
    responses((status = 200, description = "held", body = LockAnswer),
        (status = 404, description = "not_held", body = LockAnswer),
        (status = 503, description = "safe_block", body = SafeBlockAnswer)))]
pub async fn read(State(app): State<AppState>, PathKey(key): PathKey) -> Response {
    let op = Op::start("lock_get");
    let k = key.as_str();
    match app.locks.get(&key).await {
        Ok((Some(lease), mode)) => {
            let answer = LockAnswer {
                state: "held",
                mode: Some(mode.as_str()),
                owner: Some(lease.owner),
                fencing_token: Some(lease.token),
                expires_at: Some(rfc3339(lease.expires_at)),
                ..LockAnswer::default()
            };
            reply(&op, k, StatusCode::OK, answer)
        }
        Ok((None, mode)) => {
            let answer = LockAnswer {
                state: "not_held",
                mode: Some(mode.as_str()),
                ..LockAnswer::default()
            };
            reply(&op, k, StatusCode::NOT_FOUND, answer)
        }
        Err(b) => blocked(&op, k, "safe_block", b),
    }
}

/// Checks a fencing token against a resource, recording the highest.
#[utoipa::path(post, path = "/v1/fences/{resource}/check", request_body = FenceBody,
    params(("resource" = String, Path, description = "fenced resource")),
    responses((status = 200, description = "accepted", body = FenceAnswer),
        (status = 409, description = "stale_token", body = FenceAnswer),
        (status = 503, description = "safe_block", body = SafeBlockAnswer)))]
pub async fn fence_check(
    State(app): State<AppState>,
    PathKey(resource): PathKey,
    Body(body): Body<FenceBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("fence_check");
    let tok = token("token", body.token)?;
    let r = resource.as_str();
    Ok(match app.fences.check(&resource, tok).await {
        Ok(FenceOutcome::Accepted { highest }) => {
            op.finish(r, "accepted", "fallback");
            let answer = FenceAnswer {
                state: "accepted",
                highest,
            };
            (StatusCode::OK, Json(answer)).into_response()
        }
        Ok(FenceOutcome::Stale { highest }) => {
            op.finish(r, "stale_token", "fallback");
            let answer = FenceAnswer {
                state: "stale_token",
                highest,
            };
            (StatusCode::CONFLICT, Json(answer)).into_response()
        }
        Err(b) => blocked(&op, r, "safe_block", b),
    })
}
