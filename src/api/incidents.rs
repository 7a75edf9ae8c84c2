//! Incident endpoints: events in the PagerDuty Events v2 shape (flat, as DESIGN §4.10 writes
//! it, or with PagerDuty's `payload`) and Alertmanager webhooks (v4); acknowledgement,
//! resolution and notes by id; reads and the evidence pack. Every field is checked before any
//! state is touched (G8); the actor is the token's name.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{identity, in_range, Body, Caller, PathKey};
use super::observe::Op;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::guard::{ByIdEvent, Found, IncidentEvent, IncidentInput, Noted, Trigger};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::store::guard::Incident;
use crate::tier::Mode;

/// Longest summary, bytes.
const MAX_SUMMARY: usize = 1_024;
/// Longest source, bytes.
const MAX_SOURCE: usize = 255;
/// Largest `details`, bytes of JSON.
const MAX_DETAILS: usize = 16 * 1024;
/// Longest note, bytes.
const MAX_NOTE: usize = 4_096;
/// Most alerts in one Alertmanager webhook.
const MAX_ALERTS: usize = 100;
/// Most incidents listed.
const MAX_LIST: i64 = 500;

/// PagerDuty's nested `payload`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PdPayload {
    /// One line for people.
    #[serde(default)]
    pub summary: Option<String>,
    /// What raised it.
    #[serde(default)]
    pub source: Option<String>,
    /// `critical`, `error`, `warning` or `info`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Free JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_details: Option<serde_json::Value>,
}

/// `POST /v1/incidents`: a PagerDuty Events v2 event.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IncidentBody {
    /// `trigger`, `acknowledge` or `resolve`.
    pub event_action: String,
    /// Folds repeats into one open incident (1–512 bytes); required to acknowledge or resolve,
    /// made up for a trigger without one.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// `critical`, `error`, `warning` or `info` (trigger).
    #[serde(default)]
    pub severity: Option<String>,
    /// One line for people, 1–1024 bytes (trigger).
    #[serde(default)]
    pub summary: Option<String>,
    /// What raised it, at most 255 bytes.
    #[serde(default)]
    pub source: Option<String>,
    /// Free JSON, at most 16 KiB.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: Option<serde_json::Value>,
    /// PagerDuty's nesting of summary, source, severity and custom_details.
    #[serde(default)]
    pub payload: Option<PdPayload>,
}

/// One alert of an Alertmanager webhook.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AmAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels (`alertname`, `severity`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alertmanager's fingerprint of the labels.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// `POST /v1/alerts/alertmanager`: an Alertmanager webhook (version 4).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AlertmanagerBody {
    /// Must be `4`.
    pub version: String,
    /// The alert group.
    #[serde(default, rename = "groupKey")]
    pub group_key: String,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// 1–100 alerts.
    pub alerts: Vec<AmAlert>,
}

/// `POST /v1/incidents/{id}/notes` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NoteBody {
    /// 1–4096 bytes.
    pub note: String,
}

/// `GET /v1/incidents` query.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IncidentQuery {
    /// `triggered`, `acknowledged` or `resolved` (default: all).
    #[serde(default)]
    pub state: Option<String>,
    /// 1..=500, default 100.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// An incident as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// Id.
    pub incident_id: String,
    /// Its dedup key.
    pub dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// Severity.
    pub severity: String,
    /// Summary.
    pub summary: String,
    /// Source.
    pub source: String,
    /// The sender's details.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Correlation id of the request that raised it.
    pub correlation_id: String,
    /// Its W3C `traceparent`, if one was sent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub traceparent: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Notice rounds sent so far.
    pub attempts: i64,
    /// Next repeat, RFC 3339 (none once acknowledged or past the window).
    pub next_notify_at: Option<String>,
    /// When it put Warden in safe mode.
    pub safe_mode_at: Option<String>,
    /// Acknowledged, RFC 3339.
    pub acknowledged_at: Option<String>,
    /// By whom.
    pub acknowledged_by: Option<String>,
    /// Resolved, RFC 3339.
    pub resolved_at: Option<String>,
    /// By whom.
    pub resolved_by: Option<String>,
    /// The next-shift ticket, RFC 3339.
    pub ticket_at: Option<String>,
    /// Triggers folded into it.
    pub duplicates: i64,
}

/// Answer of the incident endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentAnswer {
    /// The terminal state.
    pub state: &'static str,
    /// The incident concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Its dedup key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// The incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentView>,
    /// A list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incidents: Option<Vec<IncidentView>>,
    /// Alertmanager: one result per alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<AlertResult>>,
}

/// What one alert of a webhook did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertResult {
    /// Its dedup key (`am:` and the fingerprint).
    pub dedup_key: String,
    /// `triggered`, `deduplicated`, `resolved`, or `unknown_incident` (resolved, nothing open).
    pub state: &'static str,
    /// The incident, if any.
    pub incident_id: Option<String>,
}

/// The incident routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/incidents", post(event).get(list))
        .route("/v1/alerts/alertmanager", post(alertmanager))
        .route("/v1/incidents/{id}", get(one))
        .route("/v1/incidents/{id}/ack", post(ack))
        .route("/v1/incidents/{id}/resolve", post(resolve))
        .route("/v1/incidents/{id}/notes", post(note))
        .route("/v1/incidents/{id}/evidence", get(evidence))
}

fn time(ms: i64) -> Option<String> {
    (ms != 0).then(|| rfc3339(ms))
}

fn view(i: Incident) -> IncidentView {
    let who = |s: String| (!s.is_empty()).then_some(s);
    IncidentView {
        details: serde_json::from_str(&i.details).unwrap_or(serde_json::Value::Null),
        created_at: rfc3339(i.created_at),
        next_notify_at: time(i.next_notify_at),
        safe_mode_at: time(i.safe_mode_at),
        acknowledged_at: time(i.acked_at),
        acknowledged_by: who(i.acked_by),
        resolved_at: time(i.resolved_at),
        resolved_by: who(i.resolved_by),
        ticket_at: time(i.ticket_at),
        incident_id: i.id,
        dedup_key: i.dedup_key,
        status: i.state,
        severity: i.severity,
        summary: i.summary,
        source: i.source,
        correlation_id: i.correlation_id,
        traceparent: i.traceparent,
        attempts: i.attempts,
        duplicates: i.duplicates,
    }
}

fn answer(state: &'static str, i: Option<Incident>) -> IncidentAnswer {
    IncidentAnswer {
        state,
        incident_id: i.as_ref().map(|i| i.id.clone()),
        dedup_key: i.as_ref().map(|i| i.dedup_key.clone()),
        incident: i.map(view),
        incidents: None,
        results: None,
    }
}

fn invalid(code: &'static str, title: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail)
}

fn dedup_key(raw: &str) -> Result<String, ApiError> {
    identity("dedup_key", "invalid_dedup_key", "Invalid dedup key", raw)
}

fn severity(raw: Option<&str>) -> Result<String, ApiError> {
    match raw {
        Some(s) if crate::guard::SEVERITIES.contains(&s) => Ok(s.to_owned()),
        _ => Err(ApiError::out_of_range(
            "severity",
            "critical, error, warning or info",
        )),
    }
}

fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, ApiError> {
    if raw.len() < min || raw.len() > max || raw.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::out_of_range(
            field,
            &format!("{min}..={max} bytes of text without control characters"),
        ));
    }
    Ok(raw.to_owned())
}

fn details(v: Option<serde_json::Value>) -> Result<String, ApiError> {
    let s = v.map_or_else(|| "{}".to_owned(), |v| v.to_string());
    if s.len() > MAX_DETAILS {
        return Err(ApiError::out_of_range("details", "at most 16 KiB of JSON"));
    }
    Ok(s)
}

/// The incident event a PagerDuty-shaped body asks for.
fn input_of(b: IncidentBody) -> Result<IncidentInput, ApiError> {
    let payload = b.payload.unwrap_or_default();
    let key = b.dedup_key.as_deref().map(dedup_key).transpose()?;
    match b.event_action.as_str() {
        "trigger" => {
            let summary = b.summary.or(payload.summary).unwrap_or_default();
            let source = b
                .source
                .or(payload.source)
                .unwrap_or_else(|| "unspecified".into());
            Ok(IncidentInput::Trigger(Trigger {
                dedup_key: key.unwrap_or_else(|| format!("auto:{}", uuid::Uuid::new_v4().simple())),
                severity: severity(b.severity.as_deref().or(payload.severity.as_deref()))?,
                summary: text("summary", &summary, 1, MAX_SUMMARY)?,
                source: text("source", &source, 1, MAX_SOURCE)?,
                details: details(b.details.or(payload.custom_details))?,
            }))
        }
        "acknowledge" | "resolve" => {
            let key = key.ok_or_else(|| {
                invalid(
                    "invalid_dedup_key",
                    "Invalid dedup key",
                    "dedup_key is required to acknowledge or resolve",
                )
            })?;
            Ok(if b.event_action == "resolve" {
                IncidentInput::Resolve(key)
            } else {
                IncidentInput::Acknowledge(key)
            })
        }
        _ => Err(ApiError::out_of_range(
            "event_action",
            "trigger, acknowledge or resolve",
        )),
    }
}

/// The answer to an incident outcome `out` (`status` from its table).
fn respond(
    op: &Op,
    key: &str,
    status: StatusCode,
    state: &'static str,
    out: IncidentEvent,
) -> Response {
    op.finish(key, state, Mode::Fallback.as_str());
    match out {
        IncidentEvent::Unknown => state_problem(
            status,
            state,
            "Unknown incident",
            "no such incident (or none open for this dedup_key)",
            Mode::Fallback,
        ),
        IncidentEvent::AlreadyResolved(i) => state_problem(
            status,
            state,
            "Already resolved",
            format!(
                "incident {} was resolved by {}: the resolution stands",
                i.id, i.resolved_by
            ),
            Mode::Fallback,
        ),
        other => {
            let i = other.incident().cloned();
            (status, Json(answer(state, i))).into_response()
        }
    }
}

/// An incident event (PagerDuty Events v2 shape).
#[utoipa::path(post, path = "/v1/incidents", request_body = IncidentBody)]
pub async fn event(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<IncidentBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("incident_event");
    let input = input_of(body)?;
    let out = match app.guard.event(&caller.tenant, input, &caller.name).await {
        Ok(out) => out,
        Err(b) => return Ok(blocked(&op, "incidents", b)),
    };
    let (status, state) = (status_of(&out), out.state());
    Ok(respond(&op, "incidents", status, state, out))
}

/// The dedup key of an Alertmanager alert: `am:` and its fingerprint, or a hash of its labels.
fn alert_key(a: &AmAlert) -> Result<String, ApiError> {
    match &a.fingerprint {
        Some(f) if !f.is_empty() => dedup_key(&format!("am:{f}")),
        _ => {
            let labels = serde_json::to_string(&a.labels).unwrap_or_default();
            Ok(format!("am:{}", &hex::encode(Sha256::digest(labels))[..16]))
        }
    }
}

fn alert_severity(labels: &BTreeMap<String, String>) -> String {
    match labels
        .get("severity")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        Some("critical" | "page") => "critical",
        Some("error" | "high") => "error",
        Some("info" | "none" | "low") => "info",
        _ => "warning",
    }
    .to_owned()
}

/// The incident event one alert asks for.
fn alert_input(a: &AmAlert, body: &AlertmanagerBody) -> Result<IncidentInput, ApiError> {
    let receiver = body.receiver.as_str();
    let key = alert_key(a)?;
    match a.status.as_str() {
        "resolved" => Ok(IncidentInput::Resolve(key)),
        "firing" => {
            let pick = |names: &[&str], map: &BTreeMap<String, String>| {
                names
                    .iter()
                    .find_map(|n| map.get(*n).filter(|v| !v.is_empty()).cloned())
            };
            let summary = pick(&["summary", "description"], &a.annotations)
                .or_else(|| pick(&["alertname"], &a.labels))
                .unwrap_or_else(|| "alert".into());
            let source = pick(&["instance", "job"], &a.labels).unwrap_or_else(|| {
                if receiver.is_empty() {
                    "alertmanager".into()
                } else {
                    receiver.to_owned()
                }
            });
            let sent = serde_json::json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "group_key": body.group_key,
            });
            Ok(IncidentInput::Trigger(Trigger {
                dedup_key: key,
                severity: alert_severity(&a.labels),
                summary: text("summary", &summary, 1, MAX_SUMMARY)?,
                source: text("source", &source, 1, MAX_SOURCE)?,
                details: details(Some(sent))?,
            }))
        }
        _ => Err(ApiError::out_of_range(
            "alerts[].status",
            "firing or resolved",
        )),
    }
}

/// An Alertmanager webhook (version 4): each firing alert triggers (or folds into) the
/// incident of its fingerprint, each resolved alert resolves it.
#[utoipa::path(post, path = "/v1/alerts/alertmanager", request_body = AlertmanagerBody)]
pub async fn alertmanager(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<AlertmanagerBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("alertmanager");
    if body.version != "4" {
        return Err(ApiError::out_of_range("version", "\"4\""));
    }
    if body.alerts.is_empty() || body.alerts.len() > MAX_ALERTS {
        return Err(ApiError::out_of_range("alerts", "1..=100 alerts"));
    }
    let inputs = body
        .alerts
        .iter()
        .map(|a| alert_input(a, &body))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = Vec::with_capacity(inputs.len());
    for input in inputs {
        let key = match &input {
            IncidentInput::Trigger(t) => t.dedup_key.clone(),
            IncidentInput::Acknowledge(k) | IncidentInput::Resolve(k) => k.clone(),
        };
        let out = match app.guard.event(&caller.tenant, input, &caller.name).await {
            Ok(out) => out,
            Err(b) => return Ok(blocked(&op, "alertmanager", b)),
        };
        results.push(AlertResult {
            dedup_key: key,
            state: out.state(),
            incident_id: out.incident().map(|i| i.id.clone()),
        });
    }
    let rank = ["triggered", "deduplicated", "acknowledged", "resolved"];
    let state = rank
        .into_iter()
        .find(|s| results.iter().any(|r| r.state == *s))
        .unwrap_or("resolved");
    op.finish("alertmanager", state, Mode::Fallback.as_str());
    let mut a = answer(state, None);
    a.results = Some(results);
    Ok((StatusCode::ACCEPTED, Json(a)).into_response())
}

/// Incidents, newest first.
#[utoipa::path(get, path = "/v1/incidents", params(
        ("state" = Option<String>, Query, description = "triggered, acknowledged or resolved"),
        ("limit" = Option<i64>, Query, description = "1..=500, default 100")))]
pub async fn list(
    State(app): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let op = Op::start("incident_list");
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "Invalid query",
            e.body_text(),
        )
    })?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s @ ("triggered" | "acknowledged" | "resolved")) => Some(s),
        Some(_) => {
            return Err(ApiError::out_of_range(
                "state",
                "triggered, acknowledged or resolved",
            ))
        }
    };
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, MAX_LIST)?;
    let found = match app.guard.incidents(&caller.tenant, state, limit).await {
        Ok(f) => f,
        Err(b) => return Ok(blocked(&op, "incidents", b)),
    };
    op.finish("incidents", found.state(), "fallback");
    let mut a = answer(found.state(), None);
    if let Found::Many(list) = found {
        a.incidents = Some(list.into_iter().map(view).collect());
    }
    Ok(Json(a).into_response())
}

fn found(op: &Op, id: &str, found: Found) -> Response {
    let (status, state) = (status_of(&found), found.state());
    op.finish(id, state, "fallback");
    match found {
        Found::One(i) => (status, Json(answer(state, Some(*i)))).into_response(),
        _ => state_problem(
            status,
            state,
            "Unknown incident",
            "no such incident",
            Mode::Fallback,
        ),
    }
}

/// One incident: its notice rounds, next repeat and safe-mode instant.
#[utoipa::path(get, path = "/v1/incidents/{id}",
    params(("id" = String, Path, description = "incident id")))]
pub async fn one(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
) -> Response {
    let op = Op::start("incident_get");
    match app.guard.incident(&caller.tenant, id.name()).await {
        Ok(f) => found(&op, id.name(), f),
        Err(b) => blocked(&op, id.name(), b),
    }
}

async fn by_id(
    app: AppState,
    caller: &crate::access::Principal,
    id: &str,
    resolve: bool,
    op: &Op,
) -> Response {
    match app
        .guard
        .settle_by_id(&caller.tenant, id, resolve, &caller.name)
        .await
    {
        Ok(out) => {
            let out = ByIdEvent(out);
            let (status, state) = (status_of(&out), out.state());
            respond(op, id, status, state, out.0)
        }
        Err(b) => blocked(op, id, b),
    }
}

/// Acknowledges an incident: escalation stops; a repeat acknowledgement answers the same; an
/// acknowledgement after the resolution answers 409.
#[utoipa::path(post, path = "/v1/incidents/{id}/ack",
    params(("id" = String, Path, description = "incident id")))]
pub async fn ack(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
) -> Response {
    let op = Op::start("incident_ack");
    by_id(app, &caller, id.name(), false, &op).await
}

/// Resolves an incident (a repeat answers the same).
#[utoipa::path(post, path = "/v1/incidents/{id}/resolve",
    params(("id" = String, Path, description = "incident id")))]
pub async fn resolve(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
) -> Response {
    let op = Op::start("incident_resolve");
    by_id(app, &caller, id.name(), true, &op).await
}

/// Adds a note to an incident (audited).
#[utoipa::path(post, path = "/v1/incidents/{id}/notes", request_body = NoteBody,
    params(("id" = String, Path, description = "incident id")))]
pub async fn note(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
    Body(body): Body<NoteBody>,
) -> Result<Response, ApiError> {
    let op = Op::start("incident_note");
    let text = text("note", &body.note, 1, MAX_NOTE)?;
    let out = match app
        .guard
        .note(&caller.tenant, id.name(), &text, &caller.name)
        .await
    {
        Ok(o) => o,
        Err(b) => return Ok(blocked(&op, id.name(), b)),
    };
    let (status, state) = (status_of(&out), out.state());
    op.finish(id.name(), state, "fallback");
    Ok(match out {
        Noted::Noted(i) => (status, Json(answer(state, Some(*i)))).into_response(),
        Noted::Unknown => state_problem(
            status,
            state,
            "Unknown incident",
            "no such incident",
            Mode::Fallback,
        ),
    })
}

/// The evidence pack of an incident: timeline, every delivery try, guard moves, tier
/// switches, refused side effects with sample correlation ids, the audit range and head hash.
#[utoipa::path(get, path = "/v1/incidents/{id}/evidence",
    params(("id" = String, Path, description = "incident id")))]
pub async fn evidence(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
) -> Response {
    let op = Op::start("incident_evidence");
    match app.guard.evidence(&caller.tenant, id.name()).await {
        Ok(Some(pack)) => {
            op.finish(id.name(), "evidence", "fallback");
            let mut v = serde_json::to_value(&pack).unwrap_or_default();
            v["state"] = serde_json::json!("evidence");
            Json(v).into_response()
        }
        Ok(None) => found(&op, id.name(), Found::Unknown),
        Err(b) => blocked(&op, id.name(), b),
    }
}
