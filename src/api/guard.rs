//! Guard and audit endpoints: the guard with its exit conditions, manual entry, recovery
//! actions, the exit request, the audit chain by pages and its verification. They act on state
//! every tenant shares, so they need an operator (see `auth::Need::Operator`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{in_range, Body, Caller, QueryOf};
use super::observe::answered;
use super::problem::{ApiError, Problem};
use super::AppState;
use crate::audit::Sealed;
use crate::guard::rules::Missing;
use crate::guard::{GuardMove, GuardView, Recorded, Verified};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Longest reason, action or detail, bytes.
const MAX_TEXT: usize = 2_048;
/// Most audit entries per page.
const MAX_PAGE: i64 = 1_000;

/// `POST /v1/guard/enter` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnterBody {
    /// Why (1–2048 bytes); audited.
    pub reason: String,
}

/// `POST /v1/guard/recovery-actions` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoveryBody {
    /// What was done, 1–2048 bytes (`redis restarted`, `failed over to replica`).
    pub action: String,
    /// Details, at most 2048 bytes.
    #[serde(default)]
    pub detail: String,
}

/// `GET /v1/audit` query.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AuditQuery {
    /// Entries after this number (default 0: from the first).
    #[serde(default)]
    pub after: Option<i64>,
    /// 1..=1000, default 100.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// What leaving safe mode needs, and how far it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExitConditions {
    /// Incidents of the episode still unacknowledged.
    pub unacknowledged: Vec<String>,
    /// Recovery actions recorded in the episode.
    pub recovery_actions: usize,
    /// Continuous green needed, ms.
    pub green_window_ms: i64,
    /// While recovering: green still needed, ms.
    pub green_left_ms: Option<i64>,
}

/// Answer of the guard endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuardAnswer {
    /// `guard`, `safe_mode`, `normal`, `exit_armed`, or `recorded`.
    pub state: &'static str,
    /// `normal`, `degraded`, `safe_mode` or `recovering`.
    pub guard: &'static str,
    /// The current safe-mode episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
    /// Since when, RFC 3339.
    pub since: Option<String>,
    /// Why.
    pub reason: String,
    /// Who moved it.
    pub actor: String,
    /// The exit conditions.
    pub exit_conditions: ExitConditions,
    /// A recorded recovery action's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_action_id: Option<String>,
}

/// 409 `exit_conditions_unmet`: a problem document listing what is missing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExitRefused {
    /// The problem.
    #[serde(flatten)]
    pub problem: Problem,
    /// `exit_conditions_unmet`.
    pub state: &'static str,
    /// Each missing condition: `acknowledgement` or `recovery_action`, with details.
    #[schema(value_type = Vec<Object>)]
    pub missing: Vec<Missing>,
}

/// An audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its number in the chain.
    pub seq: i64,
    /// Id.
    pub id: String,
    /// When, RFC 3339.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details.
    pub detail: String,
    /// The correlation id of the request or task.
    pub correlation_id: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash: SHA-256 of `[seq, prev_hash, id, at_ms, actor, action, subject,
    /// detail, correlation_id]` as JSON.
    pub hash: String,
}

/// Answer of the audit endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditAnswer {
    /// `audit`, `intact` or `broken`.
    pub state: &'static str,
    /// The page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<AuditEntry>>,
    /// The number to ask `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
    /// `intact`: entries walked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<i64>,
    /// `intact`: the head's hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<String>,
    /// `broken`: the first entry that does not match (`seq`, `id`, `reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub first_bad: Option<crate::audit::Broken>,
}

/// The guard routes (operators with scope `guard`) and the audit chain's (operators with
/// scope `audit`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::guard::AuditPage;
    let (guard, chain) = ("GuardAnswer", "AuditAnswer");
    vec![
        Routes::new("guard", Need::Operator(Scope::Guard))
            .answer(
                Answers::new("guard_get", GuardMove::STATES, guard),
                routes!(read),
            )
            .answer(
                Answers::new("guard_enter", GuardMove::STATES, guard),
                routes!(enter),
            )
            .answer(
                Answers::new("guard_recovery", Recorded::STATES, guard),
                routes!(recovery),
            )
            .answer(
                Answers::new("guard_exit", GuardMove::STATES, guard),
                routes!(exit),
            ),
        Routes::new("guard", Need::Operator(Scope::Audit))
            .answer(
                Answers::new("audit_page", AuditPage::STATES, chain),
                routes!(audit),
            )
            .answer(
                Answers::new("audit_verify", Verified::STATES, chain),
                routes!(verify),
            ),
    ]
}

fn text(field: &str, raw: &str, min: usize) -> Result<String, ApiError> {
    if raw.len() < min || raw.len() > MAX_TEXT || raw.chars().any(char::is_control) {
        return Err(ApiError::out_of_range(
            field,
            &format!("{min}..=2048 bytes of text without control characters"),
        ));
    }
    Ok(raw.to_owned())
}

fn guard_answer(state: &'static str, v: &GuardView, green_window_ms: i64) -> GuardAnswer {
    let r = &v.row;
    GuardAnswer {
        state,
        guard: r.state.as_str(),
        episode: (!r.episode.is_empty()).then(|| r.episode.clone()),
        since: (r.since != 0).then(|| rfc3339(r.since)),
        reason: r.reason.clone(),
        actor: r.actor.clone(),
        exit_conditions: ExitConditions {
            unacknowledged: v.unacked.clone(),
            recovery_actions: v.recoveries.len(),
            green_window_ms,
            green_left_ms: v.green_left_ms,
        },
        recovery_action_id: None,
    }
}

fn moved(app: &AppState, m: GuardMove) -> Response {
    let (status, state) = (status_of(&m), m.state());
    answered("guard", state, crate::tier::Mode::Durable.as_str());
    let window = app.guard.exit_green_ms();
    match m {
        GuardMove::Unmet(v, missing) => {
            let detail = missing
                .iter()
                .map(|m| m.condition)
                .collect::<Vec<_>>()
                .join(", ");
            let body = ExitRefused {
                problem: Problem {
                    kind: format!("/problems/{state}"),
                    title: "Exit conditions unmet".into(),
                    status: status.as_u16(),
                    detail: format!("missing: {detail} (guard {})", v.row.state.as_str()),
                    code: state.into(),
                },
                state,
                missing,
            };
            let ct = [(header::CONTENT_TYPE, "application/problem+json")];
            (status, ct, Json(body)).into_response()
        }
        GuardMove::Read(v)
        | GuardMove::SafeMode(v)
        | GuardMove::Normal(v)
        | GuardMove::ExitArmed(v) => {
            (status, Json(guard_answer(state, &v, window))).into_response()
        }
    }
}

/// The guard: state, episode, and what leaving safe mode still needs.
#[utoipa::path(get, path = "/v1/guard")]
pub async fn read(State(app): State<AppState>) -> Response {
    match app.guard.view().await {
        Ok(m) => moved(&app, m),
        Err(b) => blocked("guard", b),
    }
}

/// Enters safe mode on every instance (audited); already in it, answers the same.
#[utoipa::path(post, path = "/v1/guard/enter", request_body = EnterBody)]
pub async fn enter(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<EnterBody>,
) -> Result<Response, ApiError> {
    let reason = text("reason", &body.reason, 1)?;
    Ok(match app.guard.enter(&reason, &caller.name).await {
        Ok(m) => moved(&app, m),
        Err(b) => blocked("guard", b),
    })
}

/// Records a recovery action in the current safe-mode episode (audited).
#[utoipa::path(post, path = "/v1/guard/recovery-actions", request_body = RecoveryBody)]
pub async fn recovery(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<RecoveryBody>,
) -> Result<Response, ApiError> {
    let action = text("action", &body.action, 1)?;
    let detail = text("detail", &body.detail, 0)?;
    let out = match app
        .guard
        .record_recovery(&action, &detail, &caller.name)
        .await
    {
        Ok(o) => o,
        Err(b) => return Ok(blocked("guard", b)),
    };
    let (status, state) = (status_of(&out), out.state());
    answered("guard", state, crate::tier::Mode::Durable.as_str());
    Ok(match out {
        Recorded::Recorded(r) => {
            let view = match app.guard.view().await {
                Ok(GuardMove::Read(v)) => v,
                _ => {
                    return Ok((
                        status,
                        Json(serde_json::json!({"state": state, "recovery_action_id": r.id})),
                    )
                        .into_response())
                }
            };
            let mut a = guard_answer(state, &view, app.guard.exit_green_ms());
            a.recovery_action_id = Some(r.id);
            (status, Json(a)).into_response()
        }
        Recorded::NotInSafeMode => super::problem::state_problem(
            status,
            state,
            "Not in safe mode",
            "there is no safe-mode episode to record a recovery action in",
            crate::tier::Mode::Durable,
        ),
    })
}

/// Asks to leave safe mode: 409 with what is missing, 202 `exit_armed` while the green window
/// runs, 200 `normal` once out.
#[utoipa::path(post, path = "/v1/guard/exit")]
pub async fn exit(State(app): State<AppState>, Caller(caller): Caller) -> Response {
    match app.guard.exit(&caller.name).await {
        Ok(m) => moved(&app, m),
        Err(b) => blocked("guard", b),
    }
}

fn entry(s: Sealed) -> AuditEntry {
    AuditEntry {
        seq: s.seq,
        at: rfc3339(s.entry.at),
        id: s.entry.id,
        actor: s.entry.actor,
        action: s.entry.action,
        subject: crate::key::for_operator(&s.entry.subject),
        detail: s.entry.detail,
        correlation_id: s.entry.correlation_id,
        prev_hash: s.prev_hash,
        hash: s.hash,
    }
}

/// The audit chain, by pages, in order.
#[utoipa::path(get, path = "/v1/audit", params(
        ("after" = Option<i64>, Query, description = "entries after this number (default 0)"),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 100")))]
pub async fn audit(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<AuditQuery>,
) -> Result<Response, ApiError> {
    let after = in_range("after", q.after.unwrap_or(0), 0, i64::MAX)?;
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, MAX_PAGE)?;
    let page = match app.guard.audit_page(after, limit).await {
        Ok(p) => p,
        Err(b) => return Ok(blocked("audit", b)),
    };
    let state = page.state();
    answered("audit", state, crate::tier::Mode::Durable.as_str());
    let next_after = page.0.last().map_or(after, |e| e.seq);
    Ok(Json(AuditAnswer {
        state,
        entries: Some(page.0.into_iter().map(entry).collect()),
        next_after: Some(next_after),
        checked: None,
        head_hash: None,
        first_bad: None,
    })
    .into_response())
}

/// Walks the audit chain: `intact`, or `broken` with the first entry that does not match.
#[utoipa::path(get, path = "/v1/audit/verify")]
pub async fn verify(State(app): State<AppState>) -> Response {
    let v = match app.guard.verify().await {
        Ok(v) => v,
        Err(b) => return blocked("audit", b),
    };
    let state = v.state();
    answered("audit", state, crate::tier::Mode::Durable.as_str());
    let mut a = AuditAnswer {
        state,
        entries: None,
        next_after: None,
        checked: None,
        head_hash: None,
        first_bad: None,
    };
    match v {
        Verified::Intact { entries, head_hash } => {
            a.checked = Some(entries);
            a.head_hash = Some(head_hash);
        }
        Verified::Broken(b) => {
            tracing::error!(seq = b.seq, id = %b.id, reason = b.reason, "audit chain broken");
            a.first_bad = Some(b);
        }
    }
    Json(a).into_response()
}
