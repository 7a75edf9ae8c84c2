//! Cache endpoints (DESIGN §4.8) under `/v1/cache/{ns}`: get, fetch (read-through with
//! leases), put, delete, tag and namespace invalidation, warm and stats. A namespace is
//! `[A-Za-z0-9_.-]{1,64}`; a key is one path segment (`stats`, `warm`, `invalidate` and `tags`
//! name the namespace's own calls); values are any JSON up to `cache.max_value_bytes`.

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::answer::{blocked, status_of};
use super::extract::{in_range, Body, Caller, OptionalBody, QueryOf};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::cache::{Fetch, Put, PutRequest, Read};
use crate::config::CacheSettings;
use crate::outcome::Terminal;
use crate::tier::Mode;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Most entries one warm-up call stores.
pub const MAX_WARM: usize = 1_000;
/// Longest key or tag, bytes.
pub const MAX_NAME: usize = 256;

/// `GET /v1/cache/{ns}/{key}` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// Answer a stale entry (past its TTL, within its stale TTL, or written before a tier
    /// switch) as `stale` rather than `miss`.
    #[serde(default)]
    pub allow_stale: Option<bool>,
}

/// `POST /v1/cache/{ns}/{key}/fetch` body (may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchBody {
    /// The lease this caller gets on a miss, ms (1..=`cache.max_lease_ms`; default
    /// `cache.lease_ms`).
    #[serde(default)]
    pub lease_ms: Option<i64>,
    /// While another caller loads, answer a stale entry rather than `miss_wait`.
    #[serde(default)]
    pub allow_stale: bool,
}

/// `PUT /v1/cache/{ns}/{key}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CachePutBody {
    /// Any JSON, at most `cache.max_value_bytes` as sent.
    #[schema(value_type = serde_json::Value)]
    pub value: Box<RawValue>,
    /// Fresh for this long, ms (1..=`cache.max_ttl_ms`).
    pub ttl_ms: i64,
    /// Then stale for this long, ms (0..=`cache.max_ttl_ms`; default 0).
    #[serde(default)]
    pub stale_ttl_ms: i64,
    /// Tags (at most `cache.max_tags`, each 1..=256 bytes, no line breaks).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The lease the value was loaded under (from `fetch`).
    #[serde(default)]
    pub lease_token: Option<i64>,
    /// How long the value took to compute, ms (early recompute scales with it).
    #[serde(default)]
    pub compute_ms: i64,
}

/// One entry of a warm-up: as in `PUT`, without a lease.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmEntry {
    /// Its key.
    pub key: String,
    /// Any JSON.
    #[schema(value_type = serde_json::Value)]
    pub value: Box<RawValue>,
    /// Fresh for this long, ms.
    pub ttl_ms: i64,
    /// Then stale for this long, ms.
    #[serde(default)]
    pub stale_ttl_ms: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `POST /v1/cache/{ns}/warm` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmBody {
    /// Entries to store (1..=1000).
    pub entries: Vec<WarmEntry>,
}

/// Answer of the cache endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CacheAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    pub mode: &'static str,
    /// The value (`hit`, `stale`, `refresh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Box<RawValue>>,
    /// ms since the value was stored (`hit`, `stale`, `refresh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<i64>,
    /// The lease to store under (`refresh`, `miss_lease`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<i64>,
    /// Ask again after this many ms (`miss_wait`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// Whether the entry is held (`stored`: false while failed over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<bool>,
    /// Entries evicted for the namespace's `max_bytes` (`stored`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evicted: Option<i64>,
    /// Entries stored (`warmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// Answer of `GET /v1/cache/{ns}/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsAnswer {
    /// `stats`.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    pub mode: &'static str,
    /// Fresh reads.
    pub hits: i64,
    /// Reads with nothing usable.
    pub misses: i64,
    /// Stale reads.
    pub stale: i64,
    /// Read-through reads told to wait.
    pub waits: i64,
    /// Leases granted.
    pub leases: i64,
    /// Early recomputes handed out.
    pub refreshes: i64,
    /// Entries evicted for `max_bytes`.
    pub evictions: i64,
    /// Bytes held.
    pub bytes: i64,
    /// The namespace's `max_bytes`.
    pub max_bytes: u64,
    /// Entries held.
    pub entries: i64,
    /// Raw over stored bytes of the values written.
    pub compression_ratio: f64,
}

/// The cache routes (scope `cache`), with bodies up to the largest value.
pub(super) fn routes(cfg: &CacheSettings) -> Vec<Routes> {
    use crate::cache::{Invalidated, Warmed, STATS};
    let answer = "CacheAnswer";
    vec![Routes::new("cache", Need::Scope(Scope::Cache))
        .answer(
            Answers::new("cache_get", Read::STATES, answer),
            routes!(read),
        )
        .answer(
            Answers::new("cache_put", Put::STATES, answer),
            routes!(write),
        )
        .answer(
            Answers::new("cache_delete", Invalidated::STATES, answer),
            routes!(remove),
        )
        .answer(
            Answers::new("cache_fetch", Fetch::STATES, answer),
            routes!(fetch),
        )
        .answer(
            Answers::new("cache_invalidate_tag", Invalidated::STATES, answer),
            routes!(invalidate_tag),
        )
        .answer(
            Answers::new("cache_invalidate_namespace", Invalidated::STATES, answer),
            routes!(invalidate_all),
        )
        .answer(
            Answers::new("cache_warm", Warmed::STATES, answer),
            routes!(warm),
        )
        .answer(
            Answers::new("cache_stats", STATS, "StatsAnswer"),
            routes!(stats),
        )
        .layer(DefaultBodyLimit::max(cfg.max_value_bytes + 64 * 1024))]
}

/// Codes of refused path segments (400).
pub const PATH_CODES: [&str; 2] = ["invalid_namespace", "invalid_tag"];
/// Codes of refused body fields (422), besides the common ones.
pub const BODY_CODES: [&str; 3] = ["invalid_key", "invalid_tag", "too_many_tags"];

fn bad(code: &'static str, title: &'static str, detail: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail)
}

/// A path segment's refusal: 400 with the body refusal's code and detail.
fn in_path(e: ApiError) -> ApiError {
    e.with_status(StatusCode::BAD_REQUEST)
}

fn namespace(ns: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&ns.len())
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        in_path(bad(
            "invalid_namespace",
            "Invalid namespace",
            "a namespace is 1..=64 of A-Z a-z 0-9 _ . -".into(),
        ))
    })
}

/// A key or tag: 1..=256 bytes, no control characters.
fn name(what: &'static str, code: &'static str, raw: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_NAME).contains(&raw.len()) && !raw.chars().any(char::is_control);
    ok.then_some(()).ok_or_else(|| {
        bad(
            code,
            "Invalid name",
            format!("a {what} is 1..={MAX_NAME} bytes without control characters"),
        )
    })
}

/// `/{ns}/{key}` of an entry's calls, both checked (400 when not valid).
pub struct EntryPath(String, String);

impl<S: Send + Sync> FromRequestParts<S> for EntryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((ns, key)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid_key(format!("path: {}", e.body_text())))?;
        namespace(&ns)?;
        name("key", "invalid_key", &key).map_err(in_path)?;
        Ok(Self(ns, key))
    }
}

fn found(state: &'static str, mode: Mode, value: String, age_ms: i64) -> CacheAnswer {
    CacheAnswer {
        state,
        mode: mode.as_str(),
        value: RawValue::from_string(value).ok(),
        age_ms: Some(age_ms),
        ..CacheAnswer::default()
    }
}

/// Reads an entry.
#[utoipa::path(get, path = "/v1/cache/{ns}/{key}", params(GetQuery,
    ("ns" = String, Path, description = "namespace"), ("key" = String, Path, description = "key")))]
pub async fn read(
    State(app): State<AppState>,
    Caller(caller): Caller,
    EntryPath(ns, key): EntryPath,
    QueryOf(q): QueryOf<GetQuery>,
) -> Result<Response, ApiError> {
    let (read, mode) = match app
        .cache
        .get(&caller.tenant, &ns, &key, q.allow_stale.unwrap_or(false))
        .await
    {
        Ok(r) => r,
        Err(b) => return Ok(blocked("cache", b)),
    };
    let state = read.state();
    answered("cache", state, mode.as_str());
    Ok(match read {
        Read::Hit(v, age) | Read::Stale(v, age) => Json(found(state, mode, v, age)).into_response(),
        Read::Miss => state_problem(
            StatusCode::NOT_FOUND,
            state,
            "Miss",
            "no usable entry",
            mode,
        ),
    })
}

/// Reads an entry for a caller who loads it on a miss: at most one caller per key holds the
/// lease to load it.
#[utoipa::path(post, path = "/v1/cache/{ns}/{key}/fetch", request_body = Option<FetchBody>,
    params(("ns" = String, Path, description = "namespace"), ("key" = String, Path, description = "key")))]
pub async fn fetch(
    State(app): State<AppState>,
    Caller(caller): Caller,
    EntryPath(ns, key): EntryPath,
    OptionalBody(body): OptionalBody<FetchBody>,
) -> Result<Response, ApiError> {
    let cfg = app.cache.settings();
    let lease_ms = match body.lease_ms {
        Some(l) => in_range("lease_ms", l, 1, cfg.max_lease_ms as i64)?,
        None => cfg.lease_ms as i64,
    };
    let fetched = app
        .cache
        .fetch(&caller.tenant, &ns, &key, lease_ms, body.allow_stale)
        .await;
    let (f, mode) = match fetched {
        Ok(r) => r,
        Err(b) => return Ok(blocked("cache", b)),
    };
    let (state, status) = (f.state(), status_of(&f));
    answered("cache", state, mode.as_str());
    let answer = match f {
        Fetch::Hit(v, age) | Fetch::Stale(v, age) => found(state, mode, v, age),
        Fetch::Refresh(v, age, token) => CacheAnswer {
            lease_token: Some(token),
            ..found(state, mode, v, age)
        },
        Fetch::MissLease(token) => CacheAnswer {
            state,
            mode: mode.as_str(),
            lease_token: Some(token),
            ..CacheAnswer::default()
        },
        Fetch::MissWait(ms) => CacheAnswer {
            state,
            mode: mode.as_str(),
            retry_after_ms: Some(ms),
            ..CacheAnswer::default()
        },
    };
    Ok((status, Json(answer)).into_response())
}

/// Checks a put's fields against the settings: the request to store.
fn checked(
    cfg: &CacheSettings,
    value: &RawValue,
    (ttl_ms, stale_ttl_ms): (i64, i64),
    tags: &[String],
) -> Result<PutRequest, ApiError> {
    let value = value.get();
    if value.len() > cfg.max_value_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "value_too_large",
            "Value too large",
            format!(
                "the value is {} bytes; the limit is {}",
                value.len(),
                cfg.max_value_bytes
            ),
        ));
    }
    let max_ttl = cfg.max_ttl_ms as i64;
    let ttl_ms = in_range("ttl_ms", ttl_ms, 1, max_ttl)?;
    let stale_ttl_ms = in_range("stale_ttl_ms", stale_ttl_ms, 0, max_ttl)?;
    if tags.len() > cfg.max_tags {
        return Err(bad(
            "too_many_tags",
            "Too many tags",
            format!("at most {} tags per entry", cfg.max_tags),
        ));
    }
    for t in tags {
        name("tag", "invalid_tag", t)?;
    }
    let mut tags = tags.to_vec();
    tags.sort_unstable();
    tags.dedup();
    Ok(PutRequest {
        value: value.to_owned(),
        ttl_ms,
        stale_ttl_ms,
        tags,
        lease_token: None,
        compute_ms: 0,
    })
}

/// Stores an entry; under a lease, only if no delete or invalidation voided it.
#[utoipa::path(put, path = "/v1/cache/{ns}/{key}", request_body = CachePutBody,
    params(("ns" = String, Path, description = "namespace"), ("key" = String, Path, description = "key")))]
pub async fn write(
    State(app): State<AppState>,
    Caller(caller): Caller,
    EntryPath(ns, key): EntryPath,
    Body(body): Body<CachePutBody>,
) -> Result<Response, ApiError> {
    let cfg = app.cache.settings();
    let mut req = checked(
        cfg,
        &body.value,
        (body.ttl_ms, body.stale_ttl_ms),
        &body.tags,
    )?;
    req.lease_token = match body.lease_token {
        Some(t) => Some(in_range("lease_token", t, 1, i64::MAX)?),
        None => None,
    };
    req.compute_ms = in_range("compute_ms", body.compute_ms, 0, cfg.max_ttl_ms as i64)?;
    let (put, mode) = match app.cache.put(&caller.tenant, &ns, &key, &req).await {
        Ok(r) => r,
        Err(b) => return Ok(blocked("cache", b)),
    };
    answered("cache", put.state(), mode.as_str());
    Ok(match put {
        Put::Stored { kept, evicted } => Json(CacheAnswer {
            state: put.state(),
            mode: mode.as_str(),
            kept: Some(kept),
            evicted: Some(evicted),
            ..CacheAnswer::default()
        })
        .into_response(),
        Put::LeaseInvalid => state_problem(
            status_of(&put),
            put.state(),
            "Lease invalid",
            "the lease was voided by a delete or an invalidation, lapsed, or passed to another caller; nothing stored",
            mode,
        ),
    })
}

fn invalidated(r: Result<(crate::cache::Invalidated, Mode), crate::tier::Blocked>) -> Response {
    match r {
        Ok((i, mode)) => {
            answered("cache", i.state(), mode.as_str());
            Json(CacheAnswer {
                state: i.state(),
                mode: mode.as_str(),
                ..CacheAnswer::default()
            })
            .into_response()
        }
        Err(b) => blocked("cache", b),
    }
}

/// Deletes an entry and voids its lease.
#[utoipa::path(delete, path = "/v1/cache/{ns}/{key}",
    params(("ns" = String, Path, description = "namespace"), ("key" = String, Path, description = "key")))]
pub async fn remove(
    State(app): State<AppState>,
    Caller(caller): Caller,
    EntryPath(ns, key): EntryPath,
) -> Result<Response, ApiError> {
    Ok(invalidated(
        app.cache.delete(&caller.tenant, &ns, &key).await,
    ))
}

/// Invalidates every entry with a tag, in O(1).
#[utoipa::path(post, path = "/v1/cache/{ns}/tags/{tag}/invalidate",
    params(("ns" = String, Path, description = "namespace"), ("tag" = String, Path, description = "tag")))]
pub async fn invalidate_tag(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path((ns, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    namespace(&ns)?;
    name("tag", "invalid_tag", &tag).map_err(in_path)?;
    let r = app.cache.invalidate(&caller.tenant, &ns, Some(&tag)).await;
    Ok(invalidated(r))
}

/// Invalidates a whole namespace, in O(1).
#[utoipa::path(post, path = "/v1/cache/{ns}/invalidate",
    params(("ns" = String, Path, description = "namespace")))]
pub async fn invalidate_all(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    namespace(&ns)?;
    let r = app.cache.invalidate(&caller.tenant, &ns, None).await;
    Ok(invalidated(r))
}

/// Stores many entries without leases (cache warming).
#[utoipa::path(post, path = "/v1/cache/{ns}/warm", request_body = WarmBody,
    params(("ns" = String, Path, description = "namespace")))]
pub async fn warm(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(ns): Path<String>,
    Body(body): Body<WarmBody>,
) -> Result<Response, ApiError> {
    namespace(&ns)?;
    if body.entries.is_empty() || body.entries.len() > MAX_WARM {
        return Err(ApiError::out_of_range(
            "entries",
            &format!("1..={MAX_WARM} entries"),
        ));
    }
    let cfg = app.cache.settings();
    let mut entries = Vec::with_capacity(body.entries.len());
    for e in &body.entries {
        name("key", "invalid_key", &e.key)?;
        let req = checked(cfg, &e.value, (e.ttl_ms, e.stale_ttl_ms), &e.tags)?;
        entries.push((e.key.clone(), req));
    }
    let (w, mode) = match app.cache.warm(&caller.tenant, &ns, &entries).await {
        Ok(r) => r,
        Err(b) => return Ok(blocked("cache", b)),
    };
    answered("cache", w.state(), mode.as_str());
    Ok(Json(CacheAnswer {
        state: w.state(),
        mode: mode.as_str(),
        count: Some(w.0),
        ..CacheAnswer::default()
    })
    .into_response())
}

/// A namespace's counters and size.
#[utoipa::path(get, path = "/v1/cache/{ns}/stats",
    params(("ns" = String, Path, description = "namespace")))]
pub async fn stats(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    namespace(&ns)?;
    let (s, mode) = match app.cache.stats(&caller.tenant, &ns).await {
        Ok(r) => r,
        Err(b) => return Ok(blocked("cache", b)),
    };
    answered("cache", "stats", mode.as_str());
    let c = &s.counts;
    let scoped = format!("{}/{ns}", caller.tenant);
    Ok(Json(StatsAnswer {
        state: "stats",
        mode: mode.as_str(),
        hits: c.hits,
        misses: c.misses,
        stale: c.stale,
        waits: c.waits,
        leases: c.leases,
        refreshes: c.refreshes,
        evictions: c.evictions,
        bytes: c.bytes,
        max_bytes: app.cache.settings().max_bytes_of(&scoped),
        entries: c.entries,
        compression_ratio: s.compression_ratio,
    })
    .into_response())
}
