//! Pages of sessions (DESIGN §4.6): a principal's live sessions and the logout everywhere that
//! ends them all, and the tenant's event feed, read after a position in commit order. Each
//! answers one page; the one-session endpoints are in `sessions.rs`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::answer::blocked;
use super::auth::Need;
use super::extract::{in_range, Caller, QueryOf};
use super::observe::answered;
use super::problem::ApiError;
use super::routes::{Answers, Routes};
use super::sessions::{of_row, principal, revoked_answer, SessionAnswer};
use super::AppState;
use crate::access::Scope;
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::session::{SessionEvent, SessionRevoked, EVENTS, LISTED};
use crate::tier::Mode;

/// Most events one page of the feed answers.
pub const MAX_EVENTS_PAGE: i64 = 1_000;

/// `GET /v1/sessions/events` query.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Events after this position (0: from the start).
    #[serde(default)]
    pub after: i64,
    /// At most this many (1..=1 000, default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// A page of a principal's sessions or of the events feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    /// `sessions` or `events`.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    pub mode: &'static str,
    /// The live sessions, oldest first (`sessions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionAnswer>>,
    /// The events in order (`events`): `seq`, `kind`, `session_ref`, `principal`, `at`,
    /// `correlation_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<serde_json::Value>>,
    /// The position to ask after next (`events`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

/// The page routes (scope `sessions`).
pub(super) fn routes() -> Vec<Routes> {
    let (one, page) = ("SessionAnswer", "SessionPage");
    vec![Routes::new("sessions", Need::Scope(Scope::Sessions))
        .answer(
            Answers::new("session_events", EVENTS, page),
            routes!(events),
        )
        .answer(Answers::new("session_list", LISTED, page), routes!(list))
        .answer(
            Answers::new("session_revoke_all", SessionRevoked::STATES, one),
            routes!(revoke_all),
        )]
}

/// The live sessions of a principal, oldest first (at most 1 000).
#[utoipa::path(get, path = "/v1/principals/{principal}/sessions",
    params(("principal" = String, Path, description = "principal")))]
pub async fn list(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&p)?;
    Ok(match app.sessions.list(&caller.tenant, &p).await {
        Ok((rows, mode)) => {
            answered("session", LISTED[0].state, mode.as_str());
            let sessions = rows
                .iter()
                .map(|r| SessionAnswer {
                    data: None,
                    ..of_row("active", mode, r)
                })
                .collect();
            Json(SessionPage {
                state: LISTED[0].state,
                mode: mode.as_str(),
                sessions: Some(sessions),
                events: None,
                next_after: None,
            })
            .into_response()
        }
        Err(b) => blocked("session", b),
    })
}

/// Logs a principal out everywhere: every live session of it ends, durably.
#[utoipa::path(delete, path = "/v1/principals/{principal}/sessions",
    params(("principal" = String, Path, description = "principal")))]
pub async fn revoke_all(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&p)?;
    Ok(match app.sessions.revoke_all(&caller.tenant, &p).await {
        Ok((r, mode)) => revoked_answer(&r, mode),
        Err(b) => blocked("session", b),
    })
}

fn event_json(e: &SessionEvent) -> serde_json::Value {
    serde_json::json!({
        "seq": e.seq,
        "kind": e.kind,
        "session_ref": e.id_hash,
        "principal": e.principal,
        "at": rfc3339(e.at),
        "correlation_id": e.correlation_id,
    })
}

/// The session events of the caller's tenant after a position, in commit order: created,
/// rotated, revoked, expired, evicted (at least once: follow `next_after`).
#[utoipa::path(get, path = "/v1/sessions/events",
    params(("after" = Option<i64>, Query, description = "position"),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 100")))]
pub async fn events(
    State(app): State<AppState>,
    Caller(caller): Caller,
    QueryOf(q): QueryOf<EventsQuery>,
) -> Result<Response, ApiError> {
    let after = in_range("after", q.after, 0, i64::MAX)?;
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, MAX_EVENTS_PAGE)?;
    Ok(
        match app.sessions.events(&caller.tenant, after, limit).await {
            Ok(page) => {
                answered("session", EVENTS[0].state, Mode::Durable.as_str());
                let next_after = page.last().map_or(after, |e| e.seq);
                Json(SessionPage {
                    state: EVENTS[0].state,
                    mode: Mode::Durable.as_str(),
                    sessions: None,
                    events: Some(page.iter().map(event_json).collect()),
                    next_after: Some(next_after),
                })
                .into_response()
            }
            Err(b) => blocked("session", b),
        },
    )
}
