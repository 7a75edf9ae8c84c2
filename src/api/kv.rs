//! Key-value endpoints (DESIGN §4.7): `PUT`, `GET`, `DELETE /v1/kv/{key}`. Values are any
//! JSON up to 1 MiB (this router takes bodies that large; every other keeps the global limit).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{in_range, Body, OptionalBody, PathKey};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::kv::KvExpect;
use crate::kv::{KvDelete, KvPut, KvRead, MAX_TTL_MS, MAX_VALUE_BYTES};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// `PUT /v1/kv/{key}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KvPutBody {
    /// Any JSON, at most 1 MiB as sent.
    #[schema(value_type = serde_json::Value)]
    pub value: Box<RawValue>,
    /// Expiry from now, ms (1..=31 622 400 000); none by default.
    #[serde(default)]
    pub ttl_ms: Option<i64>,
    /// Write only if the live record is at this version; 0: only if there is none.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `DELETE /v1/kv/{key}` body (may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Delete only if the live record is at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// Answer of the KV endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct KvAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    pub mode: &'static str,
    /// The record's version (`found`, `stored`, `deleted` when a tombstone was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The value (`found`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Box<RawValue>>,
    /// Expiry, RFC 3339 UTC (`found`, `stored`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The KV routes (scope `kv`), with bodies up to a 1 MiB value.
pub(super) fn routes() -> Vec<Routes> {
    vec![Routes::new("kv", Need::Scope(Scope::Kv))
        .answer(
            Answers::new("kv_get", KvRead::STATES, "KvAnswer"),
            routes!(read),
        )
        .answer(
            Answers::new("kv_put", KvPut::STATES, "KvAnswer"),
            routes!(write),
        )
        .answer(
            Answers::new("kv_delete", KvDelete::STATES, "KvAnswer"),
            routes!(remove),
        )
        .layer(DefaultBodyLimit::max(MAX_VALUE_BYTES + 64 * 1024))]
}

fn expires(at: i64) -> Option<String> {
    (at > 0).then(|| rfc3339(at))
}

/// Reads the live record of a key.
#[utoipa::path(get, path = "/v1/kv/{key}", params(("key" = String, Path, description = "key")))]
pub async fn read(State(app): State<AppState>, PathKey(key): PathKey) -> Response {
    let k = key.as_str();
    let (read, mode) = match app.kv.get(&key).await {
        Ok(r) => r,
        Err(b) => return blocked(k, b),
    };
    answered(k, read.state(), mode.as_str());
    match read {
        KvRead::Found(r) => {
            let answer = KvAnswer {
                state: "found",
                mode: mode.as_str(),
                version: Some(r.version),
                value: RawValue::from_string(r.value).ok(),
                expires_at: expires(r.expires_at),
            };
            Json(answer).into_response()
        }
        KvRead::NotFound => state_problem(
            status_of(&read),
            read.state(),
            "Not found",
            "no live record under this key",
            mode,
        ),
    }
}

fn conflict(w: &impl Terminal, current: Option<i64>, mode: Mode) -> Response {
    let detail = match current {
        Some(v) => format!("the live record is at version {v}"),
        None => "there is no live record".into(),
    };
    state_problem(status_of(w), w.state(), "Version conflict", detail, mode)
}

/// Writes a record, durable before the answer; conditional with `expected_version`.
#[utoipa::path(put, path = "/v1/kv/{key}", request_body = KvPutBody,
    params(("key" = String, Path, description = "key")))]
pub async fn write(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<KvPutBody>,
) -> Result<Response, ApiError> {
    let value = body.value.get();
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "value_too_large",
            "Value too large",
            format!(
                "the value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    let ttl = match body.ttl_ms {
        Some(t) => Some(in_range("ttl_ms", t, 1, MAX_TTL_MS)?),
        None => None,
    };
    let expect = match body.expected_version {
        None => KvExpect::Any,
        Some(v) => match in_range("expected_version", v, 0, crate::token::MAX_TOKEN)? {
            0 => KvExpect::Absent,
            v => KvExpect::Version(v),
        },
    };
    let k = key.as_str();
    let (w, mode) = match app.kv.put(&key, value, ttl, expect).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    answered(k, w.state(), mode.as_str());
    Ok(match &w {
        KvPut::Stored(r) => Json(KvAnswer {
            state: w.state(),
            mode: mode.as_str(),
            version: Some(r.version),
            value: None,
            expires_at: expires(r.expires_at),
        })
        .into_response(),
        KvPut::Conflict(current) => conflict(&w, *current, mode),
    })
}

/// Deletes a record (idempotent); conditional with `expected_version`.
#[utoipa::path(delete, path = "/v1/kv/{key}", request_body = Option<DeleteBody>,
    params(("key" = String, Path, description = "key")))]
pub async fn remove(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    OptionalBody(body): OptionalBody<DeleteBody>,
) -> Result<Response, ApiError> {
    let expected = match body.expected_version {
        Some(v) => Some(in_range("expected_version", v, 1, crate::token::MAX_TOKEN)?),
        None => None,
    };
    let k = key.as_str();
    let (w, mode) = match app.kv.delete(&key, expected).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    answered(k, w.state(), mode.as_str());
    Ok(match &w {
        KvDelete::Deleted(version) => Json(KvAnswer {
            state: w.state(),
            mode: mode.as_str(),
            version: *version,
            value: None,
            expires_at: None,
        })
        .into_response(),
        KvDelete::Conflict(current) => conflict(&w, *current, mode),
    })
}
