//! Semaphore endpoints (DESIGN §4.1): validate, call the domain, answer with the terminal
//! state. A permit is named in paths by its id, which is its fencing token.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, blocked_as, status_of};
use super::extract::{in_range, owner, Body, Caller, PathKey};
use super::observe::answered;
use super::problem::ApiError;
use super::AppState;
use crate::key::Key;
use crate::lock::{Touch, MAX_TTL_MS, MAX_WAIT_MS};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::semaphore::{PermitAcquired, PermitRequest, MAX_LIMIT};
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// `POST /v1/semaphores/{name}/acquire` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PermitAcquireBody {
    /// Holder identity (1–512 bytes).
    pub owner: String,
    /// The semaphore's limit, 1..=10 000. Every holder must send the same: while a permit
    /// lives, another limit answers `limit_mismatch`.
    pub limit: i64,
    /// Permits asked for, 1..=`limit` (default 1).
    #[serde(default = "one")]
    pub permits: i64,
    /// Lease length in ms, 1..=3 600 000.
    pub ttl_ms: i64,
    /// How long to wait in line, in ms (default 0, at most 60 000).
    #[serde(default)]
    pub wait_ms: i64,
}

fn one() -> i64 {
    1
}

/// `POST /v1/semaphores/{name}/permits/{id}/extend` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PermitExtendBody {
    /// Holder identity.
    pub owner: String,
    /// New lease length from now, in ms.
    pub ttl_ms: i64,
}

/// `POST /v1/semaphores/{name}/permits/{id}/release` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PermitReleaseBody {
    /// Holder identity.
    pub owner: String,
}

/// Answer of the semaphore endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SemaphoreAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The permit's id (its fencing token, as a string), for the permit's paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit_id: Option<String>,
    /// Fencing token (below 2^53).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// Permits the grant holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permits: Option<i64>,
    /// Lease expiry, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// ms until the lease expires, on the server's clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms_remaining: Option<i64>,
    /// The semaphore's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Permits held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<i64>,
    /// Permits free under the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// Live permit grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders: Option<i64>,
    /// Acquires waiting on this instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<usize>,
    /// For `semaphore_full`: when a retry may succeed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// For `lock_lost`: why the permit is gone (`expired`, `superseded`, `tier_switched`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl SemaphoreAnswer {
    fn expiring(mut self, expires_at: i64, now: i64) -> Self {
        self.expires_at = Some(rfc3339(expires_at));
        self.ttl_ms_remaining = Some((expires_at - now).max(0));
        self
    }
}

/// The `{name}` and `{id}` of a permit's path: a valid key, and a token.
pub struct PermitPath(Key, i64);

/// The code of a permit id that is not a token.
pub const PERMIT_ID_CODE: &str = "invalid_permit_id";

impl<S: Send + Sync> FromRequestParts<S> for PermitPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((name, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid_key(format!("path: {}", e.body_text())))?;
        let Ok(Caller(caller)) = Caller::from_request_parts(parts, state).await;
        let name =
            Key::scoped(&caller.tenant, &name).map_err(|e| ApiError::invalid_key(e.to_string()))?;
        let token = id
            .parse::<i64>()
            .ok()
            .filter(|t| (1..=crate::token::MAX_TOKEN).contains(t))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    PERMIT_ID_CODE,
                    "Invalid permit id",
                    "a permit id is the decimal fencing token its acquire answered",
                )
            })?;
        Ok(Self(name, token))
    }
}

/// The semaphore routes (scope `locks`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::semaphore::SemaphoreRead;
    let answer = "SemaphoreAnswer";
    vec![Routes::new("semaphores", Need::Scope(Scope::Locks))
        .answer(
            Answers::new("permit_acquire", PermitAcquired::STATES, answer).own_block(),
            routes!(acquire),
        )
        .answer(
            Answers::new("permit_extend", <Touch<i64>>::STATES, answer),
            routes!(extend),
        )
        .answer(
            Answers::new("permit_release", <Touch<()>>::STATES, answer),
            routes!(release),
        )
        .answer(
            Answers::new("semaphore_get", SemaphoreRead::STATES, answer),
            routes!(read),
        )]
}

fn reply(key: &str, outcome: &impl Terminal, answer: SemaphoreAnswer) -> Response {
    answered(key, answer.state, answer.mode.unwrap_or("none"));
    (status_of(outcome), Json(answer)).into_response()
}

/// Acquires permits of a semaphore.
#[utoipa::path(post, path = "/v1/semaphores/{name}/acquire", request_body = PermitAcquireBody,
    params(("name" = String, Path, description = "semaphore name")))]
pub async fn acquire(
    State(app): State<AppState>,
    PathKey(name): PathKey,
    Body(body): Body<PermitAcquireBody>,
) -> Result<Response, ApiError> {
    let limit = in_range("limit", body.limit, 1, MAX_LIMIT)?;
    let req = PermitRequest {
        owner: owner(&body.owner)?,
        limit,
        count: in_range("permits", body.permits, 1, limit)?,
        ttl_ms: in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?,
        wait_ms: in_range("wait_ms", body.wait_ms, 0, MAX_WAIT_MS)?,
        name,
    };
    let k = req.name.as_str();
    let outcome = app.semaphores.acquire(&req).await;
    let mut answer = SemaphoreAnswer {
        state: outcome.state(),
        ..SemaphoreAnswer::default()
    };
    match &outcome {
        PermitAcquired::Granted(g) => {
            answer.mode = Some(g.mode.as_str());
            answer.owner = Some(g.permit.owner.clone());
            answer.permit_id = Some(g.permit.token.to_string());
            answer.fencing_token = Some(g.permit.token);
            answer.permits = Some(g.permit.count);
            answer.limit = Some(req.limit);
            answer.available = Some(g.available);
            answer = answer.expiring(g.permit.expires_at, app.tier.now());
        }
        PermitAcquired::Full {
            held,
            retry_after_ms,
        } => {
            answer.held = Some(*held);
            answer.limit = Some(req.limit);
            answer.retry_after_ms = Some(*retry_after_ms);
        }
        PermitAcquired::LimitMismatch { limit } => answer.limit = Some(*limit),
        PermitAcquired::Blocked(b) => return Ok(blocked_as(k, outcome.state(), *b)),
    }
    Ok(reply(k, &outcome, answer))
}

fn touched<T>(touch: &Touch<T>, mode: Mode) -> SemaphoreAnswer
where
    Touch<T>: Terminal,
{
    SemaphoreAnswer {
        state: touch.state(),
        mode: Some(mode.as_str()),
        reason: match touch {
            Touch::Lost(why) => Some(why.as_str()),
            _ => None,
        },
        ..SemaphoreAnswer::default()
    }
}

/// Extends a permit held by the caller.
#[utoipa::path(post, path = "/v1/semaphores/{name}/permits/{id}/extend",
    request_body = PermitExtendBody,
    params(("name" = String, Path, description = "semaphore name"),
        ("id" = String, Path, description = "permit id")))]
pub async fn extend(
    State(app): State<AppState>,
    PermitPath(name, token): PermitPath,
    Body(body): Body<PermitExtendBody>,
) -> Result<Response, ApiError> {
    let who = owner(&body.owner)?;
    let ttl = in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?;
    let k = name.as_str();
    let (touch, mode) = match app.semaphores.extend(&name, &who, token, ttl).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    let mut answer = touched(&touch, mode);
    if let Touch::Done(expires_at) = touch {
        answer.owner = Some(who);
        answer.permit_id = Some(token.to_string());
        answer.fencing_token = Some(token);
        answer = answer.expiring(expires_at, app.tier.now());
    }
    Ok(reply(k, &touch, answer))
}

/// Releases a permit held by the caller.
#[utoipa::path(post, path = "/v1/semaphores/{name}/permits/{id}/release",
    request_body = PermitReleaseBody,
    params(("name" = String, Path, description = "semaphore name"),
        ("id" = String, Path, description = "permit id")))]
pub async fn release(
    State(app): State<AppState>,
    PermitPath(name, token): PermitPath,
    Body(body): Body<PermitReleaseBody>,
) -> Result<Response, ApiError> {
    let who = owner(&body.owner)?;
    let k = name.as_str();
    Ok(match app.semaphores.release(&name, &who, token).await {
        Ok((touch, mode)) => reply(k, &touch, touched(&touch, mode)),
        Err(b) => blocked(k, b),
    })
}

/// Reads a semaphore: its limit, the permits held and free, and the local waiters.
#[utoipa::path(get, path = "/v1/semaphores/{name}",
    params(("name" = String, Path, description = "semaphore name")))]
pub async fn read(State(app): State<AppState>, PathKey(name): PathKey) -> Response {
    let k = name.as_str();
    let (read, mode) = match app.semaphores.read(&name).await {
        Ok(read) => read,
        Err(b) => return blocked(k, b),
    };
    let c = read.census;
    let answer = SemaphoreAnswer {
        state: read.state(),
        mode: Some(mode.as_str()),
        limit: c.limit,
        held: Some(c.held),
        available: c.limit.map(|l| (l - c.held).max(0)),
        holders: Some(c.holders),
        waiting: Some(read.waiting),
        ..SemaphoreAnswer::default()
    };
    reply(k, &read, answer)
}
