//! The rules on an in-memory book: sequences, causal commits, cascades, reviews, replays.

use super::*;
use crate::store::stream::Counters;

fn book(streams: &[&str]) -> Book {
    let mut b = Book::default();
    for s in streams {
        b.load_stream((*s).to_owned(), Counters::default(), 0);
    }
    b
}

fn ttls(book_ms: i64) -> TtlTable {
    TtlTable {
        default_ms: 1,
        by_type: [("book".to_owned(), book_ms)].into(),
    }
}

fn run(b: &mut Book, op: Op, now: i64) -> Outcome {
    apply(b, Write { op, now }, &ttls(5_000))
}

fn intake(b: &mut Book, stream: &str, id: &str, priority: i64) -> Outcome {
    let n = NewIntent {
        stream: stream.into(),
        intent_id: id.into(),
        priority,
        intent_type: "book".into(),
        payload: r#"{"a": 1, "b": 2}"#.into(),
        correlation: Default::default(),
        sensitive: false,
    };
    run(b, Op::Intake(n), 1_000)
}

fn waiting(next_expected: i64) -> Outcome {
    Outcome::Waiting {
        next_expected,
        repeat: false,
    }
}

fn commit(b: &mut Book, seq: i64, id: &str, expected: Option<i64>) -> Outcome {
    let op = Op::Commit {
        stream: "s".into(),
        seq,
        intent_id: id.into(),
        expected_version: expected,
        hold_sensitive: false,
    };
    run(b, op, 2_000)
}

#[test]
fn sequences_follow_arrival_whatever_the_priority_and_repeats_keep_theirs() {
    let mut b = book(&["s"]);
    assert_eq!(
        intake(&mut b, "s", "low", 1),
        Outcome::Accepted {
            seq: 1,
            created: true
        }
    );
    assert_eq!(
        intake(&mut b, "s", "high", 9),
        Outcome::Accepted {
            seq: 2,
            created: true
        }
    );
    assert_eq!(
        intake(&mut b, "s", "low", 1),
        Outcome::Accepted {
            seq: 1,
            created: false
        }
    );
    // Same intent, same JSON spelled differently: a repeat. Other content: a conflict.
    let respelled = NewIntent {
        stream: "s".into(),
        intent_id: "low".into(),
        priority: 1,
        intent_type: "book".into(),
        payload: r#"{"b":2,"a":1}"#.into(),
        correlation: Default::default(),
        sensitive: false,
    };
    let repeat = run(&mut b, Op::Intake(respelled.clone()), 5);
    assert_eq!(
        repeat,
        Outcome::Accepted {
            seq: 1,
            created: false
        }
    );
    let other = NewIntent {
        priority: 2,
        ..respelled
    };
    assert_eq!(
        run(&mut b, Op::Intake(other), 5),
        Outcome::IntentConflict { seq: 1 }
    );
    assert_eq!(b.stream("s").unwrap().assigned, 2);
    let changes = b.changes();
    assert_eq!(changes.new_intents.len(), 2);
}

#[test]
fn commits_apply_in_sequence_order_and_parked_ones_cascade() {
    let mut b = book(&["s"]);
    for id in ["a", "b", "c"] {
        intake(&mut b, "s", id, 0);
    }
    assert_eq!(commit(&mut b, 3, "c", None), waiting(1));
    // A repeat is told it is parked, and does not wait for it.
    let repeat = Outcome::Waiting {
        next_expected: 1,
        repeat: true,
    };
    assert_eq!(commit(&mut b, 3, "c", None), repeat);
    assert_eq!(commit(&mut b, 2, "b", Some(1)), waiting(1));
    assert_eq!(
        commit(&mut b, 1, "a", Some(0)),
        Outcome::Committed { version: 1 }
    );
    let c = b.stream("s").unwrap();
    assert_eq!((c.last_committed, c.version), (3, 3));
    for (seq, v) in [(1, 1), (2, 2), (3, 3)] {
        let i = b.intent("s", seq).unwrap();
        assert_eq!((i.state, i.committed_version), (IntentState::Committed, v));
    }
}

#[test]
fn duplicates_mismatches_and_stale_versions_are_refused_without_change() {
    let mut b = book(&["s"]);
    intake(&mut b, "s", "a", 0);
    intake(&mut b, "s", "b", 0);
    intake(&mut b, "s", "c", 0);
    let refused = |o: Outcome| match o {
        Outcome::Refused { why, .. } => why,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(
        refused(commit(&mut b, 1, "b", None)),
        Refusal::IntentMismatch
    );
    assert_eq!(
        refused(commit(&mut b, 9, "a", None)),
        Refusal::UnknownIntent
    );
    assert_eq!(
        refused(commit(&mut b, 1, "a", Some(5))),
        Refusal::VersionMismatch
    );
    assert_eq!(
        commit(&mut b, 1, "a", Some(0)),
        Outcome::Committed { version: 1 }
    );
    assert_eq!(
        refused(commit(&mut b, 1, "a", None)),
        Refusal::AlreadyCommitted
    );
    // A parked commit whose version already passed can never match: refused at once.
    assert_eq!(
        refused(commit(&mut b, 3, "c", Some(0))),
        Refusal::VersionMismatch
    );
    // One that may still match parks; it goes to review if it does not when its turn comes.
    assert_eq!(commit(&mut b, 3, "c", Some(7)), waiting(2));
    assert_eq!(
        commit(&mut b, 2, "b", None),
        Outcome::Committed { version: 2 }
    );
    assert_eq!(b.intent("s", 3).unwrap().state, IntentState::Review);
    assert_eq!(b.stream("s").unwrap().last_committed, 2);
    let changes = b.changes();
    assert_eq!(changes.new_reviews.len(), 1);
    assert_eq!(changes.new_reviews[0].reason, reason::VERSION_CONFLICT);
}

#[test]
fn overdue_parked_commits_go_to_review_and_requeue_is_audited() {
    let mut b = book(&["s"]);
    intake(&mut b, "s", "a", 0);
    intake(&mut b, "s", "b", 0);
    assert_eq!(commit(&mut b, 2, "b", None), waiting(1));
    let young = Op::Timeout {
        stream: "s".into(),
        seq: 2,
        older_than: 1_999,
    };
    assert_eq!(run(&mut b, young, 3_000), Outcome::NotDue);
    let due = Op::Timeout {
        stream: "s".into(),
        seq: 2,
        older_than: 2_000,
    };
    let Outcome::TimedOut(id) = run(&mut b, due, 3_000) else {
        panic!()
    };
    assert_eq!(b.intent("s", 2).unwrap().state, IntentState::Review);
    // Its predecessor commits; the item in review does not.
    assert_eq!(
        commit(&mut b, 1, "a", None),
        Outcome::Committed { version: 1 }
    );
    assert_eq!(b.stream("s").unwrap().last_committed, 1);
    let resolve = |action| Op::Resolve {
        id: id.clone(),
        stream: "s".into(),
        seq: 2,
        action,
        actor: "ops@clinic".into(),
        note: "predecessor arrived".into(),
    };
    let Outcome::Resolved { item, fresh: true } = run(&mut b, resolve(Action::Requeue), 4_000)
    else {
        panic!()
    };
    assert_eq!(
        (item.action.as_str(), item.actor.as_str()),
        ("requeue", "ops@clinic")
    );
    assert_eq!(b.intent("s", 2).unwrap().state, IntentState::Ready);
    let again = run(&mut b, resolve(Action::Dismiss), 5_000);
    assert!(
        matches!(again, Outcome::Resolved { fresh: false, .. }),
        "{again:?}"
    );
    assert_eq!(
        commit(&mut b, 2, "b", None),
        Outcome::Committed { version: 2 }
    );
    let changes = b.changes();
    assert_eq!(changes.audits.len(), 1);
    assert_eq!(changes.new_reviews[0].state, ReviewState::Resolved);
}

#[test]
fn replay_checks_ttl_then_version_before_any_effect() {
    let mut b = book(&["s"]);
    intake(&mut b, "s", "a", 0);
    let mut replay = |id: &str, as_of, ttl_ms, now| {
        let op = Op::Replay {
            stream: "s".into(),
            intent_id: id.into(),
            as_of_version: as_of,
        };
        apply(&mut b, Write { op, now }, &ttls(ttl_ms))
    };
    // Expired: review, whatever the version; asked again, the same open item.
    let Outcome::Expired { review_id } = replay("a", 7, 10, 2_000) else {
        panic!()
    };
    assert_eq!(replay("a", 0, 10, 2_500), Outcome::Expired { review_id });
    assert_eq!(
        replay("a", 3, 5_000, 2_000),
        Outcome::ReplayConflict { version: 0 }
    );
    let Outcome::Replayed { intent, version: 0 } = replay("a", 0, 5_000, 2_000) else {
        panic!()
    };
    assert_eq!(intent.replays, 1);
    assert_eq!(replay("zz", 0, 1, 2_000), Outcome::UnknownIntent);
    let changes = b.changes();
    assert_eq!(
        changes.new_reviews.len(),
        1,
        "one open item per expired intent"
    );
    assert_eq!(
        changes.new_intents[0].replays, 1,
        "only the authorised replay counted"
    );
}

#[test]
fn a_sensitive_intent_goes_to_review_instead_of_committing_while_degraded() {
    let mut b = Book::default();
    b.new_stream("s".into());
    for (id, sensitive) in [("send", true), ("note", false), ("charge", true)] {
        let n = NewIntent {
            stream: "s".into(),
            intent_id: id.into(),
            priority: 0,
            intent_type: "t".into(),
            payload: "{}".into(),
            correlation: Default::default(),
            sensitive,
        };
        run(&mut b, Op::Intake(n), 1_000);
    }
    let degraded = |seq: i64, id: &str| Op::Commit {
        stream: "s".into(),
        seq,
        intent_id: id.into(),
        expected_version: None,
        hold_sensitive: true,
    };
    // The sensitive one is refused and held; a later one parks behind it.
    let held = run(&mut b, degraded(1, "send"), 2_000);
    assert!(
        matches!(
            held,
            Outcome::Refused {
                why: Refusal::GuardDegraded,
                ..
            }
        ),
        "{held:?}"
    );
    assert_eq!(b.intent("s", 1).unwrap().state, IntentState::Review);
    let review = b.open_review("s", "send", reason::GUARD_DEGRADED);
    assert!(review.is_some());
    // Not sensitive: commits as usual (here it waits for its turn behind the held one).
    let parked = run(&mut b, degraded(2, "note"), 2_000);
    assert!(matches!(parked, Outcome::Waiting { .. }), "{parked:?}");
    // Outside degraded, the same sensitive intent would simply commit.
    let mut calm = Book::default();
    calm.new_stream("s".into());
    let n = NewIntent {
        stream: "s".into(),
        intent_id: "send".into(),
        priority: 0,
        intent_type: "t".into(),
        payload: "{}".into(),
        correlation: Default::default(),
        sensitive: true,
    };
    run(&mut calm, Op::Intake(n), 1_000);
    assert!(matches!(
        commit(&mut calm, 1, "send", None),
        Outcome::Committed { .. }
    ));
}
