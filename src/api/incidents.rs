//! Incident endpoints: events (PagerDuty Events v2 and Alertmanager v4 shapes, checked in
//! `incident_input`); acknowledgement, resolution and notes by id; reads and the evidence pack.
//! Every field is checked before any state is touched (G8); the actor is the token's name.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{in_range, Body, Caller, PathKey, QueryOf};
use super::incident_input::{alert_input, input_of, text, MAX_ALERTS};
pub use super::incident_input::{AlertmanagerBody, IncidentBody};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::guard::Incident;
use crate::guard::{ByIdEvent, Found, IncidentEvent, IncidentInput, Noted};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Longest note, bytes.
const MAX_NOTE: usize = 4_096;
/// Most incidents listed.
const MAX_LIST: i64 = 500;

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
    /// When it became critical, RFC 3339: repeats, safe mode and the ticket count from here.
    pub escalated_at: Option<String>,
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

/// The incident routes (scope `incidents`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::guard::outcome::EVIDENCE_STATES;
    let answer = "IncidentAnswer";
    vec![Routes::new("incidents", Need::Scope(Scope::Incidents))
        .answer(
            Answers::new("incident_event", IncidentEvent::STATES, answer),
            routes!(event),
        )
        .answer(
            Answers::new("incident_list", Found::STATES, answer),
            routes!(list),
        )
        .answer(
            Answers::new("alertmanager", IncidentEvent::STATES, answer),
            routes!(alertmanager),
        )
        .answer(
            Answers::new("incident_get", Found::STATES, answer),
            routes!(one),
        )
        .answer(
            Answers::new("incident_ack", ByIdEvent::STATES, answer),
            routes!(ack),
        )
        .answer(
            Answers::new("incident_resolve", ByIdEvent::STATES, answer),
            routes!(resolve),
        )
        .answer(
            Answers::new("incident_note", Noted::STATES, answer),
            routes!(note),
        )
        .answer(
            Answers::new("incident_evidence", EVIDENCE_STATES, answer),
            routes!(evidence),
        )]
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
        escalated_at: time(i.escalated_at),
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

/// The answer to an incident outcome `out` (`status` from its table).
fn respond(key: &str, status: StatusCode, state: &'static str, out: IncidentEvent) -> Response {
    answered(key, state, Mode::Durable.as_str());
    match out {
        IncidentEvent::Unknown => state_problem(
            status,
            state,
            "Unknown incident",
            "no such incident (or none open for this dedup_key)",
            Mode::Durable,
        ),
        IncidentEvent::AlreadyResolved(i) => state_problem(
            status,
            state,
            "Already resolved",
            format!(
                "incident {} was resolved by {}: the resolution stands",
                i.id, i.resolved_by
            ),
            Mode::Durable,
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
    let input = input_of(body)?;
    let out = match app.guard.event(&caller.tenant, input, &caller.name).await {
        Ok(out) => out,
        Err(b) => return Ok(blocked("incidents", b)),
    };
    let (status, state) = (status_of(&out), out.state());
    Ok(respond("incidents", status, state, out))
}

/// An Alertmanager webhook (version 4): each firing alert triggers (or folds into) the
/// incident of its fingerprint, each resolved alert resolves it.
#[utoipa::path(post, path = "/v1/alerts/alertmanager", request_body = AlertmanagerBody)]
pub async fn alertmanager(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<AlertmanagerBody>,
) -> Result<Response, ApiError> {
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
            Err(b) => return Ok(blocked("alertmanager", b)),
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
    answered("alertmanager", state, Mode::Durable.as_str());
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
    QueryOf(q): QueryOf<IncidentQuery>,
) -> Result<Response, ApiError> {
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
        Err(b) => return Ok(blocked("incidents", b)),
    };
    answered("incidents", found.state(), Mode::Durable.as_str());
    let mut a = answer(found.state(), None);
    if let Found::Many(list) = found {
        a.incidents = Some(list.into_iter().map(view).collect());
    }
    Ok(Json(a).into_response())
}

fn found(id: &str, found: Found) -> Response {
    let (status, state) = (status_of(&found), found.state());
    answered(id, state, Mode::Durable.as_str());
    match found {
        Found::One(i) => (status, Json(answer(state, Some(*i)))).into_response(),
        _ => state_problem(
            status,
            state,
            "Unknown incident",
            "no such incident",
            Mode::Durable,
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
    match app.guard.incident(&caller.tenant, id.name()).await {
        Ok(f) => found(id.name(), f),
        Err(b) => blocked(id.name(), b),
    }
}

async fn by_id(
    app: AppState,
    caller: &crate::access::Principal,
    id: &str,
    resolve: bool,
) -> Response {
    match app
        .guard
        .settle_by_id(&caller.tenant, id, resolve, &caller.name)
        .await
    {
        Ok(out) => {
            let out = ByIdEvent(out);
            let (status, state) = (status_of(&out), out.state());
            respond(id, status, state, out.0)
        }
        Err(b) => blocked(id, b),
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
    by_id(app, &caller, id.name(), false).await
}

/// Resolves an incident (a repeat answers the same).
#[utoipa::path(post, path = "/v1/incidents/{id}/resolve",
    params(("id" = String, Path, description = "incident id")))]
pub async fn resolve(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
) -> Response {
    by_id(app, &caller, id.name(), true).await
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
    let text = text("note", &body.note, 1, MAX_NOTE)?;
    let out = match app
        .guard
        .note(&caller.tenant, id.name(), &text, &caller.name)
        .await
    {
        Ok(o) => o,
        Err(b) => return Ok(blocked(id.name(), b)),
    };
    let (status, state) = (status_of(&out), out.state());
    answered(id.name(), state, Mode::Durable.as_str());
    Ok(match out {
        Noted::Noted(i) => (status, Json(answer(state, Some(*i)))).into_response(),
        Noted::Unknown => state_problem(
            status,
            state,
            "Unknown incident",
            "no such incident",
            Mode::Durable,
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
    match app.guard.evidence(&caller.tenant, id.name()).await {
        Ok(Some(pack)) => {
            answered(id.name(), "evidence", Mode::Durable.as_str());
            let mut v = serde_json::to_value(&pack).unwrap_or_default();
            v["state"] = serde_json::json!("evidence");
            Json(v).into_response()
        }
        Ok(None) => found(id.name(), Found::Unknown),
        Err(b) => blocked(id.name(), b),
    }
}
