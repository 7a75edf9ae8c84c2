//! Rate-limit endpoints (DESIGN §4.5): policies with `If-Match` versioning, per-subject
//! overrides, and the check, peek, reset and refund of one subject. Every check answer carries
//! `RateLimit-Policy` and `RateLimit` (IETF httpapi ratelimit-headers draft); a 429 carries
//! `Retry-After` of at least one second.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, blocked_as, status_of};
use super::extract::{in_range, Body, Caller, OptionalBody, PathKey, PathKeys};
use super::observe::answered;
use super::problem::{state_problem_in, ApiError};
use super::AppState;
use crate::key::{name_of, Key};
use crate::outcome::Terminal;
use crate::ratelimit::policy::validate_limits;
use crate::ratelimit::Expect;
use crate::ratelimit::{
    Checked, Limit, LimitMode, Looked, OverrideSaved, Policy, PolicyRead, PolicySaved, Report,
};
use crate::tier::Blocked;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Highest cost of one check or refund.
pub const MAX_COST: i64 = 1_000_000_000;
/// A policy may not be named this: `/v1/ratelimit/policies/…` is the policy routes' prefix.
const RESERVED_POLICY: &str = "policies";
/// Codes of refused policy writes, for the OpenAPI document.
pub const POLICY_CODES: [&str; 1] = ["invalid_policy"];
/// Codes of a refused `If-Match`, for the OpenAPI document.
pub const IF_MATCH_CODES: [&str; 1] = ["invalid_if_match"];

/// `POST …/check` and `…/refund` body (may be left out: cost 1).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostBody {
    /// Units, 1..=1 000 000 000 (default 1).
    #[serde(default = "one")]
    pub cost: i64,
}

impl Default for CostBody {
    fn default() -> Self {
        Self { cost: 1 }
    }
}

fn one() -> i64 {
    1
}

/// `PUT …/overrides/{subject}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// 1–4 limits that replace the policy's for this subject.
    pub limits: Vec<Limit>,
}

/// One limit in an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitEntry {
    /// The limit's name.
    pub name: String,
    /// Units per window as applied now.
    pub quota: i64,
    /// The window, ms.
    pub window_ms: i64,
    /// Units admitted at once, at most.
    pub capacity: i64,
    /// Units still free.
    pub remaining: i64,
    /// Until the limit is wholly free again, ms.
    pub reset_ms: i64,
}

/// Answer of the check, peek, reset and refund endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct RateLimitAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// `primary` (Redis, exact), `local` (this instance's share, while on SQL) or `none`.
    pub mode: &'static str,
    /// The policy.
    pub policy: String,
    /// The subject.
    pub subject: String,
    /// For `limited`: when the cost would fit, ms (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// For `allowed_unchecked`: why nothing could count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Each limit after the decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<LimitEntry>,
}

/// Answer of the policy endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyAnswer {
    /// `policy_saved`, `policy` or `override_saved`.
    pub state: &'static str,
    /// The policy.
    pub policy: String,
    /// The policy's version (send it back in `If-Match`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The subject of an override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The policy as saved (`policy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<Policy>,
}

/// The rate-limit routes: policies need scope `ratelimit.admin`, checks `ratelimit`.
pub(super) fn routes() -> Vec<Routes> {
    use crate::ratelimit::{Checked, Looked, OverrideSaved, PolicyRead, PolicySaved};
    let (policy, limit) = ("PolicyAnswer", "RateLimitAnswer");
    vec![
        Routes::new("ratelimit", Need::Scope(Scope::RateLimitAdmin))
            .answer(
                Answers::new("ratelimit_policy_save", PolicySaved::STATES, policy),
                routes!(save_policy),
            )
            .answer(
                Answers::new("ratelimit_policy_get", PolicyRead::STATES, policy),
                routes!(read_policy),
            )
            .answer(
                Answers::new("ratelimit_override_save", OverrideSaved::STATES, policy),
                routes!(save_override),
            ),
        Routes::new("ratelimit", Need::Scope(Scope::RateLimit))
            .answer(
                Answers::new("ratelimit_check", Checked::STATES, limit).own_block(),
                routes!(check),
            )
            .answer(
                Answers::new("ratelimit_peek", Looked::PEEK_STATES, limit),
                routes!(peek),
            )
            .answer(
                Answers::new("ratelimit_reset", Looked::RESET_STATES, limit),
                routes!(reset),
            )
            .answer(
                Answers::new("ratelimit_refund", Looked::REFUND_STATES, limit),
                routes!(refund),
            ),
    ]
}

fn invalid_policy(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        POLICY_CODES[0],
        "Invalid policy",
        detail,
    )
}

/// What `If-Match` allows a save to replace.
fn expectation(headers: &HeaderMap) -> Result<Expect, ApiError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(Expect::Anything);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            IF_MATCH_CODES[0],
            "Invalid If-Match",
            "If-Match must be `*` or a version this API answered (\"3\")",
        )
    };
    let text = raw.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(Expect::Existing);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .map(Expect::Version)
        .ok_or_else(bad)
}

fn etag(version: i64) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{version}\""))]
}

/// Saves a rate-limit policy (creating it); `If-Match` makes the save conditional.
#[utoipa::path(put, path = "/v1/ratelimit/policies/{policy}", request_body = Policy,
    params(("policy" = String, Path, description = "policy name"),
        ("If-Match" = Option<String>, Header, description = "`*` or a version (\"3\")")))]
pub async fn save_policy(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(name): PathKey,
    headers: HeaderMap,
    Body(policy): Body<Policy>,
) -> Result<Response, ApiError> {
    if name.name() == RESERVED_POLICY {
        return Err(invalid_policy(format!(
            "`{RESERVED_POLICY}` is not a policy name"
        )));
    }
    policy.validate().map_err(invalid_policy)?;
    let expect = expectation(&headers)?;
    let k = name.as_str();
    let saved = match app
        .ratelimits
        .save_policy(&name, &policy, expect, &caller.name)
        .await
    {
        Ok(s) => s,
        Err(b) => return Ok(blocked(k, b)),
    };
    answered(k, saved.state(), "durable");
    Ok(match saved {
        PolicySaved::Saved(version) => {
            tracing::info!(policy = %name.name(), version, "rate-limit policy saved");
            let answer = PolicyAnswer {
                state: saved.state(),
                policy: name.name().into(),
                version: Some(version),
                subject: None,
                saved: None,
            };
            (etag(version), Json(answer)).into_response()
        }
        PolicySaved::VersionMismatch(current) => {
            let detail = match current {
                Some(v) => format!("the policy is at version {v}"),
                None => "the policy does not exist".into(),
            };
            state_problem_in(
                status_of(&saved),
                saved.state(),
                "Version mismatch",
                detail,
                "durable",
            )
        }
    })
}

/// Reads a rate-limit policy as saved.
#[utoipa::path(get, path = "/v1/ratelimit/policies/{policy}",
    params(("policy" = String, Path, description = "policy name")))]
pub async fn read_policy(State(app): State<AppState>, PathKey(name): PathKey) -> Response {
    let k = name.as_str();
    let read = match app.ratelimits.policy(&name).await {
        Ok(r) => r,
        Err(b) => return blocked(k, b),
    };
    let state = read.state();
    answered(k, state, "durable");
    match read {
        PolicyRead::Found(policy, version) => {
            let answer = PolicyAnswer {
                state,
                policy: name.name().into(),
                version: Some(version),
                subject: None,
                saved: Some(*policy),
            };
            (etag(version), Json(answer)).into_response()
        }
        PolicyRead::Unknown => unknown_policy("durable"),
    }
}

fn unknown_policy(mode: &'static str) -> Response {
    state_problem_in(
        StatusCode::NOT_FOUND,
        "unknown_policy",
        "Unknown policy",
        "no policy of that name was saved",
        mode,
    )
}

/// Saves the limits of one subject under a policy (for example 18/min for one clinic).
#[utoipa::path(put, path = "/v1/ratelimit/policies/{policy}/overrides/{subject}",
    request_body = OverrideBody,
    params(("policy" = String, Path, description = "policy name"),
        ("subject" = String, Path, description = "subject")))]
pub async fn save_override(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKeys(name, subject): PathKeys,
    Body(body): Body<OverrideBody>,
) -> Result<Response, ApiError> {
    validate_limits(&body.limits).map_err(invalid_policy)?;
    let k = name.as_str();
    let saved = match app
        .ratelimits
        .save_override(&name, &subject, &body.limits, &caller.name)
        .await
    {
        Ok(s) => s,
        Err(b) => return Ok(blocked(k, b)),
    };
    answered(k, saved.state(), "durable");
    Ok(match saved {
        OverrideSaved::Saved => Json(PolicyAnswer {
            state: saved.state(),
            policy: name.name().into(),
            version: None,
            subject: Some(subject.name().into()),
            saved: None,
        })
        .into_response(),
        OverrideSaved::UnknownPolicy => unknown_policy("durable"),
        OverrideSaved::TooMany => state_problem_in(
            status_of(&saved),
            saved.state(),
            "Too many overrides",
            "the policy has as many overrides as ratelimit.max_overrides allows",
            "durable",
        ),
    })
}

/// `RateLimit-Policy` and `RateLimit` of a report (draft-ietf-httpapi-ratelimit-headers):
/// one list member per limit, windows and resets in whole seconds, rounded up.
fn limit_headers(r: &Report) -> Vec<(header::HeaderName, HeaderValue)> {
    let secs = |ms: i64| (ms.max(0) + 999) / 1000;
    let policy = r
        .limits
        .iter()
        .map(|l| {
            format!(
                "\"{}\";q={};w={}",
                l.name,
                l.quota,
                secs(l.window_ms).max(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let now = r
        .limits
        .iter()
        .map(|l| format!("\"{}\";r={};t={}", l.name, l.remaining, secs(l.reset_ms)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", now)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.push((header::HeaderName::from_static(name), v));
        }
    }
    if r.retry_after_ms > 0 {
        out.push((
            header::RETRY_AFTER,
            HeaderValue::from(secs(r.retry_after_ms).max(1)),
        ));
    }
    out
}

fn answer_of(state: &'static str, policy: &Key, subject: &Key, r: &Report) -> RateLimitAnswer {
    RateLimitAnswer {
        state,
        mode: r.mode.as_str(),
        policy: name_of(policy.as_str()).into(),
        subject: subject.name().into(),
        retry_after_ms: (r.retry_after_ms > 0).then_some(r.retry_after_ms),
        reason: None,
        limits: r
            .limits
            .iter()
            .map(|l| LimitEntry {
                name: l.name.clone(),
                quota: l.quota,
                window_ms: l.window_ms,
                capacity: l.capacity,
                remaining: l.remaining,
                reset_ms: l.reset_ms,
            })
            .collect(),
    }
}

/// The answer of a report: its state and status, the headers, the JSON.
fn with_report(
    status: StatusCode,
    state: &'static str,
    policy: &Key,
    subject: &Key,
    r: &Report,
) -> Response {
    let mut response = (status, Json(answer_of(state, policy, subject, r))).into_response();
    for (name, value) in limit_headers(r) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// Checks `cost` units for a subject under a policy: every limit admits it and it is charged,
/// or nothing is.
#[utoipa::path(post, path = "/v1/ratelimit/{policy}/{subject}/check", request_body = CostBody,
    params(("policy" = String, Path, description = "policy name"),
        ("subject" = String, Path, description = "subject (a user, a tenant, a clinic)")))]
pub async fn check(
    State(app): State<AppState>,
    PathKeys(policy, subject): PathKeys,
    OptionalBody(body): OptionalBody<CostBody>,
) -> Result<Response, ApiError> {
    let cost = in_range("cost", body.cost, 1, MAX_COST)?;
    let checked = app.ratelimits.check(&policy, &subject, cost).await;
    let k = policy.as_str();
    let status = status_of(&checked);
    let state = checked.state();
    Ok(match &checked {
        Checked::Allowed(r) | Checked::Limited(r) | Checked::ShadowLimited(r) => {
            answered(k, state, r.mode.as_str());
            with_report(status, state, &policy, &subject, r)
        }
        Checked::AllowedUnchecked(b) => {
            answered(k, state, LimitMode::None.as_str());
            let answer = RateLimitAnswer {
                state,
                mode: LimitMode::None.as_str(),
                policy: name_of(k).into(),
                subject: subject.name().into(),
                reason: Some(b.reason()),
                ..RateLimitAnswer::default()
            };
            (status, Json(answer)).into_response()
        }
        Checked::SafeBlock(b) => blocked_as(k, state, *b),
        Checked::CostExceedsCapacity { limit, capacity } => {
            answered(k, state, LimitMode::None.as_str());
            let detail = format!("cost {cost} is above the capacity {capacity} of limit {limit}");
            state_problem_in(status, state, "Cost exceeds capacity", detail, "none")
        }
        Checked::UnknownPolicy => {
            answered(k, state, LimitMode::None.as_str());
            unknown_policy("none")
        }
    })
}

/// Answers a peek, reset or refund.
fn looked(policy: &Key, subject: &Key, result: Result<Looked, Blocked>) -> Response {
    let k = policy.as_str();
    let looked = match result {
        Ok(l) => l,
        Err(b) => return blocked(k, b),
    };
    let status = status_of(&looked);
    let state = looked.state();
    match &looked {
        Looked::Status(r) | Looked::Refunded(r) => {
            answered(k, state, r.mode.as_str());
            with_report(status, state, policy, subject, r)
        }
        Looked::Reset(mode) => {
            answered(k, state, mode.as_str());
            let answer = RateLimitAnswer {
                state,
                mode: mode.as_str(),
                policy: name_of(k).into(),
                subject: subject.name().into(),
                ..RateLimitAnswer::default()
            };
            (status, Json(answer)).into_response()
        }
        Looked::UnknownPolicy => {
            answered(k, state, LimitMode::None.as_str());
            unknown_policy("none")
        }
    }
}

/// What is left of each limit of a subject; nothing is written.
#[utoipa::path(get, path = "/v1/ratelimit/{policy}/{subject}",
    params(("policy" = String, Path, description = "policy name"),
        ("subject" = String, Path, description = "subject")))]
pub async fn peek(State(app): State<AppState>, PathKeys(policy, subject): PathKeys) -> Response {
    let result = app.ratelimits.peek(&policy, &subject).await;
    looked(&policy, &subject, result)
}

/// Forgets a subject's counts: its next check starts afresh.
#[utoipa::path(post, path = "/v1/ratelimit/{policy}/{subject}/reset",
    params(("policy" = String, Path, description = "policy name"),
        ("subject" = String, Path, description = "subject")))]
pub async fn reset(State(app): State<AppState>, PathKeys(policy, subject): PathKeys) -> Response {
    let result = app.ratelimits.reset(&policy, &subject).await;
    looked(&policy, &subject, result)
}

/// Gives units back to each limit of a subject (a request that did not happen after all),
/// never above capacity.
#[utoipa::path(post, path = "/v1/ratelimit/{policy}/{subject}/refund", request_body = CostBody,
    params(("policy" = String, Path, description = "policy name"),
        ("subject" = String, Path, description = "subject")))]
pub async fn refund(
    State(app): State<AppState>,
    PathKeys(policy, subject): PathKeys,
    OptionalBody(body): OptionalBody<CostBody>,
) -> Result<Response, ApiError> {
    let cost = in_range("cost", body.cost, 1, MAX_COST)?;
    let result = app.ratelimits.refund(&policy, &subject, cost).await;
    Ok(looked(&policy, &subject, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::LimitReport;

    #[test]
    fn headers_follow_the_draft_and_retry_after_is_at_least_a_second() {
        let r = Report {
            mode: LimitMode::Primary,
            limits: vec![LimitReport {
                name: "minute".into(),
                quota: 18,
                window_ms: 60_000,
                capacity: 18,
                remaining: 0,
                reset_ms: 3_334,
            }],
            retry_after_ms: 20,
        };
        let h = limit_headers(&r);
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.as_str() == n)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            get("ratelimit-policy").as_deref(),
            Some("\"minute\";q=18;w=60")
        );
        assert_eq!(get("ratelimit").as_deref(), Some("\"minute\";r=0;t=4"));
        assert_eq!(get("retry-after").as_deref(), Some("1"));
    }

    #[test]
    fn if_match_takes_a_star_or_a_version() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(expectation(&HeaderMap::new()).unwrap(), Expect::Anything);
        assert_eq!(expectation(&h("*")).unwrap(), Expect::Existing);
        assert_eq!(expectation(&h("\"3\"")).unwrap(), Expect::Version(3));
        assert_eq!(expectation(&h("W/\"3\"")).unwrap(), Expect::Version(3));
        assert!(expectation(&h("\"x\"")).is_err());
        assert!(expectation(&h("0")).is_err());
    }
}
