//! Lock group endpoints (DESIGN §4.1): all or nothing over 1–64 distinct keys, taken in key
//! order; extended and released by the group's id.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::{blocked, blocked_as, status_of};
use super::extract::{in_range, owner, Body, Caller, PathKey};
use super::locks::{deadlock_priority, LockMode};
use super::observe::answered;
use super::problem::ApiError;
use super::AppState;
use crate::key::Key;
use crate::lock::{
    GroupAcquired, GroupRequest, LostReason, Member, Touch, MAX_GROUP_KEYS, MAX_TTL_MS, MAX_WAIT_MS,
};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// One key of a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupKey {
    /// The key (1–512 bytes).
    pub key: String,
    /// `exclusive` (default) or `shared`.
    #[serde(default)]
    pub mode: LockMode,
    /// The key is a level of a tree (as for a lock's `tree`).
    #[serde(default)]
    pub tree: bool,
}

/// `POST /v1/lock-groups/acquire` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GroupAcquireBody {
    /// Holder identity.
    pub owner: String,
    /// Lease length of every member, ms (1..=3 600 000).
    pub ttl_ms: i64,
    /// How long to wait for the whole group, ms (default 0, at most 60 000).
    #[serde(default)]
    pub wait_ms: i64,
    /// 1–64 distinct keys.
    pub locks: Vec<GroupKey>,
    /// Rank when the group's wait closes a deadlock: the lowest priority (then the youngest
    /// wait) is answered `deadlock_detected` (default 0; -1 000 000..=1 000 000).
    #[serde(default)]
    pub deadlock_priority: i64,
    /// Accepted for clients that ask a victim group to give its members back: a waiting group
    /// never holds any of them (it gives back what a pass took before it waits), so a group
    /// answered `deadlock_detected` holds none, whatever this says. The owner's other locks
    /// stay held.
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and always in effect: nothing to act on")]
    pub release_on_deadlock: bool,
}

/// `POST /v1/lock-groups/{id}/extend` and `/release` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GroupTouchBody {
    /// Holder identity.
    pub owner: String,
    /// For an extend: the new lease length from now, ms (default: the group's own).
    #[serde(default)]
    pub ttl_ms: Option<i64>,
}

/// A held member, as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupLock {
    /// The key.
    pub key: String,
    /// Its fencing token.
    pub fencing_token: i64,
    /// `exclusive` or `shared`.
    pub lock_mode: LockMode,
    /// Present (true) for a tree key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tree: bool,
}

/// Answer of the lock group endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LockGroupAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// The group's id, for its extend and release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Every member, in key order, with its token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<Vec<GroupLock>>,
    /// The earliest member expiry, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// ms until the earliest member expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms_remaining: Option<i64>,
    /// For `lock_busy`: the key that was held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_at: Option<String>,
    /// For `lock_busy`: who held it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// For `lock_busy`: when a retry may succeed, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// For `lock_lost`: why the group is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For `deadlock_detected`: the cycle, each owner waiting for a key the next one holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<Vec<crate::lock::CycleStep>>,
}

/// The codes of a refused member list.
pub const GROUP_CODES: [&str; 2] = ["invalid_key", "duplicate_key"];

/// The lock-group routes (scope `locks`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::lock::{GroupAcquired, Touch};
    let answer = "LockGroupAnswer";
    vec![Routes::new("lock_groups", Need::Scope(Scope::Locks))
        .answer(
            Answers::new("lock_group_acquire", GroupAcquired::STATES, answer).own_block(),
            routes!(acquire),
        )
        .answer(
            Answers::new("lock_group_extend", <Touch<i64>>::STATES, answer),
            routes!(extend),
        )
        .answer(
            Answers::new("lock_group_release", <Touch<()>>::STATES, answer),
            routes!(release),
        )]
}

fn unprocessable(code: &'static str, detail: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        "Invalid lock group",
        detail,
    )
}

/// The members, validated, distinct and in key order.
fn members(tenant: &str, locks: &[GroupKey]) -> Result<Vec<Member>, ApiError> {
    in_range("locks", locks.len() as i64, 1, MAX_GROUP_KEYS as i64)?;
    let mut seen = HashSet::new();
    let mut members = Vec::with_capacity(locks.len());
    for l in locks {
        let key = Key::scoped(tenant, &l.key)
            .and_then(|k| if l.tree { k.into_tree() } else { Ok(k) })
            .map_err(|e| unprocessable("invalid_key", format!("`{}`: {e}", l.key)))?;
        if !seen.insert(key.as_str().to_owned()) {
            return Err(unprocessable(
                "duplicate_key",
                format!("`{}` is named twice", l.key),
            ));
        }
        members.push(Member {
            key,
            shared: l.mode == LockMode::Shared,
        });
    }
    members.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    Ok(members)
}

/// Acquires every key of a group, or none.
#[utoipa::path(post, path = "/v1/lock-groups/acquire", request_body = GroupAcquireBody)]
pub async fn acquire(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<GroupAcquireBody>,
) -> Result<Response, ApiError> {
    let id = match crate::lock::new_group_id(&caller.tenant) {
        Ok(id) => id,
        Err(b) => {
            let state = GroupAcquired::Blocked(b).state();
            return Ok(blocked_as("lock-group", state, b));
        }
    };
    let req = GroupRequest {
        owner: owner(&body.owner)?,
        ttl_ms: in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?,
        wait_ms: in_range("wait_ms", body.wait_ms, 0, MAX_WAIT_MS)?,
        members: members(&caller.tenant, &body.locks)?,
        deadlock_priority: deadlock_priority(body.deadlock_priority)?,
        id: id.clone(),
    };
    let outcome = app.locks.acquire_group(req).await;
    let mut answer = LockGroupAnswer {
        state: outcome.state(),
        ..LockGroupAnswer::default()
    };
    match &outcome {
        GroupAcquired::Granted {
            members,
            expires_at,
            mode,
        } => {
            let now = app.tier.now();
            answer.mode = Some(mode.as_str());
            answer.group_id = Some(id.name().to_owned());
            let locks = members.iter().map(|m| GroupLock {
                key: m.key.clone(),
                fencing_token: m.token,
                lock_mode: if m.shared {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                },
                tree: m.tree,
            });
            answer.locks = Some(locks.collect());
            answer.expires_at = Some(rfc3339(*expires_at));
            answer.ttl_ms_remaining = Some((expires_at - now).max(0));
        }
        GroupAcquired::Busy {
            blocked_at,
            blocked_by,
            retry_after_ms,
        } => {
            answer.blocked_at = Some(blocked_at.clone());
            answer.blocked_by = Some(blocked_by.clone());
            answer.retry_after_ms = Some(*retry_after_ms);
        }
        GroupAcquired::Deadlock { cycle } => answer.cycle = Some(cycle.clone()),
        GroupAcquired::Blocked(b) => return Ok(blocked_as("lock-group", outcome.state(), *b)),
    }
    answered("lock-group", answer.state, answer.mode.unwrap_or("none"));
    Ok((status_of(&outcome), Json(answer)).into_response())
}

fn touched<T>(touch: &Touch<T>, mode: Mode) -> LockGroupAnswer
where
    Touch<T>: Terminal,
{
    LockGroupAnswer {
        state: touch.state(),
        mode: Some(mode.as_str()),
        reason: match touch {
            Touch::Lost(why) => Some(LostReason::as_str(*why)),
            _ => None,
        },
        ..LockGroupAnswer::default()
    }
}

/// Extends every member of a group; if one is lost, the group is released whole.
#[utoipa::path(post, path = "/v1/lock-groups/{id}/extend", request_body = GroupTouchBody,
    params(("id" = String, Path, description = "group id")))]
pub async fn extend(
    State(app): State<AppState>,
    PathKey(id): PathKey,
    Body(body): Body<GroupTouchBody>,
) -> Result<Response, ApiError> {
    let who = owner(&body.owner)?;
    let ttl = body
        .ttl_ms
        .map(|t| in_range("ttl_ms", t, 1, MAX_TTL_MS))
        .transpose()?;
    let (touch, mode) = match app.locks.extend_group(&id, &who, ttl).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(id.name(), b)),
    };
    let mut answer = touched(&touch, mode);
    if let Touch::Done(expires_at) = touch {
        answer.group_id = Some(id.name().to_owned());
        answer.expires_at = Some(rfc3339(expires_at));
        answer.ttl_ms_remaining = Some((expires_at - app.tier.now()).max(0));
    }
    answered(id.name(), answer.state, answer.mode.unwrap_or("none"));
    Ok((status_of(&touch), Json(answer)).into_response())
}

/// Releases every member of a group.
#[utoipa::path(post, path = "/v1/lock-groups/{id}/release", request_body = GroupTouchBody,
    params(("id" = String, Path, description = "group id")))]
pub async fn release(
    State(app): State<AppState>,
    PathKey(id): PathKey,
    Body(body): Body<GroupTouchBody>,
) -> Result<Response, ApiError> {
    let who = owner(&body.owner)?;
    let (touch, mode) = match app.locks.release_group(&id, &who).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(id.name(), b)),
    };
    let answer = touched(&touch, mode);
    answered(id.name(), answer.state, answer.mode.unwrap_or("none"));
    Ok((status_of(&touch), Json(answer)).into_response())
}
