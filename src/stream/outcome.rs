//! The terminal states of a causal commit, each with its HTTP status, in one place.

use super::Committed;
use crate::outcome::{StateDoc, Terminal};

impl Terminal for Committed {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "committed_causal",
            200,
            "applied in sequence order; the stream's new `version`",
        ),
        StateDoc::json(
            "waiting_previous_commit",
            202,
            "parked until its predecessor commits (it then applies in turn); `next_expected`",
        ),
        StateDoc::json(
            "blocked_conflict",
            409,
            "refused; `reason`: already_committed, intent_mismatch, unknown_intent, \
             version_mismatch or in_review",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Causal { .. } => "committed_causal",
            Self::Waiting { .. } => "waiting_previous_commit",
            Self::Blocked { .. } => "blocked_conflict",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;
    use crate::store::stream::Counters;
    use crate::stream::rules::Refusal;

    #[test]
    fn every_commit_outcome_has_a_listed_state_and_status() {
        let committed = [
            Committed::Causal { version: 1 },
            Committed::Waiting { next_expected: 1 },
            Committed::Blocked {
                why: Refusal::AlreadyCommitted,
                counters: Counters::default(),
            },
        ];
        assert_listed(&committed);
        assert_eq!(committed.map(|c| c.status()), [200, 202, 409]);
    }
}
