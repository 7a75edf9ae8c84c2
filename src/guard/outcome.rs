//! The terminal states of incidents, the guard and the audit trail, each with its HTTP status,
//! in one place.

use crate::audit::{Broken, Sealed};
use crate::outcome::{StateDoc, Terminal};
use crate::store::guard::{GuardRow, Incident, RecoveryAction};

use super::rules::Missing;

/// The answer to an incident event (`POST /v1/incidents`, Alertmanager, ack, resolve).
#[derive(Debug, Clone)]
pub enum IncidentEvent {
    /// A new incident was opened.
    Triggered(Incident),
    /// A trigger for a key already open: folded into that incident.
    Deduplicated(Incident),
    /// Acknowledged (now or before: idempotent).
    Acknowledged(Incident),
    /// Resolved (now or before).
    Resolved(Incident),
    /// An acknowledgement after the resolution: the resolution stands.
    AlreadyResolved(Incident),
    /// No incident with this id or open key.
    Unknown,
}

impl IncidentEvent {
    /// The incident concerned, if any.
    pub fn incident(&self) -> Option<&Incident> {
        match self {
            Self::Triggered(i)
            | Self::Deduplicated(i)
            | Self::Acknowledged(i)
            | Self::Resolved(i)
            | Self::AlreadyResolved(i) => Some(i),
            Self::Unknown => None,
        }
    }
}

impl Terminal for IncidentEvent {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "triggered",
            202,
            "a new incident was opened and its owners notified",
        ),
        StateDoc::json(
            "deduplicated",
            202,
            "an incident with this dedup_key is open: the trigger was folded into it",
        ),
        StateDoc::json(
            "acknowledged",
            202,
            "acknowledged (a repeat acknowledgement answers the same); escalation stopped",
        ),
        StateDoc::json("resolved", 202, "resolved; escalation stopped"),
        StateDoc::problem(
            "already_resolved",
            409,
            "the incident was resolved before this acknowledgement: the resolution stands",
        ),
        StateDoc::problem("unknown_incident", 404, "no such incident"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Triggered(_) => "triggered",
            Self::Deduplicated(_) => "deduplicated",
            Self::Acknowledged(_) => "acknowledged",
            Self::Resolved(_) => "resolved",
            Self::AlreadyResolved(_) => "already_resolved",
            Self::Unknown => "unknown_incident",
        }
    }
}

/// The answer to an acknowledgement or resolution by id (`POST /v1/incidents/{id}/ack`,
/// `/resolve`): 200 rather than the 202 of the event intake.
#[derive(Debug, Clone)]
pub struct ByIdEvent(pub IncidentEvent);

impl Terminal for ByIdEvent {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "acknowledged",
            200,
            "acknowledged (a repeat acknowledgement answers the same); escalation stopped",
        ),
        StateDoc::json("resolved", 200, "resolved; escalation stopped"),
        StateDoc::problem(
            "already_resolved",
            409,
            "the incident was resolved before this acknowledgement: the resolution stands",
        ),
        StateDoc::problem("unknown_incident", 404, "no such incident"),
    ];

    fn state(&self) -> &'static str {
        self.0.state()
    }
}

/// A note on an incident.
#[derive(Debug, Clone)]
pub enum Noted {
    /// Recorded.
    Noted(Box<Incident>),
    /// No such incident.
    Unknown,
}

impl Terminal for Noted {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("noted", 200, "the note is recorded and audited"),
        StateDoc::problem("unknown_incident", 404, "no such incident"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Noted(_) => "noted",
            Self::Unknown => "unknown_incident",
        }
    }
}

/// One incident, or a list.
#[derive(Debug, Clone)]
pub enum Found {
    /// The incident with its notifications.
    One(Box<Incident>),
    /// Incidents, newest first.
    Many(Vec<Incident>),
    /// No such incident.
    Unknown,
}

impl Terminal for Found {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("incident", 200, "the incident"),
        StateDoc::json("incidents", 200, "incidents, newest first"),
        StateDoc::problem("unknown_incident", 404, "no such incident"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::One(_) => "incident",
            Self::Many(_) => "incidents",
            Self::Unknown => "unknown_incident",
        }
    }
}

/// The guard, as `GET /v1/guard` and the moves answer it.
#[derive(Debug, Clone)]
pub struct GuardView {
    /// The guard row.
    pub row: GuardRow,
    /// Incidents of the episode still unacknowledged.
    pub unacked: Vec<String>,
    /// Recovery actions of the episode.
    pub recoveries: Vec<RecoveryAction>,
    /// Green still needed before the exit, ms (while recovering).
    pub green_left_ms: Option<i64>,
}

/// The answer to a guard read or move.
#[derive(Debug, Clone)]
pub enum GuardMove {
    /// The guard as it stands (a read).
    Read(GuardView),
    /// In safe mode (entered now or before).
    SafeMode(GuardView),
    /// Side effects go on (exited, or never entered).
    Normal(GuardView),
    /// Every exit condition but the green window is met: the window runs.
    ExitArmed(GuardView),
    /// Not all exit conditions are met.
    Unmet(GuardView, Vec<Missing>),
}

impl Terminal for GuardMove {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("guard", 200, "the guard: state, episode, exit conditions"),
        StateDoc::json(
            "safe_mode",
            200,
            "side effects are refused on every instance",
        ),
        StateDoc::json("normal", 200, "side effects go on"),
        StateDoc::json(
            "exit_armed",
            202,
            "acknowledged and recovered: safe mode ends after exit_green_ms of continuous green",
        ),
        StateDoc::problem(
            "exit_conditions_unmet",
            409,
            "safe mode cannot end yet: `missing` lists what is missing",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Read(_) => "guard",
            Self::SafeMode(_) => "safe_mode",
            Self::Normal(_) => "normal",
            Self::ExitArmed(_) => "exit_armed",
            Self::Unmet(..) => "exit_conditions_unmet",
        }
    }
}

/// The answer to a recovery action.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Recorded in the current episode.
    Recorded(RecoveryAction),
    /// Not in safe mode: there is nothing to recover from.
    NotInSafeMode,
}

impl Terminal for Recorded {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "recorded",
            201,
            "the recovery action is recorded and audited",
        ),
        StateDoc::problem(
            "not_in_safe_mode",
            409,
            "the guard is not in safe mode: there is no episode to record it in",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Recorded(_) => "recorded",
            Self::NotInSafeMode => "not_in_safe_mode",
        }
    }
}

/// The answers of the evidence pack.
pub const EVIDENCE_STATES: &[StateDoc] = &[
    StateDoc::json(
        "evidence",
        200,
        "timeline, deliveries with every try, guard moves, tier switches, refusals, audit range",
    ),
    StateDoc::problem("unknown_incident", 404, "no such incident"),
];

/// A page of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditPage(pub Vec<Sealed>);

impl Terminal for AuditPage {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "audit",
        200,
        "entries after `after`, in chain order, with their hashes",
    )];

    fn state(&self) -> &'static str {
        "audit"
    }
}

/// What a walk of the audit chain found.
#[derive(Debug, Clone)]
pub enum Verified {
    /// Every entry matches; `entries` and the head's hash.
    Intact {
        /// Entries walked.
        entries: i64,
        /// The last entry's hash.
        head_hash: String,
    },
    /// The first entry that does not match.
    Broken(Broken),
}

impl Terminal for Verified {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("intact", 200, "every entry matches the chain"),
        StateDoc::json(
            "broken",
            200,
            "an entry was edited, removed or inserted: `first_bad` names the first",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Intact { .. } => "intact",
            Self::Broken(_) => "broken",
        }
    }
}
