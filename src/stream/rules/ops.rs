//! What the causal rules are asked and what they answer: the writes a batch carries (intake,
//! commit, timeout, replay, review resolution), their outcomes, the refusal reasons and the
//! replay TTLs. Data only; the decisions are in `rules.rs`.

use crate::store::stream::{Counters, Intent, IntentState, ReviewItem};

/// Review reasons.
pub mod reason {
    /// A parked commit waited longer than the causal wait timeout.
    pub const CAUSAL_TIMEOUT: &str = "causal_timeout";
    /// A replay was asked for an intent older than its type's TTL.
    pub const EXPIRED_REPLAY: &str = "expired_replay";
    /// A parked commit's `expected_version` did not match when its turn came.
    pub const VERSION_CONFLICT: &str = "version_conflict";
    /// A sensitive intent's commit came while the guard was degraded (S-PC-05-001 §8).
    pub const GUARD_DEGRADED: &str = "guard_degraded";
}

pub use crate::config::TtlTable;

/// A new intent as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// Stream.
    pub stream: String,
    /// Client id.
    pub intent_id: String,
    /// Dispatch priority.
    pub priority: i64,
    /// Type.
    pub intent_type: String,
    /// Raw JSON payload.
    pub payload: String,
    /// The correlation of the request that sent it.
    pub correlation: crate::runtime::correlation::Correlation,
    /// Held for review rather than committed while the guard is degraded.
    pub sensitive: bool,
}

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Put the intent back in the dispatch queue (its commit, if parked, is dropped).
    Requeue,
    /// Close the item; change nothing.
    Dismiss,
}

impl Action {
    /// Name stored and accepted.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requeue => "requeue",
            Self::Dismiss => "dismiss",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Requeue, Self::Dismiss]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One step of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Accept an intent (idempotent on `intent_id`).
    Intake(NewIntent),
    /// Commit the intent at `seq`.
    Commit {
        /// Stream.
        stream: String,
        /// Its sequence.
        seq: i64,
        /// Must be the intent at `seq`.
        intent_id: String,
        /// Must equal the stream's version when the commit applies.
        expected_version: Option<i64>,
        /// The guard is degraded: a sensitive intent goes to review instead (§8).
        hold_sensitive: bool,
    },
    /// Send the parked commit at `seq` to review if it waits since `older_than` or earlier.
    Timeout {
        /// Stream.
        stream: String,
        /// Its sequence.
        seq: i64,
        /// Parked at or before this instant, epoch ms.
        older_than: i64,
    },
    /// Authorise a replay of an intent.
    Replay {
        /// Stream.
        stream: String,
        /// Intent.
        intent_id: String,
        /// The stream version the caller's view is of.
        as_of_version: i64,
    },
    /// Resolve a review item.
    Resolve {
        /// Item id.
        id: String,
        /// Its stream and sequence (read before the batch, checked again inside it).
        stream: String,
        /// Its sequence.
        seq: i64,
        /// Decision.
        action: Action,
        /// Who decided.
        actor: String,
        /// Why.
        note: String,
    },
}

/// An op and the instant it was made, epoch ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The op.
    pub op: Op,
    /// When.
    pub now: i64,
}

/// Why a commit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No intent at that sequence.
    UnknownIntent,
    /// The intent at that sequence has another `intent_id`.
    IntentMismatch,
    /// That sequence is already committed.
    AlreadyCommitted,
    /// `expected_version` is not (and can no longer be) the stream's version.
    VersionMismatch,
    /// The intent is held for a human.
    InReview,
    /// The intent is sensitive and the guard degraded: it went to review (§8).
    GuardDegraded,
}

impl Refusal {
    /// Name answered as `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownIntent => "unknown_intent",
            Self::IntentMismatch => "intent_mismatch",
            Self::AlreadyCommitted => "already_committed",
            Self::VersionMismatch => "version_mismatch",
            Self::InReview => "in_review",
            Self::GuardDegraded => "guard_degraded",
        }
    }
}

/// The outcome of one op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Intake: the intent's sequence; `created` is false on a repeat.
    Accepted {
        /// Its sequence.
        seq: i64,
        /// Whether this op created it.
        created: bool,
    },
    /// Intake: `intent_id` exists with another type, priority or payload.
    IntentConflict {
        /// The existing intent's sequence.
        seq: i64,
    },
    /// Commit: applied; the stream's version after it.
    Committed {
        /// Version produced by this commit.
        version: i64,
    },
    /// Commit: parked until its predecessor commits.
    Waiting {
        /// The sequence the stream needs next.
        next_expected: i64,
        /// The commit was already parked by an earlier request (which alone waits for it).
        repeat: bool,
    },
    /// Commit: refused.
    Refused {
        /// Why.
        why: Refusal,
        /// The stream's counters.
        counters: Counters,
    },
    /// Timeout: the parked commit went to review (item id).
    TimedOut(String),
    /// Timeout: nothing to do (it applied, or is younger).
    NotDue,
    /// Replay: authorised; the intent and the stream version.
    Replayed {
        /// The intent (its `replays` counts this one).
        intent: Box<Intent>,
        /// Stream version.
        version: i64,
    },
    /// Replay: the caller's version is not the stream's.
    ReplayConflict {
        /// Stream version.
        version: i64,
    },
    /// Replay: the intent outlived its TTL; the review item holding it.
    Expired {
        /// Review item id.
        review_id: String,
    },
    /// Replay: no such intent.
    UnknownIntent,
    /// Resolve: done (or already done before: `fresh` false).
    Resolved {
        /// The item as it stands.
        item: Box<ReviewItem>,
        /// Whether this op resolved it.
        fresh: bool,
    },
    /// Resolve: no such item.
    UnknownReview,
    /// Resolve: the action does not fit the intent's state.
    ActionRefused {
        /// The intent's state.
        state: IntentState,
    },
}
