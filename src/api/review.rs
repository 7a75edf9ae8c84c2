//! Manual review endpoints: the queue of intents held for a human (causal timeouts, expired
//! replays, conflicts found when a parked commit's turn came) and its audited resolution.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{identity, in_range, Body, Caller, PathKey, QueryOf};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::key::{name_of, prefix};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::stream::rules::Action;
use crate::stream::{Resolution, MAX_REVIEW_PAGE};
use crate::stream::{ReviewFilter, ReviewItem, ReviewState};
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Longest resolution note, bytes.
const MAX_NOTE_BYTES: usize = 2_048;

/// `GET /v1/review` query.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReviewQuery {
    /// `open` (default), `resolved` or `all`.
    #[serde(default)]
    pub state: Option<String>,
    /// Most items, 1..=1000 (default 100), oldest first.
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `POST /v1/review/{id}/resolve` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResolveBody {
    /// `requeue` (the intent goes back to dispatch) or `dismiss` (nothing changes).
    pub action: String,
    /// Who decides (1–512 bytes); recorded and audited.
    pub actor: String,
    /// Why (at most 2 048 bytes).
    #[serde(default)]
    pub note: String,
}

/// One review item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    /// Id.
    pub id: String,
    /// `causal_timeout`, `expired_replay` or `version_conflict`.
    pub reason: String,
    /// Stream.
    pub stream: String,
    /// Intent.
    pub intent_id: String,
    /// Its sequence.
    pub commit_sequence: i64,
    /// What happened.
    pub detail: String,
    /// Created, RFC 3339 UTC.
    pub created_at: String,
    /// `open` or `resolved`.
    pub status: &'static str,
    /// The action taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Who took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The actor's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Resolved, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

/// Answer of the review endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewAnswer {
    /// `review` (list) or `resolved`.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    pub mode: &'static str,
    /// The items (list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ReviewView>>,
    /// The resolved item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<ReviewView>,
}

/// The manual-review routes (scope `review`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::stream::ReviewPage;
    vec![Routes::new("review", Need::Scope(Scope::Review))
        .answer(
            Answers::new("review_list", ReviewPage::STATES, "ReviewAnswer"),
            routes!(list),
        )
        .answer(
            Answers::new("review_resolve", Resolution::STATES, "ReviewAnswer"),
            routes!(resolve),
        )]
}

fn view(r: ReviewItem) -> ReviewView {
    let resolved = r.state == ReviewState::Resolved;
    ReviewView {
        id: r.id,
        reason: r.reason,
        stream: name_of(&r.stream).to_owned(),
        intent_id: r.intent_id,
        commit_sequence: r.seq,
        detail: r.detail,
        created_at: rfc3339(r.created_at),
        status: r.state.as_str(),
        action: resolved.then_some(r.action),
        actor: resolved.then_some(r.actor),
        note: resolved.then_some(r.note),
        resolved_at: resolved.then(|| rfc3339(r.resolved_at)),
    }
}

/// The manual review queue, oldest first.
#[utoipa::path(get, path = "/v1/review", params(
        ("state" = Option<String>, Query, description = "open (default), resolved or all"),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 100")))]
pub async fn list(
    State(app): State<AppState>,
    Caller(caller): Caller,
    QueryOf(q): QueryOf<ReviewQuery>,
) -> Result<Response, ApiError> {
    let filter = match q.state.as_deref().unwrap_or("open") {
        "open" => ReviewFilter::Open,
        "resolved" => ReviewFilter::Resolved,
        "all" => ReviewFilter::All,
        _ => return Err(ApiError::out_of_range("state", "open, resolved or all")),
    };
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, MAX_REVIEW_PAGE)?;
    Ok(
        match app
            .streams
            .reviews(filter, limit, &prefix(&caller.tenant))
            .await
        {
            Ok((page, mode)) => {
                answered("review", page.state(), mode.as_str());
                Json(ReviewAnswer {
                    state: page.state(),
                    mode: mode.as_str(),
                    items: Some(page.0.into_iter().map(view).collect()),
                    item: None,
                })
                .into_response()
            }
            Err(b) => blocked("review", b),
        },
    )
}

/// Resolves a review item; the action and the actor are recorded and audited.
#[utoipa::path(post, path = "/v1/review/{id}/resolve", request_body = ResolveBody,
    params(("id" = String, Path, description = "review item id")))]
pub async fn resolve(
    State(app): State<AppState>,
    Caller(caller): Caller,
    PathKey(id): PathKey,
    Body(body): Body<ResolveBody>,
) -> Result<Response, ApiError> {
    let action = Action::parse(&body.action)
        .ok_or_else(|| ApiError::out_of_range("action", "requeue or dismiss"))?;
    let typed = identity("actor", "invalid_actor", "Invalid actor", &body.actor)?;
    // The actor is the token's name; only the token-less local caller of protected mode has
    // no identity but the one it types.
    let actor = match caller.token_id {
        Some(_) => caller.name.clone(),
        None => typed,
    };
    if body.note.len() > MAX_NOTE_BYTES {
        return Err(ApiError::out_of_range("note", "0..=2048 bytes"));
    }
    // Review ids are made by Warden, not named per tenant: the item's stream says whose it is.
    let (k, scope) = (id.name(), prefix(&caller.tenant));
    let (out, mode) = match app
        .streams
        .resolve(k, action, &actor, &body.note, &scope)
        .await
    {
        Ok(r) => r,
        Err(b) => return Ok(blocked(k, b)),
    };
    let (status, state) = (status_of(&out), out.state());
    answered(k, state, mode.as_str());
    let refusal = |title, detail: String| state_problem(status, state, title, detail, mode);
    Ok(match out {
        Resolution::Resolved(item) => Json(ReviewAnswer {
            state,
            mode: mode.as_str(),
            items: None,
            item: Some(view(*item)),
        })
        .into_response(),
        Resolution::AlreadyResolved(item) => refusal(
            "Already resolved",
            format!("resolved by {} with {}", item.actor, item.action),
        ),
        Resolution::ActionRefused(intent) => refusal(
            "Action refused",
            format!("the intent is {}: it cannot be requeued", intent.as_str()),
        ),
        Resolution::Unknown => refusal("Unknown review item", "no review item with this id".into()),
    })
}
