//! The terminal states of the stream operations, each with its HTTP status, in one place.

use super::{Claimed, Committed, Intake, Read, Replay, Resolution, ReviewPage};
use crate::outcome::{StateDoc, Terminal};

const ACCEPTED: StateDoc = StateDoc::json("accepted", 201, "stored, with its `commit_sequence`");

impl Terminal for Intake {
    const STATES: &'static [StateDoc] = &[
        ACCEPTED,
        StateDoc::json(
            "accepted",
            200,
            "a repeat of `intent_id`: the same `commit_sequence`",
        ),
        StateDoc::problem(
            "intent_conflict",
            409,
            "`intent_id` exists in the stream with another type, priority or payload",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => ACCEPTED.state,
            Self::Conflict { .. } => "intent_conflict",
        }
    }

    /// A repeat is answered 200, a new intent 201: the one state with two statuses.
    fn status(&self) -> u16 {
        match self {
            Self::Accepted { created: true, .. } => 201,
            Self::Accepted { created: false, .. } => 200,
            Self::Conflict { .. } => 409,
        }
    }
}

impl Terminal for Replay {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "replayed",
            200,
            "authorised: the intent, at the stream's `version`",
        ),
        StateDoc::json(
            "conflict_blocked",
            409,
            "the stream is at another `version`: nothing replayed",
        ),
        StateDoc::json(
            "expired_manual",
            410,
            "older than its type's TTL: now in manual review (`review_id`)",
        ),
        StateDoc::problem(
            "unknown_intent",
            404,
            "no intent with this id in this stream",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Replayed { .. } => "replayed",
            Self::Conflict { .. } => "conflict_blocked",
            Self::Expired { .. } => "expired_manual",
            Self::Unknown => "unknown_intent",
        }
    }
}

impl Terminal for Read {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "stream",
            200,
            "`next_sequence`, `last_committed`, `version` and the parked commits",
        ),
        StateDoc::problem(
            "unknown_stream",
            404,
            "no intent was ever accepted on this stream",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Found(_) => "stream",
            Self::Unknown => "unknown_stream",
        }
    }
}

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

impl Terminal for Resolution {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "resolved",
            200,
            "resolved by this request; the item with its action and actor",
        ),
        StateDoc::problem(
            "already_resolved",
            409,
            "resolved before; `detail` names by whom and how",
        ),
        StateDoc::problem(
            "action_refused",
            409,
            "the action does not fit the intent's state (only a parked commit can be requeued)",
        ),
        StateDoc::problem("unknown_review_item", 404, "no review item with this id"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Resolved(_) => "resolved",
            Self::AlreadyResolved(_) => "already_resolved",
            Self::ActionRefused(_) => "action_refused",
            Self::Unknown => "unknown_review_item",
        }
    }
}

impl Terminal for Claimed {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "claimed",
        200,
        "the intents leased to the worker, by priority then arrival (maybe none)",
    )];

    fn state(&self) -> &'static str {
        "claimed"
    }
}

impl Terminal for ReviewPage {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "review",
        200,
        "a page of review items, oldest first",
    )];

    fn state(&self) -> &'static str {
        "review"
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
        let intakes = [
            Intake::Accepted {
                seq: 1,
                created: true,
            },
            Intake::Accepted {
                seq: 1,
                created: false,
            },
            Intake::Conflict { seq: 1 },
        ];
        assert_listed(&intakes);
        assert_eq!(intakes.map(|i| i.status()), [201, 200, 409]);
        let replays = [
            Replay::Conflict { version: 1 },
            Replay::Expired {
                review_id: "r".into(),
            },
            Replay::Unknown,
        ];
        assert_eq!(replays.map(|r| r.status()), [409, 410, 404]);
        assert_eq!(Read::Unknown.status(), 404);
        assert_listed(&[Claimed(Vec::new())]);
        assert_listed(&[ReviewPage(Vec::new())]);
    }

    #[test]
    fn every_resolution_has_a_listed_state_and_status() {
        let item = Box::new(crate::store::stream::ReviewItem {
            id: "rv".into(),
            created_at: 1,
            reason: "causal_timeout".into(),
            stream: "s".into(),
            intent_id: "i".into(),
            seq: 1,
            detail: String::new(),
            state: crate::store::stream::ReviewState::Open,
            action: String::new(),
            actor: String::new(),
            note: String::new(),
            resolved_at: 0,
        });
        let resolutions = [
            Resolution::Resolved(item.clone()),
            Resolution::AlreadyResolved(item),
            Resolution::ActionRefused(crate::store::stream::IntentState::Committed),
            Resolution::Unknown,
        ];
        assert_listed(&resolutions);
        assert_eq!(resolutions.map(|r| r.status()), [200, 409, 409, 404]);
    }
}
