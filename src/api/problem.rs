//! Errors answered to clients: RFC 9457 `application/problem+json` with a stable `code`.
//! Internal details are logged, never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics_names as m;

/// A problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI reference naming the problem type (`/problems/{code}`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What was wrong with this request.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
}

/// A request refused before it could change anything.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
}

impl ApiError {
    /// A problem with `status`, stable `code`, `title` and `detail`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
        }
    }

    /// The same refusal with another status.
    pub fn with_status(self, status: StatusCode) -> Self {
        Self { status, ..self }
    }

    /// 422 `out_of_range`: a field outside its allowed range.
    pub fn out_of_range(field: &str, range: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
            "Field out of range",
            format!("`{field}` must be in {range}"),
        )
    }

    /// 400 `invalid_key`: a path key that is not 1–512 bytes of UTF-8 without control
    /// characters.
    pub fn invalid_key(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            "Invalid key",
            detail,
        )
    }

    /// 404 `not_found`: no such route.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "no such endpoint",
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this endpoint does not accept that method",
        )
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(m::BAD_INPUT, "code" => self.code).increment(1);
        tracing::info!(code = self.code, status = self.status.as_u16(), detail = %self.detail,
            "request refused");
        let body = Problem {
            kind: format!("/problems/{}", self.code),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.into(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

/// Route fallback: 404 problem.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Method fallback: 405 problem.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// A problem document that also carries the terminal `state` (equal to its `code`) and the
/// `mode`: a domain refusal that clients may read either way.
#[derive(Serialize)]
struct StateProblem {
    #[serde(flatten)]
    problem: Problem,
    state: &'static str,
    mode: &'static str,
}

/// A problem+json answer for a domain refusal (not counted as bad input).
pub fn state_problem(
    status: StatusCode,
    code: &'static str,
    title: &str,
    detail: impl Into<String>,
    mode: crate::tier::Mode,
) -> Response {
    state_problem_in(status, code, title, detail, mode.as_str())
}

/// [`state_problem`] with a `mode` named by its text (`local`, `none`: modes of no tier).
pub fn state_problem_in(
    status: StatusCode,
    code: &'static str,
    title: &str,
    detail: impl Into<String>,
    mode: &'static str,
) -> Response {
    let body = StateProblem {
        problem: Problem {
            kind: format!("/problems/{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.into(),
        },
        state: code,
        mode,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let ct = [(header::CONTENT_TYPE, "application/problem+json")];
    (status, ct, json).into_response()
}
