//! Extractors whose rejections are problem documents: malformed JSON, missing or mistyped
//! fields, oversized bodies and bad path keys all become 4xx answers with stable codes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use crate::access::Principal;
use crate::key::Key;

/// A JSON object body; rejections become problems. Only an object is a body: serde would
/// otherwise fill a struct from a JSON array by position.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_problem)?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let valid_json = || serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
        if first.is_some_and(|&b| b != b'{') && valid_json() {
            return Err(invalid_body("the body must be a JSON object".into()));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Body(v)),
            // serde_json reports a non-string where an enum goes as a syntax error; a body
            // that parses as JSON is well formed, so that is a field of the wrong type.
            Err(JsonRejection::JsonSyntaxError(e)) if valid_json() => {
                let text = e.body_text();
                let at = text.trim_start_matches("Failed to parse the request body as JSON: ");
                Err(invalid_body(format!(
                    "a field has a value of the wrong type: {at}"
                )))
            }
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// A JSON object body that may be left out: an empty body reads as `T::default()`; anything
/// else is read as [`Body`] reads it.
pub struct OptionalBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        // Read under the body limit, then hand the bytes to `Body` for every other rule.
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_problem)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let mut again = Request::new(axum::body::Body::from(bytes));
        *again.headers_mut() = headers;
        Body::from_request(again, state)
            .await
            .map(|Body(v)| Self(v))
    }
}

/// `application/json`, or an `application/…+json` type, with any parameters.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body that could not be read: too large (413), or cut off (400).
fn bytes_problem(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    let detail = rejection.body_text();
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            rejection.status(),
            "body_too_large",
            "Body too large",
            detail,
        )
    } else {
        unreadable(detail)
    }
}

/// 422 `invalid_body`: well-formed JSON whose fields are missing, mistyped or out of range.
fn invalid_body(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        "Invalid body",
        detail,
    )
}

fn unreadable(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "unreadable_body",
        "Unreadable body",
        detail,
    )
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => invalid_body(detail),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Malformed JSON",
            detail,
        ),
        _ => unreadable(detail),
    }
}

/// The `{key}` (or `{resource}`) path segment, validated as a [`Key`].
pub struct PathKey(pub Key);

/// The caller, as the access check found it (the local caller of protected mode for a router
/// used in-process without the check).
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(tenant_of(parts)))
    }
}

fn tenant_of(parts: &Parts) -> Arc<Principal> {
    parts
        .extensions
        .get::<Arc<Principal>>()
        .cloned()
        .unwrap_or_else(crate::access::local_principal)
}

impl<S: Send + Sync> FromRequestParts<S> for PathKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| {
                    ApiError::invalid_key(format!("key is not valid UTF-8: {}", e.body_text()))
                })?;
        Key::scoped(&tenant_of(parts).tenant, &raw)
            .map(PathKey)
            .map_err(|e| ApiError::invalid_key(e.to_string()))
    }
}

/// A query string; a malformed one is refused with 400 `invalid_query`.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(q) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "Invalid query",
                    e.body_text(),
                )
            })?;
        Ok(Self(q))
    }
}

/// Checks that `value` lies in `lo..=hi`.
pub fn in_range(field: &str, value: i64, lo: i64, hi: i64) -> Result<i64, ApiError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::out_of_range(field, &format!("{lo}..={hi}")))
    }
}

/// Checks a token field: 1..=2^53 - 1.
pub fn token(field: &str, value: i64) -> Result<i64, ApiError> {
    in_range(field, value, 1, crate::token::MAX_TOKEN)
}

/// The codes of refused identity fields (`invalid_` and the field's name), for the OpenAPI
/// document.
pub const FIELD_CODES: [&str; 8] = [
    "invalid_dedup_key",
    "invalid_owner",
    "invalid_user",
    "invalid_worker",
    "invalid_actor",
    "invalid_intent_id",
    "invalid_intent_type",
    "invalid_idempotency_key",
];

/// Validates an owner identity (same rules as keys).
pub fn owner(raw: &str) -> Result<String, ApiError> {
    identity("owner", "invalid_owner", "Invalid owner", raw)
}

/// Validates an identity field (same rules as keys); refusals carry `code`.
pub fn identity(
    field: &str,
    code: &'static str,
    title: &'static str,
    raw: &str,
) -> Result<String, ApiError> {
    Key::parse(raw).map(|k| k.as_str().to_owned()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            title,
            format!("{field}: {e}"),
        )
    })
}

/// Two path segments (`/{stream}/intents/{intent_id}`), each validated as a [`Key`].
pub struct PathKeys(pub Key, pub Key);

impl<S: Send + Sync> FromRequestParts<S> for PathKeys {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((a, b)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| {
                    ApiError::invalid_key(format!("key is not valid UTF-8: {}", e.body_text()))
                })?;
        let invalid = |e: crate::key::KeyError| ApiError::invalid_key(e.to_string());
        let first = Key::scoped(&tenant_of(parts).tenant, &a).map_err(invalid)?;
        Ok(PathKeys(first, Key::parse(&b).map_err(invalid)?))
    }
}
