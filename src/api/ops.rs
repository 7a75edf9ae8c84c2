//! Operational endpoints: liveness, readiness (tiers), status, metrics and the OpenAPI spec.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::runtime::clock::rfc3339;
use crate::tier::TierName;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::Routes;
use crate::access::Scope;

/// `GET /v1/status` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusAnswer {
    /// Always `ok`.
    pub state: &'static str,
    /// Active tier: `redis` or `sql` (null before the tier row was read).
    pub tier: Option<&'static str>,
    /// Current epoch (integer).
    pub epoch: Option<i64>,
    /// Breaker: `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// The guard: `normal`, `degraded`, `safe_mode` or `recovering` (in the last two, side
    /// effects are refused; see `GET /v1/guard`).
    pub guard: &'static str,
    /// Whether this instance may grant now.
    pub ready: bool,
    /// Why not, when not ready: a stable reason code (see the safe-block answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_reason: Option<&'static str>,
    /// Reason of the last tier switch.
    pub switch_reason: Option<String>,
    /// First instant the current epoch grants (RFC 3339).
    pub grants_from: Option<String>,
    /// Whether a Redis tier is configured on this instance.
    pub redis_configured: bool,
    /// Database clock minus this instance's clock, in ms (shared instants use the database's).
    pub clock_offset_ms: i64,
    /// Where rate limits are decided now and the share of each limit applied.
    pub ratelimit: crate::ratelimit::LimitsStatus,
}

/// The operational routes: health, readiness and the document are public, the status needs
/// any token, the metrics scope `metrics`.
pub(super) fn routes() -> Vec<Routes> {
    vec![
        Routes::new("ops", Need::Public)
            .plain(routes!(healthz))
            .plain(routes!(readyz))
            .plain(routes!(openapi)),
        Routes::new("ops", Need::Authenticated).plain(routes!(status)),
        Routes::new("ops", Need::Scope(Scope::Metrics)).plain(routes!(metrics)),
    ]
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"state": "alive"}))
}

fn status_answer(app: &AppState) -> StatusAnswer {
    let s = app.tier.status();
    StatusAnswer {
        state: "ok",
        tier: s.tier.map(TierName::as_str),
        epoch: s.epoch,
        breaker: s.breaker.as_str(),
        guard: s.guard.as_str(),
        ready: s.ready.is_ok(),
        blocked_reason: s.ready.err().map(|b| b.reason()),
        switch_reason: s.reason,
        grants_from: s.grants_from.map(rfc3339),
        redis_configured: s.redis_configured,
        clock_offset_ms: app.tier.clock_offset_ms(),
        ratelimit: app.ratelimits.status(),
    }
}

/// Readiness: 200 when this instance may grant on a tier, 503 otherwise.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready", body = StatusAnswer),
    (status = 503, description = "not ready", body = StatusAnswer)))]
pub async fn readyz(State(app): State<AppState>) -> Response {
    let answer = status_answer(&app);
    let code = if answer.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(answer)).into_response()
}

/// Tier, epoch, breaker and guard state.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = StatusAnswer)))]
pub async fn status(State(app): State<AppState>) -> Json<StatusAnswer> {
    Json(status_answer(&app))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics() -> Response {
    crate::logging::publish_dropped();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics_handle().render(),
    )
        .into_response()
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::document())
}
