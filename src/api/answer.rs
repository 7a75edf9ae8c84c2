//! Answers every capability shares, defined once: the safe block (HTTP 503) that any operation
//! needing a tier answers when none can be trusted, with its stable reason.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::observe::{answered, current_op};
use crate::outcome::Terminal;
use crate::tier::Blocked;

/// The 503 answer of a safe block (G7).
#[derive(Debug, Serialize, ToSchema)]
pub struct SafeBlockAnswer {
    /// `safe_block`, or the operation's own safe-block state
    /// (`lock_acquire_failed_safe_block`).
    pub state: &'static str,
    /// Why nothing was done: `failover_grace`, `tier_lease_expired`, `redis_unavailable`,
    /// `database_unavailable`, `both_tiers_down`, `epoch_changing`, `safe_mode` or
    /// `token_space_exhausted`.
    pub reason: &'static str,
    /// For `failover_grace`: when a retry may succeed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
}

impl IntoResponse for SafeBlockAnswer {
    /// 503 with the answer; `Retry-After` (whole seconds, rounded up) when a retry may succeed
    /// at a known time.
    fn into_response(self) -> Response {
        let retry_after = self
            .retry_after_ms
            .map(|ms| HeaderValue::from((ms.max(1) as u64).div_ceil(1000)));
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(self)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
    }
}

/// The HTTP status of an outcome.
pub(super) fn status_of(outcome: &impl Terminal) -> StatusCode {
    StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Answers 503 `safe_block` for block `b`: counted with the operation, and logged with its
/// reason.
pub(super) fn blocked(key: &str, b: Blocked) -> Response {
    blocked_as(key, b.state(), b)
}

/// [`blocked`] with the operation's own safe-block state (`lock_acquire_failed_safe_block`).
pub(super) fn blocked_as(key: &str, state: &'static str, b: Blocked) -> Response {
    tracing::warn!(reason = b.reason(), state, "safe block");
    crate::guard::monitor::record_blocked(current_op(), key, b.reason());
    answered(key, state, "none");
    SafeBlockAnswer {
        state,
        reason: b.reason(),
        retry_after_ms: b.retry_after_ms(),
    }
    .into_response()
}
