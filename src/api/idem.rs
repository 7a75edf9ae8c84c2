//! Idempotency endpoints (DESIGN §4 "Idempotency"): validate everything before the domain is
//! called (nothing is claimed for a malformed request), then answer with the terminal state.
//! Saved responses are kept as raw JSON and replayed byte for byte.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{in_range, token, Body, PathKey};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::idem::{
    BeginRequest, Begun, Finished, DEFAULT_LEASE_MS, DEFAULT_TTL_MS, MAX_FINGERPRINT, MAX_LEASE_MS,
    MAX_TTL_MS, MAX_WAIT_MS,
};
use crate::key::Key;
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// `POST /v1/idempotency/{key}/begin` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BeginBody {
    /// Hash of the request (at most 512 bytes). A live key begun with another fingerprint
    /// answers `fingerprint_mismatch`.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Claim lease in ms, 1..=3 600 000 (default 30 000). After it lapses the key may be begun
    /// again, with a larger token.
    #[serde(default)]
    pub lease_ms: Option<i64>,
    /// Record lifetime in ms, `lease_ms`..=2 592 000 000 (default 86 400 000).
    #[serde(default)]
    pub ttl_ms: Option<i64>,
    /// Wait up to this long (ms, at most 60 000) for a claim in progress to finish.
    #[serde(default)]
    pub wait_ms: i64,
}

/// `POST /v1/idempotency/{key}/complete` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompleteBody {
    /// Token of the claim.
    pub token: i64,
    /// The result to save (any JSON), replayed byte for byte to later callers.
    #[schema(value_type = serde_json::Value)]
    pub response: Box<RawValue>,
}

/// `POST /v1/idempotency/{key}/fail` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FailBody {
    /// Token of the claim.
    pub token: i64,
}

/// `POST /v1/idempotency/{key}/extend` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExtendLeaseBody {
    /// Token of the claim.
    pub token: i64,
    /// New lease from now, ms.
    pub lease_ms: i64,
}

/// Answer of the idempotency endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IdemAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Claim token (`started`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// The saved response (`completed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub response: Option<Box<RawValue>>,
    /// End of the claim's lease, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
    /// When the record is forgotten, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For `in_progress`: when the claim's lease ends at the latest, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// For `completed`: the `X-Correlation-Id` of the request that claimed the key and ran
    /// the effect (carry it on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// For `completed`: that request's W3C `traceparent`, if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The idempotency routes (scope `idempotency`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::idem::{Begun, Finished};
    let answer = "IdemAnswer";
    vec![Routes::new("idem", Need::Scope(Scope::Idempotency))
        .answer(
            Answers::new("idem_begin", Begun::STATES, answer),
            routes!(begin),
        )
        .answer(
            Answers::new("idem_complete", Finished::COMPLETE_STATES, answer),
            routes!(complete),
        )
        .answer(
            Answers::new("idem_fail", Finished::FAIL_STATES, answer),
            routes!(fail),
        )
        .answer(
            Answers::new("idem_extend", Finished::EXTEND_STATES, answer),
            routes!(extend),
        )]
}

fn answer(key: &str, outcome: &impl Terminal, a: IdemAnswer) -> Response {
    answered(key, a.state, a.mode.unwrap_or("none"));
    (status_of(outcome), axum::Json(a)).into_response()
}

/// Saved responses were valid JSON when stored; a record that is not is reported, not sent.
fn raw(response: String) -> Option<Box<RawValue>> {
    RawValue::from_string(response)
        .map_err(|e| tracing::error!(error = %e, "stored response is not JSON"))
        .ok()
}

fn mismatch(key: &str, begun: &Begun, mode: Mode) -> Response {
    answered(key, begun.state(), mode.as_str());
    state_problem(
        status_of(begun),
        begun.state(),
        "Fingerprint mismatch",
        "this idempotency key was used with a different request",
        mode,
    )
}

fn begin_request(key: Key, body: BeginBody) -> Result<BeginRequest, ApiError> {
    let fingerprint = body.fingerprint.unwrap_or_default();
    if fingerprint.len() > MAX_FINGERPRINT {
        return Err(ApiError::out_of_range(
            "fingerprint",
            "0..=512 bytes (send a hash of the request)",
        ));
    }
    let lease_ms = in_range(
        "lease_ms",
        body.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
        1,
        MAX_LEASE_MS,
    )?;
    let ttl_ms = in_range(
        "ttl_ms",
        body.ttl_ms.unwrap_or(DEFAULT_TTL_MS.max(lease_ms)),
        lease_ms,
        MAX_TTL_MS,
    )?;
    Ok(BeginRequest {
        key,
        fingerprint,
        lease_ms,
        ttl_ms,
        wait_ms: in_range("wait_ms", body.wait_ms, 0, MAX_WAIT_MS)?,
    })
}

/// Begins an idempotency key.
#[utoipa::path(post, path = "/v1/idempotency/{key}/begin", request_body = BeginBody,
    params(("key" = String, Path, description = "idempotency key")))]
pub async fn begin(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<BeginBody>,
) -> Result<Response, ApiError> {
    let req = begin_request(key, body)?;
    let k = req.key.as_str();
    let (begun, mode) = match app.idempotency.begin(&req).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    let mut a = IdemAnswer {
        state: begun.state(),
        mode: Some(mode.as_str()),
        ..IdemAnswer::default()
    };
    match &begun {
        Begun::Started {
            token,
            lease_until,
            expires_at,
        } => {
            a.token = Some(*token);
            a.lease_expires_at = Some(rfc3339(*lease_until));
            a.expires_at = Some(rfc3339(*expires_at));
        }
        Begun::Completed {
            response,
            correlation,
        } => {
            a.response = raw(response.clone());
            a.correlation_id = Some(correlation.id.clone());
            a.traceparent = Some(correlation.traceparent.clone()).filter(|t| !t.is_empty());
        }
        Begun::InProgress { retry_after_ms } => a.retry_after_ms = Some(*retry_after_ms),
        Begun::FingerprintMismatch => return Ok(mismatch(k, &begun, mode)),
    }
    Ok(answer(k, &begun, a))
}

fn finished(key: &str, result: Result<(Finished, Mode), crate::tier::Blocked>) -> Response {
    let (finished, mode) = match result {
        Ok(r) => r,
        Err(b) => return blocked(key, b),
    };
    let mut a = IdemAnswer {
        state: finished.state(),
        mode: Some(mode.as_str()),
        ..IdemAnswer::default()
    };
    match &finished {
        Finished::Completed { response } => a.response = raw(response.clone()),
        Finished::Extended { lease_until } => a.lease_expires_at = Some(rfc3339(*lease_until)),
        Finished::Released | Finished::Conflict => {}
    }
    answer(key, &finished, a)
}

/// Records the result of a claim.
#[utoipa::path(post, path = "/v1/idempotency/{key}/complete", request_body = CompleteBody,
    params(("key" = String, Path, description = "idempotency key")))]
pub async fn complete(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<CompleteBody>,
) -> Result<Response, ApiError> {
    let tok = token("token", body.token)?;
    let response = String::from(Box::<str>::from(body.response));
    let r = app.idempotency.complete(&key, tok, response).await;
    Ok(finished(key.as_str(), r))
}

/// Gives up a claim: a later begin may run again.
#[utoipa::path(post, path = "/v1/idempotency/{key}/fail", request_body = FailBody,
    params(("key" = String, Path, description = "idempotency key")))]
pub async fn fail(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<FailBody>,
) -> Result<Response, ApiError> {
    let tok = token("token", body.token)?;
    let r = app.idempotency.fail(&key, tok).await;
    Ok(finished(key.as_str(), r))
}

/// Renews the lease of a claim still running.
#[utoipa::path(post, path = "/v1/idempotency/{key}/extend", request_body = ExtendLeaseBody,
    params(("key" = String, Path, description = "idempotency key")))]
pub async fn extend(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<ExtendLeaseBody>,
) -> Result<Response, ApiError> {
    let tok = token("token", body.token)?;
    let lease = in_range("lease_ms", body.lease_ms, 1, MAX_LEASE_MS)?;
    let r = app.idempotency.extend(&key, tok, lease).await;
    Ok(finished(key.as_str(), r))
}
