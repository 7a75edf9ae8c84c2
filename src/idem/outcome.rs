//! The terminal states of the idempotency operations, each with its HTTP status, in one place.

use super::{Begun, Finished};
use crate::outcome::{StateDoc, Terminal};

const CONFLICT: StateDoc = StateDoc::json(
    "conflict",
    409,
    "the token is not the key's claim (a later claim took over, or it finished)",
);
const COMPLETED: StateDoc = StateDoc::json("completed", 200, "the recorded response");
const RELEASED: StateDoc = StateDoc::json("released", 200, "the claim is given up");
const EXTENDED: StateDoc = StateDoc::json("extended", 200, "the lease now ends later");

impl Terminal for Begun {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "started",
            201,
            "the caller holds the claim: run, then complete",
        ),
        StateDoc::json(
            "completed",
            200,
            "already done: the saved response, byte for byte",
        ),
        StateDoc::json(
            "in_progress",
            409,
            "another claim is live; `retry_after_ms`",
        ),
        StateDoc::problem(
            "fingerprint_mismatch",
            422,
            "the key lives with another request's fingerprint",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Completed { .. } => "completed",
            Self::InProgress { .. } => "in_progress",
            Self::FingerprintMismatch => "fingerprint_mismatch",
        }
    }
}

impl Terminal for Finished {
    const STATES: &'static [StateDoc] = &[COMPLETED, RELEASED, EXTENDED, CONFLICT];

    fn state(&self) -> &'static str {
        match self {
            Self::Completed { .. } => COMPLETED.state,
            Self::Released => RELEASED.state,
            Self::Extended { .. } => EXTENDED.state,
            Self::Conflict => CONFLICT.state,
        }
    }
}

impl Finished {
    /// The states `complete` answers.
    pub const COMPLETE_STATES: &'static [StateDoc] = &[COMPLETED, CONFLICT];
    /// The states `fail` answers.
    pub const FAIL_STATES: &'static [StateDoc] = &[RELEASED, CONFLICT];
    /// The states `extend` answers.
    pub const EXTEND_STATES: &'static [StateDoc] = &[EXTENDED, CONFLICT];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_idempotency_outcome_has_a_listed_state_and_status() {
        let begun = [
            Begun::Started {
                token: 1,
                lease_until: 1,
                expires_at: 1,
            },
            Begun::Completed {
                response: "1".into(),
                correlation: Default::default(),
            },
            Begun::InProgress { retry_after_ms: 1 },
            Begun::FingerprintMismatch,
        ];
        assert_listed(&begun);
        assert_eq!(begun.map(|b| b.status()), [201, 200, 409, 422]);
        let finished = [
            Finished::Completed {
                response: "1".into(),
            },
            Finished::Released,
            Finished::Extended { lease_until: 1 },
            Finished::Conflict,
        ];
        assert_listed(&finished);
        assert_eq!(finished.map(|f| f.status()), [200, 200, 200, 409]);
    }
}
