//! The table of operations whose answers are outcome enums: each path and method with the
//! states it can answer, from the same `Terminal::STATES` the handlers answer with.

use utoipa::openapi::path::HttpMethod;

use crate::access::{Created, Listed, Revoked};
use crate::cache::{Fetch, Invalidated, Put, Read as CacheRead, Warmed};
use crate::fence::FenceOutcome;
use crate::guard::outcome::EVIDENCE_STATES;
use crate::guard::{
    AuditPage, ByIdEvent, Found, GuardMove, IncidentEvent, Noted, Recorded, Verified,
};
use crate::idem::{Begun, Finished};
use crate::kv::{KvDelete, KvPut, KvRead};
use crate::lock::{Acquired, GroupAcquired, Read, Touch, Watched};
use crate::outcome::{StateDoc, Terminal};
use crate::ratelimit::{Checked, Looked, OverrideSaved, PolicyRead, PolicySaved};
use crate::reserve::{ReservedOnce, Settled, StockRead, TotalSet};
use crate::semaphore::{PermitAcquired, SemaphoreRead};
use crate::session::{
    SessionCreated, SessionRead, SessionRevoked, SessionRotated, SessionSaved, SessionTouch,
    EVENTS, LISTED,
};
use crate::stream::{
    Claimed, Committed, Intake, Read as StreamRead, Replay, Resolution, ReviewPage,
};

/// An operation whose answers are an outcome enum's states.
pub(super) struct Documented {
    pub(super) path: &'static str,
    pub(super) method: HttpMethod,
    /// Every state the operation can answer (a safe block aside).
    pub(super) states: &'static [StateDoc],
    /// The schema of its JSON answers.
    pub(super) schema: &'static str,
    /// Whether a safe block (503) may come instead.
    pub(super) may_block: bool,
}

/// A POST answering `states` as `schema`, or a safe block.
const fn post(path: &'static str, states: &'static [StateDoc], schema: &'static str) -> Documented {
    Documented {
        path,
        method: HttpMethod::Post,
        states,
        schema,
        may_block: true,
    }
}

/// The same with another method.
const fn with(method: HttpMethod, doc: Documented) -> Documented {
    Documented { method, ..doc }
}

/// The one state of a cache namespace's stats.
const STATS: &[StateDoc] = &[StateDoc::json(
    "stats",
    200,
    "counters, `bytes`, `entries`, `compression_ratio`",
)];

/// The operations whose answers are outcome enums.
pub(super) const OUTCOMES: &[Documented] = &[
    Documented {
        may_block: false, // its own safe-block state is one of its outcome's
        ..post("/v1/locks/{key}/acquire", Acquired::STATES, "LockAnswer")
    },
    post("/v1/locks/{key}/extend", <Touch<i64>>::STATES, "LockAnswer"),
    post("/v1/locks/{key}/release", <Touch<()>>::STATES, "LockAnswer"),
    with(
        HttpMethod::Get,
        post("/v1/locks/{key}", Read::STATES, "LockAnswer"),
    ),
    with(
        HttpMethod::Get,
        post("/v1/locks/{key}/watch", Watched::STATES, "LockAnswer"),
    ),
    Documented {
        may_block: false, // its own safe-block state is one of its outcome's
        ..post(
            "/v1/semaphores/{name}/acquire",
            PermitAcquired::STATES,
            "SemaphoreAnswer",
        )
    },
    post(
        "/v1/semaphores/{name}/permits/{id}/extend",
        <Touch<i64>>::STATES,
        "SemaphoreAnswer",
    ),
    post(
        "/v1/semaphores/{name}/permits/{id}/release",
        <Touch<()>>::STATES,
        "SemaphoreAnswer",
    ),
    with(
        HttpMethod::Get,
        post(
            "/v1/semaphores/{name}",
            SemaphoreRead::STATES,
            "SemaphoreAnswer",
        ),
    ),
    Documented {
        may_block: false, // its own safe-block state is one of its outcome's
        ..post(
            "/v1/lock-groups/acquire",
            GroupAcquired::STATES,
            "LockGroupAnswer",
        )
    },
    post(
        "/v1/lock-groups/{id}/extend",
        <Touch<i64>>::STATES,
        "LockGroupAnswer",
    ),
    post(
        "/v1/lock-groups/{id}/release",
        <Touch<()>>::STATES,
        "LockGroupAnswer",
    ),
    post(
        "/v1/fences/{resource}/check",
        FenceOutcome::STATES,
        "FenceAnswer",
    ),
    post("/v1/idempotency/{key}/begin", Begun::STATES, "IdemAnswer"),
    post(
        "/v1/idempotency/{key}/complete",
        Finished::COMPLETE_STATES,
        "IdemAnswer",
    ),
    post(
        "/v1/idempotency/{key}/fail",
        Finished::FAIL_STATES,
        "IdemAnswer",
    ),
    post(
        "/v1/idempotency/{key}/extend",
        Finished::EXTEND_STATES,
        "IdemAnswer",
    ),
    with(
        HttpMethod::Put,
        post("/v1/inventory/{sku}", TotalSet::STATES, "StockAnswer"),
    ),
    post(
        "/v1/inventory/{sku}/reservations",
        ReservedOnce::STATES,
        "ReservationAnswer",
    ),
    post(
        "/v1/reservations/{id}/confirm",
        Settled::CONFIRM_STATES,
        "ReservationAnswer",
    ),
    post(
        "/v1/reservations/{id}/release",
        Settled::RELEASE_STATES,
        "ReservationAnswer",
    ),
    post(
        "/v1/streams/{stream}/commits",
        Committed::STATES,
        "StreamAnswer",
    ),
    post(
        "/v1/streams/{stream}/intents",
        Intake::STATES,
        "StreamAnswer",
    ),
    with(
        HttpMethod::Get,
        post("/v1/inventory/{sku}", StockRead::STATES, "StockAnswer"),
    ),
    post(
        "/v1/streams/{stream}/intents/{intent_id}/replay",
        Replay::STATES,
        "StreamAnswer",
    ),
    with(
        HttpMethod::Get,
        post("/v1/streams/{stream}", StreamRead::STATES, "StreamAnswer"),
    ),
    post("/v1/dispatch/claim", Claimed::STATES, "StreamAnswer"),
    with(
        HttpMethod::Get,
        post("/v1/review", ReviewPage::STATES, "ReviewAnswer"),
    ),
    post(
        "/v1/review/{id}/resolve",
        Resolution::STATES,
        "ReviewAnswer",
    ),
    post("/v1/tokens", Created::STATES, "TokenAnswer"),
    with(
        HttpMethod::Get,
        post("/v1/tokens", Listed::STATES, "TokenList"),
    ),
    with(
        HttpMethod::Delete,
        post("/v1/tokens/{id}", Revoked::STATES, "TokenAnswer"),
    ),
    post("/v1/incidents", IncidentEvent::STATES, "IncidentAnswer"),
    post(
        "/v1/alerts/alertmanager",
        IncidentEvent::STATES,
        "IncidentAnswer",
    ),
    with(
        HttpMethod::Get,
        post("/v1/incidents", Found::STATES, "IncidentAnswer"),
    ),
    with(
        HttpMethod::Get,
        post("/v1/incidents/{id}", Found::STATES, "IncidentAnswer"),
    ),
    post(
        "/v1/incidents/{id}/ack",
        ByIdEvent::STATES,
        "IncidentAnswer",
    ),
    post(
        "/v1/incidents/{id}/resolve",
        ByIdEvent::STATES,
        "IncidentAnswer",
    ),
    post("/v1/incidents/{id}/notes", Noted::STATES, "IncidentAnswer"),
    with(
        HttpMethod::Get,
        post(
            "/v1/incidents/{id}/evidence",
            EVIDENCE_STATES,
            "IncidentAnswer",
        ),
    ),
    with(
        HttpMethod::Get,
        post("/v1/guard", GuardMove::STATES, "GuardAnswer"),
    ),
    post("/v1/guard/enter", GuardMove::STATES, "GuardAnswer"),
    post(
        "/v1/guard/recovery-actions",
        Recorded::STATES,
        "GuardAnswer",
    ),
    post("/v1/guard/exit", GuardMove::STATES, "GuardAnswer"),
    with(
        HttpMethod::Get,
        post("/v1/audit", AuditPage::STATES, "AuditAnswer"),
    ),
    with(
        HttpMethod::Get,
        post("/v1/audit/verify", Verified::STATES, "AuditAnswer"),
    ),
    with(
        HttpMethod::Put,
        post(
            "/v1/ratelimit/policies/{policy}",
            PolicySaved::STATES,
            "PolicyAnswer",
        ),
    ),
    with(
        HttpMethod::Get,
        post(
            "/v1/ratelimit/policies/{policy}",
            PolicyRead::STATES,
            "PolicyAnswer",
        ),
    ),
    with(
        HttpMethod::Put,
        post(
            "/v1/ratelimit/policies/{policy}/overrides/{subject}",
            OverrideSaved::STATES,
            "PolicyAnswer",
        ),
    ),
    Documented {
        may_block: false, // its own safe-block state is one of its outcome's
        ..post(
            "/v1/ratelimit/{policy}/{subject}/check",
            Checked::STATES,
            "RateLimitAnswer",
        )
    },
    with(
        HttpMethod::Get,
        post(
            "/v1/ratelimit/{policy}/{subject}",
            Looked::PEEK_STATES,
            "RateLimitAnswer",
        ),
    ),
    post(
        "/v1/ratelimit/{policy}/{subject}/reset",
        Looked::RESET_STATES,
        "RateLimitAnswer",
    ),
    post(
        "/v1/ratelimit/{policy}/{subject}/refund",
        Looked::REFUND_STATES,
        "RateLimitAnswer",
    ),
    with(
        HttpMethod::Get,
        post("/v1/kv/{key}", KvRead::STATES, "KvAnswer"),
    ),
    with(
        HttpMethod::Put,
        post("/v1/kv/{key}", KvPut::STATES, "KvAnswer"),
    ),
    with(
        HttpMethod::Delete,
        post("/v1/kv/{key}", KvDelete::STATES, "KvAnswer"),
    ),
    with(
        HttpMethod::Get,
        post("/v1/cache/{ns}/{key}", CacheRead::STATES, "CacheAnswer"),
    ),
    post("/v1/cache/{ns}/{key}/fetch", Fetch::STATES, "CacheAnswer"),
    with(
        HttpMethod::Put,
        post("/v1/cache/{ns}/{key}", Put::STATES, "CacheAnswer"),
    ),
    with(
        HttpMethod::Delete,
        post("/v1/cache/{ns}/{key}", Invalidated::STATES, "CacheAnswer"),
    ),
    post(
        "/v1/cache/{ns}/tags/{tag}/invalidate",
        Invalidated::STATES,
        "CacheAnswer",
    ),
    post(
        "/v1/cache/{ns}/invalidate",
        Invalidated::STATES,
        "CacheAnswer",
    ),
    post("/v1/cache/{ns}/warm", Warmed::STATES, "CacheAnswer"),
    with(
        HttpMethod::Get,
        post("/v1/cache/{ns}/stats", STATS, "StatsAnswer"),
    ),
    post("/v1/sessions", SessionCreated::STATES, "SessionAnswer"),
    with(
        HttpMethod::Get,
        post("/v1/sessions/{id}", SessionRead::STATES, "SessionAnswer"),
    ),
    post(
        "/v1/sessions/{id}/touch",
        SessionTouch::STATES,
        "SessionAnswer",
    ),
    with(
        HttpMethod::Put,
        post("/v1/sessions/{id}", SessionSaved::STATES, "SessionAnswer"),
    ),
    with(
        HttpMethod::Patch,
        post("/v1/sessions/{id}", SessionSaved::STATES, "SessionAnswer"),
    ),
    post(
        "/v1/sessions/{id}/rotate",
        SessionRotated::STATES,
        "SessionAnswer",
    ),
    with(
        HttpMethod::Delete,
        post("/v1/sessions/{id}", SessionRevoked::STATES, "SessionAnswer"),
    ),
    with(
        HttpMethod::Delete,
        post(
            "/v1/principals/{principal}/sessions",
            SessionRevoked::STATES,
            "SessionAnswer",
        ),
    ),
    with(
        HttpMethod::Get,
        post("/v1/principals/{principal}/sessions", LISTED, "SessionPage"),
    ),
    with(
        HttpMethod::Get,
        post("/v1/sessions/events", EVENTS, "SessionPage"),
    ),
];
