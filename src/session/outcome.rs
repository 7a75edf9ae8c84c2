//! The terminal states of the session operations, each with its HTTP status, in one place.
//! A session that is no more answers 410 with the reason it ended, whatever the operation.

use crate::outcome::{StateDoc, Terminal};
use crate::store::session::SessionRow;

/// Why a session is no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Past its idle or absolute expiry.
    Expired,
    /// Ended: `reason` is `revoked` (deleted or logged out everywhere) or `evicted`.
    Revoked(&'static str),
    /// Replaced by a new id.
    Rotated,
}

const GONE: [StateDoc; 3] = [
    StateDoc::problem("expired", 410, "past its idle or absolute expiry"),
    StateDoc::problem(
        "revoked",
        410,
        "ended: `reason` `revoked` (deleted, or logged out everywhere) or `evicted`",
    ),
    StateDoc::problem("rotated", 410, "replaced by a new id (`rotate`)"),
];
const NOT_FOUND: StateDoc = StateDoc::problem("not_found", 404, "no such session");

impl Gone {
    fn state(self) -> &'static str {
        match self {
            Self::Expired => GONE[0].state,
            Self::Revoked(_) => GONE[1].state,
            Self::Rotated => GONE[2].state,
        }
    }
}

/// Implements [`Terminal`] for an outcome enum with a success variant, `Gone` and
/// `NotFound` (and any more listed).
macro_rules! session_outcome {
    ($name:ident, $ok:ident($($okty:ty),*) => $okdoc:expr $(, $extra:ident => $extradoc:expr)*) => {
        impl Terminal for $name {
            const STATES: &'static [StateDoc] =
                &[$okdoc, GONE[0], GONE[1], GONE[2], NOT_FOUND $(, $extradoc)*];

            fn state(&self) -> &'static str {
                match self {
                    Self::$ok(..) => $okdoc.state,
                    Self::Gone(g) => g.state(),
                    Self::NotFound => NOT_FOUND.state,
                    $(Self::$extra { .. } => $extradoc.state,)*
                }
            }

            // By variant, not by state name: a rotation answers 200 `rotated`, and a session
            // rotated before answers 410 `rotated`.
            fn status(&self) -> u16 {
                match self {
                    Self::$ok(..) => $okdoc.status,
                    Self::Gone(_) => GONE[0].status,
                    Self::NotFound => NOT_FOUND.status,
                    $(Self::$extra { .. } => $extradoc.status,)*
                }
            }
        }
    };
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRead {
    /// Live: its row.
    Active(SessionRow),
    /// No more.
    Gone(Gone),
    /// No such session.
    NotFound,
}
session_outcome!(SessionRead, Active(SessionRow) =>
    StateDoc::json("active", 200, "live: `data`, `version`, expiries"));

/// The answer to a touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTouch {
    /// Live, its idle expiry slid on (never past the absolute one).
    Touched(SessionRow),
    /// No more.
    Gone(Gone),
    /// No such session.
    NotFound,
}
session_outcome!(SessionTouch, Touched(SessionRow) =>
    StateDoc::json("touched", 200, "the idle expiry slid on, never past the absolute one"));

/// The answer to a write of a session's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSaved {
    /// Saved: the row with its new version.
    Saved(SessionRow),
    /// No more.
    Gone(Gone),
    /// No such session.
    NotFound,
    /// `expected_version` is not the session's version (`current`); nothing written.
    VersionConflict {
        /// The session's version.
        current: i64,
    },
    /// The data would be above `sessions.max_data_bytes`; nothing written.
    TooLarge,
}
session_outcome!(SessionSaved, Saved(SessionRow) =>
    StateDoc::json("saved", 200, "the data and its new `version`"),
    VersionConflict => StateDoc::problem("version_conflict", 409,
        "`expected_version` is not the session's version; nothing written"),
    TooLarge => StateDoc::problem("data_too_large", 413,
        "the data would be above `sessions.max_data_bytes`; nothing written"));

/// The answer to a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRotated {
    /// The new id (shown once) and its row; the old id answers 410 `rotated` from now on.
    Rotated(String, Box<SessionRow>),
    /// No more.
    Gone(Gone),
    /// No such session.
    NotFound,
}
session_outcome!(SessionRotated, Rotated(String, Box<SessionRow>) =>
    StateDoc::json("rotated", 200, "a new `session_id` with the same data; the old one is ended"));

/// The answer to a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCreated {
    /// The new id (shown once), its row, and how many sessions were evicted for it.
    Created(String, Box<SessionRow>, usize),
    /// The principal has `max_per_principal` live sessions and `on_limit` is `reject`.
    LimitReached,
}

impl Terminal for SessionCreated {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "created",
            201,
            "`session_id` (shown once: only its SHA-256 is kept), `version`, expiries, `evicted`",
        ),
        StateDoc::problem(
            "session_limit_reached",
            409,
            "the principal has `max_per_principal` live sessions; nothing created",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Created(..) => "created",
            Self::LimitReached => "session_limit_reached",
        }
    }
}

/// The answer to a revoke (of one session, or of a principal's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRevoked {
    /// No session of it is live any more: `count` were ended now.
    Revoked(usize),
    /// No such session.
    NotFound,
}

impl Terminal for SessionRevoked {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "revoked",
            200,
            "ended (also when it had ended before); `count` ended now",
        ),
        NOT_FOUND,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Revoked(_) => "revoked",
            Self::NotFound => NOT_FOUND.state,
        }
    }
}

/// The one state of a principal's live sessions (`sessions`, oldest first).
pub const LISTED: &[StateDoc] = &[StateDoc::json(
    "sessions",
    200,
    "the principal's live sessions, oldest first (at most 1 000), without their data",
)];

/// The one state of a page of session events (`events`, in commit order).
pub const EVENTS: &[StateDoc] = &[StateDoc::json(
    "events",
    200,
    "the tenant's session events after `after`, in commit order; `next_after` to follow",
)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_state_is_listed() {
        let row = || SessionRow {
            id_hash: String::new(),
            tenant: String::new(),
            principal: String::new(),
            data: "{}".into(),
            version: 1,
            generation: 0,
            principal_generation: 0,
            created_at: 0,
            idle_ttl_ms: 1,
            idle_expires_at: 1,
            absolute_expires_at: 1,
            state: "active".into(),
            ended_at: 0,
            rotated_to: String::new(),
            touch_written_at: 0,
        };
        let gone = [Gone::Expired, Gone::Revoked("revoked"), Gone::Rotated];
        let mut reads: Vec<SessionRead> = gone.iter().map(|g| SessionRead::Gone(*g)).collect();
        reads.extend([SessionRead::Active(row()), SessionRead::NotFound]);
        assert_listed(&reads);
        let mut saved: Vec<SessionSaved> = gone.iter().map(|g| SessionSaved::Gone(*g)).collect();
        saved.extend([
            SessionSaved::Saved(row()),
            SessionSaved::NotFound,
            SessionSaved::VersionConflict { current: 2 },
            SessionSaved::TooLarge,
        ]);
        assert_listed(&saved);
        assert_listed(&[
            SessionCreated::LimitReached,
            SessionCreated::Created(String::new(), Box::new(row()), 0),
        ]);
        assert_listed(&[SessionRevoked::Revoked(1), SessionRevoked::NotFound]);
        assert_eq!(SessionRead::Gone(Gone::Rotated).status(), 410);
        assert_eq!(
            SessionRotated::Rotated(String::new(), Box::new(row())).status(),
            200
        );
        assert_eq!(SessionRotated::Gone(Gone::Rotated).status(), 410);
    }
}
