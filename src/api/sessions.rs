//! One session's endpoints (DESIGN §4.6): create, read (and touch), write with a version,
//! merge patch, rotate, revoke; a principal's sessions, "log out everywhere" and the events
//! feed are in `session_pages.rs`. A session id is a bearer secret: it is answered once (create, rotate) and never
//! logged; answers and logs name sessions by `session_ref`, the SHA-256 of the id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{identity, in_range, Body, Caller, QueryOf};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::session::{
    CreateRequest, Gone, SessionCreated, SessionRead, SessionRevoked, SessionRotated, SessionSaved,
    SessionTouch, MAX_TTL_MS,
};
use crate::session::{OnLimit, SessionRow};
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Most live sessions a principal may be limited to.
pub const MAX_PER_PRINCIPAL: i64 = 10_000;
/// Codes of refused session fields, for the OpenAPI document.
pub const FIELD_CODES: [&str; 2] = ["invalid_principal", "invalid_data"];

/// `POST /v1/sessions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Who the session is for (1–512 bytes like keys); needed for `max_per_principal` and
    /// "log out everywhere".
    #[serde(default)]
    pub principal: Option<String>,
    /// A JSON object, at most `sessions.max_data_bytes` (64 KiB).
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Idle TTL, ms (1..=31 622 400 000): touches slide the idle expiry.
    pub idle_ttl_ms: i64,
    /// Absolute TTL, ms, at least `idle_ttl_ms`: nothing slides past it.
    pub absolute_ttl_ms: i64,
    /// At most this many live sessions for the principal (1..=10 000).
    #[serde(default)]
    pub max_per_principal: Option<i64>,
    /// `reject` (default) or `evict_oldest` when the principal is at its limit.
    #[serde(default)]
    pub on_limit: Option<LimitPolicy>,
}

/// What a create does at the principal's limit.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitPolicy {
    /// Refuse: 409 `session_limit_reached`.
    Reject,
    /// End the oldest live session(s) to make room.
    EvictOldest,
}

/// `PUT /v1/sessions/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPutBody {
    /// The new data, a JSON object.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// The version the write replaces (required).
    pub expected_version: i64,
}

/// `PATCH /v1/sessions/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// A JSON merge patch (RFC 7396) of the data: `null` removes an attribute.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Apply only at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `GET /v1/sessions/{id}` query.
#[derive(Debug, Default, Deserialize)]
pub struct ReadQuery {
    /// Also touch it.
    #[serde(default)]
    pub touch: bool,
}

/// Answer of the session endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SessionAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    pub mode: &'static str,
    /// The session id: answered by `created` and `rotated` only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// SHA-256 of the id, hex: how answers, lists, events and logs name a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ref: Option<String>,
    /// Its principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Box<RawValue>>,
    /// Its version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Idle expiry, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_expires_at: Option<String>,
    /// Absolute expiry, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absolute_expires_at: Option<String>,
    /// `created`: sessions evicted to make room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evicted: Option<usize>,
    /// `revoked`: sessions ended by this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// The session routes (scope `sessions`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::session::{
        SessionCreated, SessionRead, SessionRevoked, SessionRotated, SessionSaved, SessionTouch,
    };
    let one = "SessionAnswer";
    vec![Routes::new("sessions", Need::Scope(Scope::Sessions))
        .answer(
            Answers::new("session_create", SessionCreated::STATES, one),
            routes!(create),
        )
        .answer(
            Answers::new("session_get", SessionRead::STATES, one),
            routes!(read),
        )
        .answer(
            Answers::new("session_put", SessionSaved::STATES, one),
            routes!(replace),
        )
        .answer(
            Answers::new("session_patch", SessionSaved::STATES, one),
            routes!(patch),
        )
        .answer(
            Answers::new("session_revoke", SessionRevoked::STATES, one),
            routes!(revoke),
        )
        .answer(
            Answers::new("session_touch", SessionTouch::STATES, one),
            routes!(touch),
        )
        .answer(
            Answers::new("session_rotate", SessionRotated::STATES, one),
            routes!(rotate),
        )]
}

pub(super) fn of_row(state: &'static str, mode: Mode, r: &SessionRow) -> SessionAnswer {
    SessionAnswer {
        state,
        mode: mode.as_str(),
        session_ref: Some(r.id_hash.clone()),
        principal: (!r.principal.is_empty()).then(|| r.principal.clone()),
        data: RawValue::from_string(r.data.clone()).ok(),
        version: Some(r.version),
        idle_expires_at: Some(rfc3339(r.idle_expires_at)),
        absolute_expires_at: Some(rfc3339(r.absolute_expires_at)),
        ..SessionAnswer::default()
    }
}

/// 410 for a session that is no more: a problem document with its `state`, and for
/// `revoked` the `reason` (`revoked` or `evicted`).
fn gone(outcome: &impl Terminal, g: Gone, mode: Mode) -> Response {
    let (detail, reason) = match g {
        Gone::Expired => (
            "the session is past its idle or absolute expiry".to_owned(),
            None,
        ),
        Gone::Revoked(r) => (format!("the session was ended: {r}"), Some(r)),
        Gone::Rotated => (
            "the session was rotated: its data lives on under a new id".to_owned(),
            None,
        ),
    };
    let state = outcome.state();
    let mut body = serde_json::json!({
        "type": format!("/problems/{state}"),
        "title": "Session gone",
        "status": outcome.status(),
        "detail": detail,
        "code": state,
        "state": state,
        "mode": mode.as_str(),
    });
    if let Some(r) = reason {
        body["reason"] = serde_json::json!(r);
    }
    let ct = [(axum::http::header::CONTENT_TYPE, "application/problem+json")];
    (status_of(outcome), ct, body.to_string()).into_response()
}

fn not_found(outcome: &impl Terminal, mode: Mode) -> Response {
    state_problem(
        status_of(outcome),
        outcome.state(),
        "Not found",
        "no such session",
        mode,
    )
}

/// A JSON object of at most `max` bytes, as text.
fn object(field: &str, raw: &RawValue, max: usize) -> Result<String, ApiError> {
    let text = raw.get();
    if text.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "data_too_large",
            "Data too large",
            format!("`{field}` is {} bytes; the limit is {max}", text.len()),
        ));
    }
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            FIELD_CODES[1],
            "Invalid data",
            format!("`{field}` must be a JSON object"),
        ));
    }
    Ok(text.to_owned())
}

pub(super) fn principal(raw: &str) -> Result<String, ApiError> {
    identity("principal", FIELD_CODES[0], "Invalid principal", raw)
}

/// Creates a session.
#[utoipa::path(post, path = "/v1/sessions", request_body = CreateBody)]
pub async fn create(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<CreateBody>,
) -> Result<Response, ApiError> {
    let data = object("data", &body.data, app.sessions.max_data_bytes())?;
    let idle = in_range("idle_ttl_ms", body.idle_ttl_ms, 1, MAX_TTL_MS)?;
    let absolute = in_range("absolute_ttl_ms", body.absolute_ttl_ms, idle, MAX_TTL_MS)?;
    let principal = body.principal.as_deref().map(principal).transpose()?;
    let limit = match body.max_per_principal {
        None => None,
        Some(max) => {
            let max = in_range("max_per_principal", max, 1, MAX_PER_PRINCIPAL)?;
            if principal.is_none() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    FIELD_CODES[0],
                    "Invalid principal",
                    "`max_per_principal` needs a `principal`",
                ));
            }
            let on = match body.on_limit {
                Some(LimitPolicy::EvictOldest) => OnLimit::EvictOldest,
                _ => OnLimit::Reject,
            };
            Some((max, on))
        }
    };
    let req = CreateRequest {
        tenant: caller.tenant.clone(),
        principal: principal.unwrap_or_default(),
        data,
        idle_ttl_ms: idle,
        absolute_ttl_ms: absolute,
        limit,
    };
    let (created, mode) = match app.sessions.create(&req).await {
        Ok(c) => c,
        Err(b) => return Ok(blocked("session", b)),
    };
    answered("session", created.state(), mode.as_str());
    Ok(match &created {
        SessionCreated::Created(id, row, evicted) => {
            let answer = SessionAnswer {
                session_id: Some(id.clone()),
                evicted: Some(*evicted),
                ..of_row(created.state(), mode, row)
            };
            (status_of(&created), Json(answer)).into_response()
        }
        SessionCreated::LimitReached => state_problem(
            status_of(&created),
            created.state(),
            "Session limit reached",
            "the principal has max_per_principal live sessions",
            mode,
        ),
    })
}

/// Reads a session; `?touch=true` also slides its idle expiry.
#[utoipa::path(get, path = "/v1/sessions/{id}",
    params(("id" = String, Path, description = "session id"),
        ("touch" = Option<bool>, Query, description = "also touch it")))]
pub async fn read(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryOf(q): QueryOf<ReadQuery>,
) -> Response {
    let (read, mode) = match app.sessions.get(&caller.tenant, &id, q.touch).await {
        Ok(r) => r,
        Err(b) => return blocked("session", b),
    };
    answered("session", read.state(), mode.as_str());
    match &read {
        SessionRead::Active(row) => Json(of_row(read.state(), mode, row)).into_response(),
        SessionRead::Gone(g) => gone(&read, *g, mode),
        SessionRead::NotFound => not_found(&read, mode),
    }
}

/// Slides a session's idle expiry (never past its absolute one).
#[utoipa::path(post, path = "/v1/sessions/{id}/touch",
    params(("id" = String, Path, description = "session id")))]
pub async fn touch(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    let (t, mode) = match app.sessions.touch(&caller.tenant, &id).await {
        Ok(r) => r,
        Err(b) => return blocked("session", b),
    };
    answered("session", t.state(), mode.as_str());
    match &t {
        SessionTouch::Touched(row) => Json(of_row(t.state(), mode, row)).into_response(),
        SessionTouch::Gone(g) => gone(&t, *g, mode),
        SessionTouch::NotFound => not_found(&t, mode),
    }
}

fn saved_answer(saved: &SessionSaved, mode: Mode) -> Response {
    answered("session", saved.state(), mode.as_str());
    match saved {
        SessionSaved::Saved(row) => Json(of_row(saved.state(), mode, row)).into_response(),
        SessionSaved::Gone(g) => gone(saved, *g, mode),
        SessionSaved::NotFound => not_found(saved, mode),
        SessionSaved::VersionConflict { current } => state_problem(
            status_of(saved),
            saved.state(),
            "Version conflict",
            format!("the session is at version {current}"),
            mode,
        ),
        SessionSaved::TooLarge => state_problem(
            status_of(saved),
            saved.state(),
            "Data too large",
            "the merged data would be above sessions.max_data_bytes",
            mode,
        ),
    }
}

/// Replaces a session's data, at `expected_version`.
#[utoipa::path(put, path = "/v1/sessions/{id}", request_body = SessionPutBody,
    params(("id" = String, Path, description = "session id")))]
pub async fn replace(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Body(body): Body<SessionPutBody>,
) -> Result<Response, ApiError> {
    let data = object("data", &body.data, app.sessions.max_data_bytes())?;
    let expected = in_range("expected_version", body.expected_version, 1, i64::MAX)?;
    Ok(
        match app.sessions.put(&caller.tenant, &id, data, expected).await {
            Ok((saved, mode)) => saved_answer(&saved, mode),
            Err(b) => blocked("session", b),
        },
    )
}

/// Merges a JSON merge patch into a session's data, atomically.
#[utoipa::path(patch, path = "/v1/sessions/{id}", request_body = PatchBody,
    params(("id" = String, Path, description = "session id")))]
pub async fn patch(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Body(body): Body<PatchBody>,
) -> Result<Response, ApiError> {
    if !body.data.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            FIELD_CODES[1],
            "Invalid data",
            "a merge patch of session data must be a JSON object",
        ));
    }
    let expected = body
        .expected_version
        .map(|v| in_range("expected_version", v, 1, i64::MAX))
        .transpose()?;
    let patched = app
        .sessions
        .patch(&caller.tenant, &id, body.data, expected)
        .await;
    Ok(match patched {
        Ok((saved, mode)) => saved_answer(&saved, mode),
        Err(b) => blocked("session", b),
    })
}

/// Gives a session a new id with the same data; the old id answers 410 `rotated`.
#[utoipa::path(post, path = "/v1/sessions/{id}/rotate",
    params(("id" = String, Path, description = "session id")))]
pub async fn rotate(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    let (r, mode) = match app.sessions.rotate(&caller.tenant, &id).await {
        Ok(r) => r,
        Err(b) => return blocked("session", b),
    };
    answered("session", r.state(), mode.as_str());
    match &r {
        SessionRotated::Rotated(new_id, row) => Json(SessionAnswer {
            session_id: Some(new_id.clone()),
            ..of_row(r.state(), mode, row)
        })
        .into_response(),
        SessionRotated::Gone(g) => gone(&r, *g, mode),
        SessionRotated::NotFound => not_found(&r, mode),
    }
}

pub(super) fn revoked_answer(r: &SessionRevoked, mode: Mode) -> Response {
    answered("session", r.state(), mode.as_str());
    match r {
        SessionRevoked::Revoked(n) => Json(SessionAnswer {
            state: r.state(),
            mode: mode.as_str(),
            count: Some(*n),
            ..SessionAnswer::default()
        })
        .into_response(),
        SessionRevoked::NotFound => not_found(r, mode),
    }
}

/// Revokes a session (idempotent).
#[utoipa::path(delete, path = "/v1/sessions/{id}",
    params(("id" = String, Path, description = "session id")))]
pub async fn revoke(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    match app.sessions.revoke(&caller.tenant, &id).await {
        Ok((r, mode)) => revoked_answer(&r, mode),
        Err(b) => blocked("session", b),
    }
}
