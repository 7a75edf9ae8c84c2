//! Lock and fence endpoints (DESIGN §4 "Locks"): validate, call the domain, answer with the
//! terminal state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::answer::{blocked, blocked_as, status_of};
use super::extract::{in_range, owner, token, Body, PathKey, QueryOf};
use super::observe::answered;
use super::problem::ApiError;
use super::AppState;
use crate::fence::FenceOutcome;
use crate::lock::{
    AcquireRequest, Acquired, CycleStep, Read, Touch, Watched, MAX_HOLD_MS, MAX_TTL_MS, MAX_WAIT_MS,
};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// `POST /v1/locks/{key}/acquire` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcquireBody {
    /// Holder identity (1–512 bytes).
    pub owner: String,
    /// Lease length in ms, 1..=3 600 000.
    pub ttl_ms: i64,
    /// How long to wait in line, in ms (default 0, at most 60 000).
    #[serde(default)]
    pub wait_ms: i64,
    /// The longest the lease may be held through extends, counted from the grant, in ms
    /// (`ttl_ms`..=86 400 000). An extend past it answers `lock_lost` with reason
    /// `max_hold_exceeded` and leaves the lease to end at its current expiry. No cap if absent.
    #[serde(default)]
    pub max_hold_ms: Option<i64>,
    /// `exclusive` (default) or `shared`: shared leases are held together, never with an
    /// exclusive one; once a writer waits, later shared asks queue behind it.
    #[serde(default)]
    pub mode: LockMode,
    /// Rank when a wait closes a deadlock: the lowest priority (then the youngest wait) is
    /// answered `deadlock_detected` (default 0; -1 000 000..=1 000 000).
    #[serde(default)]
    pub deadlock_priority: i64,
    /// The key is a level of a tree: `/` separates levels (`clinic:7/contact:42`, at most 16,
    /// none empty). A lease at a level holds intentions on its ancestors, so an exclusive
    /// lease excludes every lease above and below it, and a shared one every exclusive lease
    /// above and below it. Tokens of one tree come from one counter. Tree keys are a
    /// namespace of their own: extend, release, read and watch them with `tree` too.
    #[serde(default)]
    pub tree: bool,
}

/// A lease's mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// One holder.
    #[default]
    Exclusive,
    /// Many holders, no exclusive one.
    Shared,
}

impl LockMode {
    fn of(shared: bool) -> Self {
        if shared {
            Self::Shared
        } else {
            Self::Exclusive
        }
    }
}

/// One live lease of a key, in a read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Holder {
    /// Holder.
    pub owner: String,
    /// Its fencing token.
    pub fencing_token: i64,
    /// Lease expiry, RFC 3339 UTC.
    pub expires_at: String,
    /// ms until it expires.
    pub ttl_ms_remaining: i64,
}

/// `POST /v1/locks/{key}/extend` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExtendBody {
    /// Holder identity.
    pub owner: String,
    /// Token of the grant being extended.
    pub fencing_token: i64,
    /// New lease length from now, in ms.
    pub ttl_ms: i64,
    /// The key is a tree key (as acquired with `tree: true`).
    #[serde(default)]
    pub tree: bool,
}

/// `POST /v1/locks/{key}/release` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReleaseBody {
    /// Holder identity.
    pub owner: String,
    /// Token of the grant being released.
    pub fencing_token: i64,
    /// The key is a tree key (as acquired with `tree: true`).
    #[serde(default)]
    pub tree: bool,
}

/// `POST /v1/fences/{resource}/check` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FenceBody {
    /// Fencing token presented by the writer.
    pub token: i64,
}

/// Answer of the lock endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LockAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Holder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Fencing token (below 2^53).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// Lease expiry, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// ms until the lease expires, on the server's clock (with `expires_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms_remaining: Option<i64>,
    /// `exclusive` or `shared`, for a grant or a read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<LockMode>,
    /// For a read: every live lease of the key (one when exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders: Option<Vec<Holder>>,
    /// For `lock_busy`: when a retry may succeed, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// For `lock_busy`: the owner holding the key (for a shared ask, possibly the writer
    /// waiting ahead of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// For `lock_busy` on a tree key: the key holding the conflicting lease (an ancestor, the
    /// key itself, or a key below it), as named by its tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_at: Option<String>,
    /// For `deadlock_detected`: the cycle, each owner waiting for a key the next one holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<Vec<CycleStep>>,
    /// For `lock_lost` and `lost`, why the lease is gone: `expired`, `superseded`,
    /// `tier_switched` or `max_hold_exceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Answer of the fence endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct FenceAnswer {
    /// `accepted` or `stale_token`.
    pub state: &'static str,
    /// Highest token recorded for the resource.
    pub highest: i64,
}

/// `GET /v1/locks/{key}/watch` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// The holder.
    pub owner: String,
    /// Its fencing token.
    pub fencing_token: i64,
    /// How long to wait while the lease stays live, ms (0..=60 000; default 30 000).
    #[serde(default)]
    pub wait_ms: Option<i64>,
    /// The key is a tree key (as acquired with `tree: true`).
    #[serde(default)]
    pub tree: bool,
}

/// `GET /v1/locks/{key}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// The key is a tree key (as acquired with `tree: true`).
    #[serde(default)]
    pub tree: bool,
}

/// `key` as a tree key when `tree` is set: 400 `invalid_key` for an empty level or too many.
fn in_tree(key: crate::key::Key, tree: bool) -> Result<crate::key::Key, ApiError> {
    if !tree {
        return Ok(key);
    }
    key.into_tree()
        .map_err(|e| ApiError::invalid_key(e.to_string()))
}

impl LockAnswer {
    /// Sets the lease's expiry and the ms left until it, as of `now`.
    fn expiring(mut self, expires_at: i64, now: i64) -> Self {
        self.expires_at = Some(rfc3339(expires_at));
        self.ttl_ms_remaining = Some((expires_at - now).max(0));
        self
    }
}

/// The lock and fence routes (scope `locks`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::lock::{Acquired, Read, Touch, Watched};
    let lock = "LockAnswer";
    vec![Routes::new("locks", Need::Scope(Scope::Locks))
        .answer(
            Answers::new("lock_acquire", Acquired::STATES, lock).own_block(),
            routes!(acquire),
        )
        .answer(
            Answers::new("lock_extend", <Touch<i64>>::STATES, lock),
            routes!(extend),
        )
        .answer(
            Answers::new("lock_release", <Touch<()>>::STATES, lock),
            routes!(release),
        )
        .answer(Answers::new("lock_get", Read::STATES, lock), routes!(read))
        .answer(
            Answers::new("lock_watch", Watched::STATES, lock),
            routes!(watch),
        )
        .answer(
            Answers::new("fence_check", FenceOutcome::STATES, "FenceAnswer"),
            routes!(fence_check),
        )]
}

fn reply(key: &str, outcome: &impl Terminal, answer: LockAnswer) -> Response {
    answered(key, answer.state, answer.mode.unwrap_or("none"));
    (status_of(outcome), Json(answer)).into_response()
}

/// Acquires a lock.
#[utoipa::path(post, path = "/v1/locks/{key}/acquire", request_body = AcquireBody,
    params(("key" = String, Path, description = "lock key")))]
pub async fn acquire(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<AcquireBody>,
) -> Result<Response, ApiError> {
    let ttl_ms = in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?;
    let hold = |h| in_range("max_hold_ms", h, ttl_ms, MAX_HOLD_MS);
    let shared = body.mode == LockMode::Shared;
    if shared && body.max_hold_ms.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "Invalid body",
            "`max_hold_ms` caps exclusive leases only",
        ));
    }
    let req = AcquireRequest {
        owner: owner(&body.owner)?,
        ttl_ms,
        wait_ms: in_range("wait_ms", body.wait_ms, 0, MAX_WAIT_MS)?,
        max_hold_ms: body.max_hold_ms.map(hold).transpose()?,
        shared,
        deadlock_priority: deadlock_priority(body.deadlock_priority)?,
        key: in_tree(key, body.tree)?,
    };
    let k = req.key.as_str();
    let outcome = app.locks.acquire(&req).await;
    let mut answer = LockAnswer {
        state: outcome.state(),
        ..LockAnswer::default()
    };
    match &outcome {
        Acquired::Granted(g) => {
            answer.mode = Some(g.mode.as_str());
            answer.owner = Some(g.owner.clone());
            answer.fencing_token = Some(g.token);
            answer.lock_mode = Some(LockMode::of(g.shared));
            answer = answer.expiring(g.expires_at, app.tier.now());
        }
        Acquired::Busy {
            retry_after_ms,
            blocked_by,
            blocked_at,
        } => {
            answer.retry_after_ms = Some(*retry_after_ms);
            answer.blocked_by = Some(blocked_by.clone());
            answer.blocked_at = blocked_at.clone();
        }
        Acquired::Deadlock { cycle } => answer.cycle = Some(cycle.clone()),
        Acquired::Blocked(b) => return Ok(blocked_as(k, outcome.state(), *b)),
    }
    Ok(reply(k, &outcome, answer))
}

/// The answer of an extend or release that found no lease of the caller's, or the start of
/// one that did.
fn touched<T>(touch: &Touch<T>, mode: Mode) -> LockAnswer
where
    Touch<T>: Terminal,
{
    LockAnswer {
        state: touch.state(),
        mode: Some(mode.as_str()),
        reason: match touch {
            Touch::Lost(why) => Some(why.as_str()),
            _ => None,
        },
        ..LockAnswer::default()
    }
}

/// Extends a lease held by the caller.
#[utoipa::path(post, path = "/v1/locks/{key}/extend", request_body = ExtendBody,
    params(("key" = String, Path, description = "lock key")))]
pub async fn extend(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<ExtendBody>,
) -> Result<Response, ApiError> {
    let who = owner(&body.owner)?;
    let tok = token("fencing_token", body.fencing_token)?;
    let ttl = in_range("ttl_ms", body.ttl_ms, 1, MAX_TTL_MS)?;
    let key = in_tree(key, body.tree)?;
    let k = key.as_str();
    let (touch, mode) = match app.locks.extend(&key, &who, tok, ttl).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    let mut answer = touched(&touch, mode);
    if let Touch::Done(expires_at) = touch {
        answer.owner = Some(who);
        answer.fencing_token = Some(tok);
        answer = answer.expiring(expires_at, app.tier.now());
    }
    Ok(reply(k, &touch, answer))
}

/// Releases a lease held by the caller.
#[utoipa::path(post, path = "/v1/locks/{key}/release", request_body = ReleaseBody,
    params(("key" = String, Path, description = "lock key")))]
pub async fn release(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    Body(body): Body<ReleaseBody>,
) -> Result<Response, ApiError> {
    let who = owner(&body.owner)?;
    let tok = token("fencing_token", body.fencing_token)?;
    let key = in_tree(key, body.tree)?;
    let k = key.as_str();
    Ok(match app.locks.release(&key, &who, tok).await {
        Ok((touch, mode)) => reply(k, &touch, touched(&touch, mode)),
        Err(b) => blocked(k, b),
    })
}

/// Reads the live lease on a key.
#[utoipa::path(get, path = "/v1/locks/{key}",
    params(ReadQuery, ("key" = String, Path, description = "lock key")))]
pub async fn read(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    QueryOf(q): QueryOf<ReadQuery>,
) -> Result<Response, ApiError> {
    let key = in_tree(key, q.tree)?;
    let k = key.as_str();
    let (read, mode) = match app.locks.get(&key).await {
        Ok(read) => read,
        Err(b) => return Ok(blocked(k, b)),
    };
    let mut answer = LockAnswer {
        state: read.state(),
        mode: Some(mode.as_str()),
        ..LockAnswer::default()
    };
    if let Read::Held(leases) = &read {
        let now = app.tier.now();
        let shared = leases.iter().any(|l| l.shared);
        if let (false, Some(lease)) = (shared, leases.first()) {
            answer.owner = Some(lease.owner.clone());
            answer.fencing_token = Some(lease.token);
            answer = answer.expiring(lease.expires_at, now);
        }
        answer.lock_mode = Some(LockMode::of(shared));
        let holders = leases.iter().map(|l| Holder {
            owner: l.owner.clone(),
            fencing_token: l.token,
            expires_at: rfc3339(l.expires_at),
            ttl_ms_remaining: (l.expires_at - now).max(0),
        });
        answer.holders = Some(holders.collect());
    }
    Ok(reply(k, &read, answer))
}

/// Waits while the caller's lease stays live (long poll): `held` when the wait ends with the
/// lease still the caller's, `lost` with `reason` as soon as it is gone.
#[utoipa::path(get, path = "/v1/locks/{key}/watch", params(WatchQuery,
    ("key" = String, Path, description = "lock key")))]
pub async fn watch(
    State(app): State<AppState>,
    PathKey(key): PathKey,
    QueryOf(q): QueryOf<WatchQuery>,
) -> Result<Response, ApiError> {
    let who = owner(&q.owner)?;
    let tok = token("fencing_token", q.fencing_token)?;
    let wait = in_range("wait_ms", q.wait_ms.unwrap_or(30_000), 0, MAX_WAIT_MS)?;
    let key = in_tree(key, q.tree)?;
    let k = key.as_str();
    let (watched, mode) = match app.locks.watch(&key, &who, tok, wait).await {
        Ok(w) => w,
        Err(b) => return Ok(blocked(k, b)),
    };
    let mut answer = LockAnswer {
        state: watched.state(),
        mode: Some(mode.as_str()),
        owner: Some(who),
        fencing_token: Some(tok),
        ..LockAnswer::default()
    };
    match &watched {
        Watched::Held(lease) => answer = answer.expiring(lease.expires_at, app.tier.now()),
        Watched::Lost(why) => answer.reason = Some(why.as_str()),
        Watched::NotOwner => {}
    }
    Ok(reply(k, &watched, answer))
}

/// Checks a fencing token against a resource, recording the highest.
#[utoipa::path(post, path = "/v1/fences/{resource}/check", request_body = FenceBody,
    params(("resource" = String, Path, description = "fenced resource")))]
pub async fn fence_check(
    State(app): State<AppState>,
    PathKey(resource): PathKey,
    Body(body): Body<FenceBody>,
) -> Result<Response, ApiError> {
    let tok = token("token", body.token)?;
    let r = resource.as_str();
    let outcome = match app.fences.check(&resource, tok).await {
        Ok(outcome) => outcome,
        Err(b) => return Ok(blocked(r, b)),
    };
    answered(r, outcome.state(), Mode::Durable.as_str());
    let highest = match outcome {
        FenceOutcome::Accepted { highest } | FenceOutcome::Stale { highest } => highest,
    };
    let answer = FenceAnswer {
        state: outcome.state(),
        highest,
    };
    Ok((status_of(&outcome), Json(answer)).into_response())
}

/// A `deadlock_priority` as asked (single locks and groups): within ±1 000 000.
pub(super) fn deadlock_priority(value: i64) -> Result<i64, ApiError> {
    in_range("deadlock_priority", value, -1_000_000, 1_000_000)
}
