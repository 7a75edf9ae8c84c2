//! Causal stream endpoints (DESIGN §4 "Causal streams and replay"): intake, dispatch, causal
//! commit, replay and stream state. Everything is validated before the domain is called, so a
//! malformed request assigns no sequence and parks nothing. Payloads are kept as raw JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::answer::{blocked, status_of};
use super::extract::{identity, in_range, Body, Caller, PathKey, PathKeys};
use super::observe::answered;
use super::problem::{state_problem, ApiError};
use super::AppState;
use crate::key::{name_of, prefix};
use crate::outcome::Terminal;
use crate::runtime::clock::rfc3339;
use crate::stream::rules::NewIntent;
use crate::stream::{
    CommitRequest, Committed, Intake, Read, Replay, MAX_CLAIM, MAX_LEASE_MS, MAX_PRIORITY,
    MAX_TYPE_BYTES, MAX_WAIT_MS,
};
use crate::stream::{Counters, Intent};
use crate::token::MAX_TOKEN;
use utoipa_axum::routes;

use super::auth::Need;
use super::routes::{Answers, Routes};
use crate::access::Scope;

/// Dispatch lease when none is given, ms.
const DEFAULT_LEASE_MS: i64 = 30_000;

/// `POST /v1/streams/{stream}/intents` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntakeBody {
    /// Client id of the intent, unique per stream (1–512 bytes); a repeat returns the same
    /// `commit_sequence`.
    pub intent_id: String,
    /// Dispatch priority, higher first (default 0, |p| ≤ 2^31 - 1). Never changes the order of
    /// commits.
    #[serde(default)]
    pub dispatch_priority: i64,
    /// Type (1–128 bytes); selects the replay TTL.
    pub intent_type: String,
    /// Any JSON, handed to the worker as sent.
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<Box<RawValue>>,
    /// A sensitive side effect (a message, a booking, a charge): while the guard is
    /// `degraded` its commit is refused (409 `guard_degraded`) and it goes to manual review.
    #[serde(default)]
    pub sensitive: bool,
}

/// `POST /v1/dispatch/claim` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClaimBody {
    /// Worker identity (1–512 bytes).
    pub worker: String,
    /// Most intents to lease, 1..=1000 (default 1).
    #[serde(default = "one")]
    pub limit: i64,
    /// Lease in ms, 1..=3 600 000 (default 30 000); an intent whose lease runs out is dispatched
    /// again.
    #[serde(default = "default_lease")]
    pub lease_ms: i64,
}

fn one() -> i64 {
    1
}

fn default_lease() -> i64 {
    DEFAULT_LEASE_MS
}

/// `POST /v1/streams/{stream}/commits` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommitBody {
    /// The sequence being committed.
    pub commit_sequence: i64,
    /// The intent at that sequence.
    pub intent_id: String,
    /// When given, the commit applies only if the stream is at this version then.
    #[serde(default)]
    pub expected_version: Option<i64>,
    /// Wait up to this long (ms, at most 60 000) for the previous commit.
    #[serde(default)]
    pub wait_ms: i64,
}

/// `POST /v1/streams/{stream}/intents/{intent_id}/replay` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplayBody {
    /// The stream version the caller's view of the intent is of.
    pub as_of_version: i64,
}

/// An intent handed to a worker (or replayed).
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentView {
    /// Stream.
    pub stream: String,
    /// Intent id.
    pub intent_id: String,
    /// Position in the stream's commit order.
    pub commit_sequence: i64,
    /// Dispatch priority.
    pub dispatch_priority: i64,
    /// Type.
    pub intent_type: String,
    /// The payload as sent.
    #[schema(value_type = serde_json::Value)]
    pub payload: Box<RawValue>,
    /// Arrival, RFC 3339 UTC.
    pub arrived_at: String,
    /// End of the dispatch lease (claims), RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
    /// The `X-Correlation-Id` of the request that took it in: carry it on.
    pub correlation_id: String,
    /// That request's W3C `traceparent`, if it sent one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub traceparent: String,
}

/// A parked commit in a stream's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingCommit {
    /// Its sequence.
    pub commit_sequence: i64,
    /// Its intent.
    pub intent_id: String,
    /// Parked since, RFC 3339 UTC.
    pub waiting_since: String,
}

/// Answer of the stream endpoints.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StreamAnswer {
    /// Terminal state.
    pub state: &'static str,
    /// Which tier served it and why: `primary` (Redis), `fallback` (SQL because of the tier), `durable` (SQL by design, on any tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Intent id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_id: Option<String>,
    /// The intent's sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_sequence: Option<i64>,
    /// Stream version (after the commit, for `committed_causal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The sequence the stream needs next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_expected: Option<i64>,
    /// Last committed sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_committed: Option<i64>,
    /// The sequence the next intent will get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_sequence: Option<i64>,
    /// Why a commit was blocked: `already_committed`, `intent_mismatch`, `unknown_intent`,
    /// `version_mismatch` or `in_review`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The review item holding the intent (`expired_manual`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_id: Option<String>,
    /// Parked commits (stream state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Vec<WaitingCommit>>,
    /// Leased intents (claims).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intents: Option<Vec<IntentView>>,
    /// The replayed intent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentView>,
}

/// The stream and dispatch routes (scope `streams`).
pub(super) fn routes() -> Vec<Routes> {
    use crate::stream::{Claimed, Committed, Intake, Read, Replay};
    let answer = "StreamAnswer";
    vec![Routes::new("streams", Need::Scope(Scope::Streams))
        .answer(
            Answers::new("stream_intake", Intake::STATES, answer),
            routes!(intake),
        )
        .answer(
            Answers::new("stream_commit", Committed::STATES, answer),
            routes!(commit),
        )
        .answer(
            Answers::new("stream_replay", Replay::STATES, answer),
            routes!(replay),
        )
        .answer(
            Answers::new("stream_get", Read::STATES, answer),
            routes!(read),
        )
        .answer(
            Answers::new("dispatch_claim", Claimed::STATES, answer),
            routes!(claim),
        )]
}

fn answer(key: &str, outcome: &impl Terminal, a: StreamAnswer) -> Response {
    answered(key, a.state, a.mode.unwrap_or("none"));
    (status_of(outcome), Json(a)).into_response()
}

fn view(i: Intent, leased: bool) -> IntentView {
    let payload = RawValue::from_string(i.payload).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored payload is not JSON");
        RawValue::from_string("null".into()).expect("null is JSON")
    });
    IntentView {
        lease_expires_at: leased.then(|| rfc3339(i.lease_until)),
        stream: name_of(&i.stream).to_owned(),
        intent_id: i.intent_id,
        commit_sequence: i.seq,
        dispatch_priority: i.priority,
        intent_type: i.intent_type,
        payload,
        arrived_at: rfc3339(i.arrived_at),
        correlation_id: i.correlation.id,
        traceparent: i.correlation.traceparent,
    }
}

fn counters(a: StreamAnswer, c: Counters) -> StreamAnswer {
    StreamAnswer {
        last_committed: Some(c.last_committed),
        version: Some(c.version),
        next_expected: Some(c.last_committed + 1),
        ..a
    }
}

fn intent_id(raw: &str) -> Result<String, ApiError> {
    identity("intent_id", "invalid_intent_id", "Invalid intent id", raw)
}

/// Accepts an intent and assigns its `commit_sequence`.
#[utoipa::path(post, path = "/v1/streams/{stream}/intents", request_body = IntakeBody,
    params(("stream" = String, Path, description = "stream (e.g. one contact)")))]
pub async fn intake(
    State(app): State<AppState>,
    PathKey(stream): PathKey,
    Body(body): Body<IntakeBody>,
) -> Result<Response, ApiError> {
    let id = intent_id(&body.intent_id)?;
    let ty = identity(
        "intent_type",
        "invalid_intent_type",
        "Invalid intent type",
        &body.intent_type,
    )?;
    if ty.len() > MAX_TYPE_BYTES {
        return Err(ApiError::out_of_range("intent_type", "1..=128 bytes"));
    }
    let priority = in_range(
        "dispatch_priority",
        body.dispatch_priority,
        -MAX_PRIORITY,
        MAX_PRIORITY,
    )?;
    let payload = body
        .payload
        .map_or_else(|| "null".to_owned(), |p| String::from(Box::<str>::from(p)));
    let k = stream.as_str();
    let n = NewIntent {
        stream: k.to_owned(),
        intent_id: id.clone(),
        priority,
        intent_type: ty,
        payload,
        sensitive: body.sensitive,
        correlation: crate::runtime::correlation::Correlation {
            id: crate::runtime::correlation::current(),
            traceparent: crate::runtime::correlation::traceparent(),
        },
    };
    let (intake, mode) = match app.streams.intake(n).await {
        Ok(done) => done,
        Err(b) => return Ok(blocked(k, b)),
    };
    Ok(match intake {
        Intake::Accepted { seq, .. } => {
            let a = StreamAnswer {
                state: intake.state(),
                mode: Some(mode.as_str()),
                stream: Some(k.to_owned()),
                intent_id: Some(id),
                commit_sequence: Some(seq),
                ..StreamAnswer::default()
            };
            answer(k, &intake, a)
        }
        Intake::Conflict { seq } => {
            answered(k, intake.state(), mode.as_str());
            state_problem(
                status_of(&intake),
                intake.state(),
                "Intent conflict",
                format!("intent_id {id} is sequence {seq} of this stream, with another type, priority or payload"),
                mode,
            )
        }
    })
}

/// Leases ready intents to a worker: priority (highest first), then arrival.
#[utoipa::path(post, path = "/v1/dispatch/claim", request_body = ClaimBody)]
pub async fn claim(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<ClaimBody>,
) -> Result<Response, ApiError> {
    let worker = identity("worker", "invalid_worker", "Invalid worker", &body.worker)?;
    let limit = in_range("limit", body.limit, 1, MAX_CLAIM)?;
    let lease = in_range("lease_ms", body.lease_ms, 1, MAX_LEASE_MS)?;
    Ok(
        match app
            .streams
            .claim(&worker, limit, lease, &prefix(&caller.tenant))
            .await
        {
            Ok((claimed, mode)) => {
                let a = StreamAnswer {
                    state: claimed.state(),
                    mode: Some(mode.as_str()),
                    intents: Some(claimed.0.into_iter().map(|i| view(i, true)).collect()),
                    ..StreamAnswer::default()
                };
                answered(&worker, a.state, a.mode.unwrap_or("none"));
                (StatusCode::OK, Json(a)).into_response()
            }
            Err(b) => blocked(&worker, b),
        },
    )
}

/// Commits an intent in causal order.
#[utoipa::path(post, path = "/v1/streams/{stream}/commits", request_body = CommitBody,
    params(("stream" = String, Path, description = "stream")))]
pub async fn commit(
    State(app): State<AppState>,
    PathKey(stream): PathKey,
    Body(body): Body<CommitBody>,
) -> Result<Response, ApiError> {
    let req = CommitRequest {
        stream: stream.name().to_owned(),
        seq: in_range("commit_sequence", body.commit_sequence, 1, MAX_TOKEN)?,
        intent_id: intent_id(&body.intent_id)?,
        expected_version: body
            .expected_version
            .map(|v| in_range("expected_version", v, 0, MAX_TOKEN))
            .transpose()?,
        wait_ms: in_range("wait_ms", body.wait_ms, 0, MAX_WAIT_MS)?,
    };
    let k = stream.as_str();
    let (committed, mode) = match app.streams.commit(&req).await {
        Ok(r) => r,
        Err(b) => return Ok(blocked(k, b)),
    };
    let base = StreamAnswer {
        mode: Some(mode.as_str()),
        stream: Some(req.stream.clone()),
        intent_id: Some(req.intent_id.clone()),
        commit_sequence: Some(req.seq),
        ..StreamAnswer::default()
    };
    let mut a = StreamAnswer {
        state: committed.state(),
        ..base
    };
    match &committed {
        Committed::Causal { version } => {
            a.version = Some(*version);
            a.last_committed = Some(req.seq);
        }
        Committed::Waiting { next_expected } => a.next_expected = Some(*next_expected),
        Committed::Blocked { why, counters: c } => {
            a.reason = Some(why.as_str());
            a = counters(a, *c);
        }
    }
    answered(k, a.state, a.mode.unwrap_or("none"));
    Ok((status_of(&committed), Json(a)).into_response())
}

/// Authorises a replay: TTL first, then the version, both before any effect.
#[utoipa::path(post, path = "/v1/streams/{stream}/intents/{intent_id}/replay", request_body = ReplayBody,
    params(("stream" = String, Path, description = "stream"), ("intent_id" = String, Path, description = "intent")))]
pub async fn replay(
    State(app): State<AppState>,
    PathKeys(stream, id): PathKeys,
    Body(body): Body<ReplayBody>,
) -> Result<Response, ApiError> {
    let as_of = in_range("as_of_version", body.as_of_version, 0, MAX_TOKEN)?;
    let k = stream.as_str();
    let (replay, mode) = match app.streams.replay(k, id.as_str(), as_of).await {
        Ok(r) => r,
        Err(b) => return Ok(blocked(k, b)),
    };
    let mut a = StreamAnswer {
        state: replay.state(),
        mode: Some(mode.as_str()),
        stream: Some(k.to_owned()),
        intent_id: Some(id.as_str().to_owned()),
        ..StreamAnswer::default()
    };
    match &replay {
        Replay::Replayed { intent, version } => {
            a.version = Some(*version);
            a.commit_sequence = Some(intent.seq);
            a.intent = Some(view((**intent).clone(), false));
        }
        Replay::Conflict { version } => a.version = Some(*version),
        Replay::Expired { review_id } => a.review_id = Some(review_id.clone()),
        Replay::Unknown => {
            answered(k, replay.state(), mode.as_str());
            return Ok(state_problem(
                status_of(&replay),
                replay.state(),
                "Unknown intent",
                "no intent with this id in this stream",
                mode,
            ));
        }
    }
    Ok(answer(k, &replay, a))
}

/// A stream's counters and parked commits.
#[utoipa::path(get, path = "/v1/streams/{stream}",
    params(("stream" = String, Path, description = "stream")))]
pub async fn read(State(app): State<AppState>, PathKey(stream): PathKey) -> Response {
    let k = stream.as_str();
    let (read, mode) = match app.streams.state(k).await {
        Ok(r) => r,
        Err(b) => return blocked(k, b),
    };
    let Read::Found(st) = &read else {
        answered(k, read.state(), mode.as_str());
        return state_problem(
            status_of(&read),
            read.state(),
            "Unknown stream",
            "no intent was ever accepted on this stream",
            mode,
        );
    };
    let waiting = st
        .waiting
        .iter()
        .map(|i| WaitingCommit {
            commit_sequence: i.seq,
            intent_id: i.intent_id.clone(),
            waiting_since: rfc3339(i.waiting_since),
        })
        .collect();
    let a = StreamAnswer {
        state: read.state(),
        mode: Some(mode.as_str()),
        stream: Some(k.to_owned()),
        next_sequence: Some(st.counters.assigned + 1),
        last_committed: Some(st.counters.last_committed),
        version: Some(st.counters.version),
        waiting: Some(waiting),
        ..StreamAnswer::default()
    };
    answer(k, &read, a)
}
