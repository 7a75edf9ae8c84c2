//! The cache between batches, driven by the real rules: what it serves, what it leaves to
//! read, and what it remembers.

use super::*;
use crate::stream::rules::{self, NewIntent, Op, Outcome, Refusal, TtlTable, Write};

fn intake(stream: &str, id: &str) -> Write {
    let n = NewIntent {
        stream: stream.into(),
        intent_id: id.into(),
        priority: 0,
        intent_type: "book".into(),
        payload: "{}".into(),
        correlation: Default::default(),
        sensitive: false,
    };
    Write {
        op: Op::Intake(n),
        now: 1_000,
    }
}

fn commit(stream: &str, seq: i64, id: &str) -> Write {
    Write {
        op: Op::Commit {
            stream: stream.into(),
            seq,
            intent_id: id.into(),
            expected_version: None,
            hold_sensitive: false,
        },
        now: 2_000,
    }
}

fn replay(stream: &str, id: &str) -> Write {
    Write {
        op: Op::Replay {
            stream: stream.into(),
            intent_id: id.into(),
            as_of_version: 0,
        },
        now: 2_000,
    }
}

fn intent(stream: &str, seq: i64, state: IntentState) -> Intent {
    let what = (0, "book".to_owned(), "{}".to_owned());
    let mut i = Intent::arrived(
        stream.into(),
        seq,
        format!("i{seq}"),
        what,
        1_000,
        Default::default(),
    );
    i.state = state;
    i
}

/// What one batch did.
struct Ran {
    served: Served,
    rest: Wanted,
    outcomes: Vec<Outcome>,
    changes: Changes,
}

/// Runs `writes` as a PostgreSQL batch does — cache first, `read` loading what is left (the
/// stand-in for the database), missing streams created, the rules, a write that succeeds —
/// and remembers the result.
fn batch(cache: &StreamCache, writes: &[Write], read: impl FnOnce(&Wanted, &mut Book)) -> Ran {
    let wanted = rules::wanted(writes);
    let mut book = Book::default();
    let (served, rest) = cache.serve(&wanted, &mut book);
    read(&rest, &mut book);
    for s in &wanted.create {
        if book.stream(s).is_none() {
            book.new_stream(s.clone());
        }
    }
    let ttls = TtlTable {
        default_ms: 60_000,
        by_type: Default::default(),
    };
    let outcomes = writes
        .iter()
        .map(|w| rules::apply(&mut book, w.clone(), &ttls))
        .collect();
    let changes = book.changes();
    cache.remember(&book, &changes, &served, &wanted);
    Ran {
        served,
        rest,
        outcomes,
        changes,
    }
}

fn nothing(_: &Wanted, _: &mut Book) {}

fn served(r: &Ran) -> Vec<(&str, i64)> {
    r.served
        .revs
        .iter()
        .map(|(s, v)| (s.as_str(), *v))
        .collect()
}

#[test]
fn a_stream_a_batch_created_is_served_at_the_next_revision_without_a_read() {
    let cache = StreamCache::default();
    let first = batch(&cache, &[intake("a", "x")], nothing);
    assert!(first.served.is_empty());
    assert_eq!(first.rest.streams, BTreeSet::from(["a".to_owned()]));

    let second = batch(
        &cache,
        &[commit("a", 1, "x"), intake("a", "y")],
        |rest, _| assert!(rest.streams.is_empty(), "read {rest:?}"),
    );
    assert_eq!(served(&second), [("a", 1)]);
    assert_eq!(second.outcomes[0], Outcome::Committed { version: 1 });
    assert_eq!(
        second.outcomes[1],
        Outcome::Accepted {
            seq: 2,
            created: true
        }
    );
    assert!(second.served.unchanged(&second.changes).is_empty());

    // A duplicate commit and a repeated intake write nothing: the write checks the revision.
    let third = batch(&cache, &[commit("a", 1, "x"), intake("a", "y")], nothing);
    assert_eq!(served(&third), [("a", 2)]);
    assert!(matches!(
        third.outcomes[0],
        Outcome::Refused {
            why: Refusal::AlreadyCommitted,
            ..
        }
    ));
    assert_eq!(
        third.outcomes[1],
        Outcome::Accepted {
            seq: 2,
            created: false
        }
    );
    assert!(third.changes.streams.is_empty());
    assert_eq!(third.served.unchanged(&third.changes), [("a", 2)]);
}

#[test]
fn a_stream_read_without_its_parked_commits_is_read_again_for_a_commit() {
    let cache = StreamCache::default();
    let load = |rest: &Wanted, book: &mut Book| {
        if rest.streams.contains("b") {
            let c = Counters {
                assigned: 5,
                last_committed: 2,
                version: 2,
            };
            book.load_stream("b".into(), c, 7);
        }
    };
    let first = batch(&cache, &[intake("b", "new")], load);
    assert!(first.served.is_empty());
    // Intakes need no parked commits: served (the new intent's seq 6 is cached).
    let second = batch(&cache, &[intake("b", "newer")], nothing);
    assert_eq!(served(&second), [("b", 8)]);
    // A commit may cascade through parked commits the cache never saw: read.
    let third = batch(&cache, &[commit("b", 6, "new")], |rest, book| {
        assert_eq!(rest.parked, BTreeSet::from(["b".to_owned()]));
        load(rest, book);
    });
    assert!(third.served.is_empty());
}

#[test]
fn sequences_above_the_last_assigned_need_no_read_but_older_ones_not_held_do() {
    let cache = StreamCache::default();
    batch(&cache, &[intake("c", "x")], nothing);
    let unknown = batch(&cache, &[commit("c", 9, "z")], nothing);
    assert_eq!(served(&unknown), [("c", 1)]);
    assert!(matches!(
        unknown.outcomes[0],
        Outcome::Refused {
            why: Refusal::UnknownIntent,
            ..
        }
    ));
    // Seq 1 is held; drop it and ask again.
    cache.inner().entries.get_mut("c").unwrap().intents.clear();
    let again = batch(&cache, &[commit("c", 1, "x")], |rest, book| {
        assert_eq!(rest.by_seq, BTreeSet::from([("c".to_owned(), 1)]));
        let c = Counters {
            assigned: 1,
            ..Counters::default()
        };
        book.load_stream("c".into(), c, 1);
        book.load_intent(intent("c", 1, IntentState::Ready));
    });
    assert!(again.served.is_empty());
}

#[test]
fn replays_and_lookups_of_intents_not_held_are_read() {
    let cache = StreamCache::default();
    batch(&cache, &[intake("d", "x")], nothing);
    // Replays want review items, which are never held.
    let r = batch(&cache, &[replay("d", "x"), intake("d", "y")], nothing);
    assert!(r.served.is_empty());
    assert!(r
        .rest
        .open_reviews
        .contains(&("d".to_owned(), "x".to_owned())));
    // An intake of an id not held is served (the insert's unique key catches a stale miss).
    let i = batch(&cache, &[intake("d", "never-seen")], nothing);
    assert_eq!(i.served.revs.len(), 1);
}

#[test]
fn entries_hold_a_bounded_window_and_forget_parked_commits_they_drop() {
    let cache = StreamCache::default();
    let parked = |rest: &Wanted, book: &mut Book| {
        let c = Counters {
            assigned: 40,
            ..Counters::default()
        };
        if rest.streams.contains("e") {
            book.load_stream("e".into(), c, 3);
            book.load_intent(intent("e", 1, IntentState::Ready));
            for seq in 2..=40 {
                book.load_intent(intent("e", seq, IntentState::Waiting));
            }
        }
    };
    // Commits 1; 2..=40 cascade. All committed, so the window keeps the last few.
    let r = batch(&cache, &[commit("e", 1, "i1")], parked);
    assert_eq!(r.outcomes[0], Outcome::Committed { version: 1 });
    let inner = cache.inner();
    let e = &inner.entries["e"];
    assert_eq!((e.counters.last_committed, e.rev), (40, 4));
    assert_eq!(
        e.intents.keys().copied().collect::<Vec<_>>(),
        [37, 38, 39, 40]
    );
    assert!(e.parked_known);
    drop(inner);

    // 40 parked, none committable: only 16 held, so the parked set is no longer known.
    let cache = StreamCache::default();
    let r = batch(&cache, &[commit("e", 45, "i45")], |rest, book| {
        let c = Counters {
            assigned: 45,
            ..Counters::default()
        };
        book.load_stream("e".into(), c, 3);
        for seq in 2..=45 {
            book.load_intent(intent("e", seq, IntentState::Waiting));
        }
        assert!(rest.parked.contains("e"));
    });
    assert!(matches!(
        r.outcomes[0],
        Outcome::Waiting { repeat: true, .. }
    ));
    let e = &cache.inner().entries["e"];
    assert_eq!((e.intents.len(), e.rev), (INTENTS, 3));
    assert!(!e.parked_known);
}

#[test]
fn an_older_revision_never_replaces_a_newer_one_and_the_cache_is_bounded() {
    let cache = StreamCache::default();
    let at = |rev: i64| {
        move |rest: &Wanted, book: &mut Book| {
            if rest.streams.contains("f") {
                book.load_stream("f".into(), Counters::default(), rev);
            }
        }
    };
    batch(&cache, &[intake("f", "x")], at(9));
    cache.forget(&BTreeSet::new());
    assert_eq!(cache.inner().entries["f"].rev, 10);
    // A batch that read revision 4 (and wrote 5) arrives late.
    let mut book = Book::default();
    at(4)(&rules::wanted(&[intake("f", "y")]), &mut book);
    let wanted = rules::wanted(&[intake("f", "y")]);
    let outcomes = rules::apply(
        &mut book,
        intake("f", "y"),
        &TtlTable {
            default_ms: 1,
            by_type: Default::default(),
        },
    );
    assert!(matches!(outcomes, Outcome::Accepted { .. }));
    let changes = book.changes();
    cache.remember(&book, &changes, &Served::default(), &wanted);
    assert_eq!(cache.inner().entries["f"].rev, 10);

    for n in 0..STREAMS + 10 {
        batch(&cache, &[intake(&format!("s{n}"), "x")], nothing);
    }
    assert_eq!(cache.inner().entries.len(), STREAMS);
    cache.forget(&BTreeSet::from(["f".to_owned()]));
    cache.clear();
    assert!(cache.inner().entries.is_empty());
}

#[test]
fn a_stream_another_instance_moved_is_read_not_held() {
    let cache = StreamCache::default();
    batch(&cache, &[intake("g", "x"), intake("h", "x")], nothing);
    let wanted = rules::wanted(&[intake("g", "y"), intake("h", "y")]);
    let (lost, _) = cache.serve(&wanted, &mut Book::default());
    assert_eq!(lost.revs.len(), 2);
    // The batch lost; the read after it finds g moved on (revision 5), h where it was.
    cache.forget(&wanted.streams);
    let mut book = Book::default();
    book.load_stream("g".into(), Counters::default(), 5);
    book.load_stream("h".into(), Counters::default(), 1);
    cache.mark_moved(&lost, &book);

    let read_both = |rest: &Wanted, book: &mut Book| {
        for s in &rest.streams {
            book.load_stream(s.clone(), Counters::default(), if s == "g" { 5 } else { 1 });
        }
    };
    batch(&cache, &[intake("g", "y"), intake("h", "y")], read_both);
    let again = batch(
        &cache,
        &[intake("g", "z"), intake("h", "z")],
        |rest, book| {
            assert_eq!(rest.streams, BTreeSet::from(["g".to_owned()]));
            read_both(rest, book);
        },
    );
    assert_eq!(served(&again), [("h", 2)]);
    assert!(!cache.inner().entries.contains_key("g"));
}
