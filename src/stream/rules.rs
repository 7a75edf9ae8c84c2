//! The causal rules (G5), written once and run inside the batch transaction on rows locked by
//! stream: a sequence is assigned as `assigned + 1`; a commit applies only as
//! `last_committed + 1` (and then applies every parked successor in turn); anything else parks
//! or is refused. Pure functions over a [`Book`]: no I/O, so they are unit-tested directly.

mod ops;

pub use ops::{reason, Action, NewIntent, Op, Outcome, Refusal, TtlTable, Write};

use crate::store::stream::{Audit, Book, Intent, IntentState, ReviewItem, ReviewState, Wanted};

/// The rows a batch of writes needs.
pub fn wanted(writes: &[Write]) -> Wanted {
    let mut w = Wanted::default();
    for write in writes {
        match &write.op {
            Op::Intake(n) => {
                w.streams.insert(n.stream.clone());
                w.create.insert(n.stream.clone());
                w.new_ids.insert((n.stream.clone(), n.intent_id.clone()));
            }
            Op::Commit { stream, seq, .. } => {
                w.streams.insert(stream.clone());
                w.by_seq.insert((stream.clone(), *seq));
                w.parked.insert(stream.clone());
            }
            Op::Timeout { stream, seq, .. } => {
                w.streams.insert(stream.clone());
                w.by_seq.insert((stream.clone(), *seq));
            }
            Op::Replay {
                stream, intent_id, ..
            } => {
                w.streams.insert(stream.clone());
                w.by_id.insert((stream.clone(), intent_id.clone()));
                w.open_reviews.insert((stream.clone(), intent_id.clone()));
            }
            Op::Resolve {
                id, stream, seq, ..
            } => {
                w.streams.insert(stream.clone());
                w.by_seq.insert((stream.clone(), *seq));
                w.reviews.insert(id.clone());
            }
        }
    }
    w
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Applies one write to the book; replays take their TTL from `ttls`.
pub fn apply(book: &mut Book, w: Write, ttls: &TtlTable) -> Outcome {
    let now = w.now;
    match w.op {
        Op::Intake(n) => intake(book, n, now),
        Op::Commit {
            stream,
            seq,
            intent_id,
            expected_version,
            hold_sensitive,
        } => {
            let c = CommitOp {
                seq,
                intent_id: &intent_id,
                expected: expected_version,
                hold_sensitive,
            };
            commit(book, &stream, c, now)
        }
        Op::Timeout {
            stream,
            seq,
            older_than,
        } => timeout(book, &stream, seq, older_than, now),
        Op::Replay {
            stream,
            intent_id,
            as_of_version,
        } => replay(book, &stream, &intent_id, as_of_version, ttls, now),
        Op::Resolve {
            id,
            stream,
            seq,
            action,
            actor,
            note,
        } => resolve(book, &id, (&stream, seq), action, &actor, &note, now),
    }
}

/// Two payloads are the same intent when they are equal as JSON (spacing and key order aside).
fn same_payload(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (
                serde_json::from_str::<serde_json::Value>(a),
                serde_json::from_str::<serde_json::Value>(b),
            ),
            (Ok(x), Ok(y)) if x == y
        )
}

fn intake(book: &mut Book, n: NewIntent, now: i64) -> Outcome {
    if let Some(seq) = book.seq_of(&n.stream, &n.intent_id) {
        let same = book.intent(&n.stream, seq).is_some_and(|i| {
            i.intent_type == n.intent_type
                && i.priority == n.priority
                && same_payload(&i.payload, &n.payload)
        });
        return if same {
            Outcome::Accepted {
                seq,
                created: false,
            }
        } else {
            Outcome::IntentConflict { seq }
        };
    }
    let Some(mut c) = book.stream(&n.stream) else {
        unreachable!("intake streams are created before the rules run")
    };
    c.assigned += 1;
    book.set_stream(&n.stream, c);
    let what = (n.priority, n.intent_type, n.payload);
    let mut intent = Intent::arrived(n.stream, c.assigned, n.intent_id, what, now, n.correlation);
    intent.sensitive = n.sensitive;
    book.insert_intent(intent);
    Outcome::Accepted {
        seq: c.assigned,
        created: true,
    }
}

/// A commit as the rules see it.
struct CommitOp<'a> {
    seq: i64,
    intent_id: &'a str,
    expected: Option<i64>,
    /// The guard is degraded: sensitive intents go to review instead of committing.
    hold_sensitive: bool,
}

fn commit(book: &mut Book, stream: &str, op: CommitOp<'_>, now: i64) -> Outcome {
    let CommitOp {
        seq,
        intent_id,
        expected,
        hold_sensitive,
    } = op;
    let c = book.stream(stream).unwrap_or_default();
    let refuse = |why| Outcome::Refused { why, counters: c };
    let Some(intent) = book.intent(stream, seq) else {
        return refuse(Refusal::UnknownIntent);
    };
    if intent.intent_id != intent_id {
        return refuse(Refusal::IntentMismatch);
    }
    match intent.state {
        IntentState::Committed => return refuse(Refusal::AlreadyCommitted),
        IntentState::Review => return refuse(Refusal::InReview),
        // A repeat of a parked commit is told it is parked; only the request that parked it
        // may hear `committed_causal`, so no two callers both believe they committed it.
        IntentState::Waiting => {
            return Outcome::Waiting {
                next_expected: c.last_committed + 1,
                repeat: true,
            }
        }
        IntentState::Ready | IntentState::Leased => {}
    }
    if hold_sensitive && intent.sensitive {
        let detail = "a sensitive intent's commit came while the guard was degraded".to_owned();
        to_review(book, stream, seq, reason::GUARD_DEGRADED, detail, now);
        return refuse(Refusal::GuardDegraded);
    }
    let turn = seq == c.last_committed + 1;
    // A version can only grow: one already passed can never match again.
    if expected.is_some_and(|v| v != c.version && (turn || v < c.version)) {
        return refuse(Refusal::VersionMismatch);
    }
    if !turn {
        book.update_intent(stream, seq, |i| {
            i.state = IntentState::Waiting;
            i.waiting_since = now;
            i.expected_version = expected.unwrap_or(-1);
        });
        return Outcome::Waiting {
            next_expected: c.last_committed + 1,
            repeat: false,
        };
    }
    let version = apply_commit(book, stream, seq, now);
    cascade(book, stream, hold_sensitive, now);
    Outcome::Committed { version }
}

/// Commits `seq` (the stream's next): its effect joins the stream and the version grows.
fn apply_commit(book: &mut Book, stream: &str, seq: i64, now: i64) -> i64 {
    let mut c = book.stream(stream).unwrap_or_default();
    c.last_committed = seq;
    c.version += 1;
    book.set_stream(stream, c);
    book.update_intent(stream, seq, |i| {
        i.state = IntentState::Committed;
        i.committed_version = c.version;
        i.committed_at = now;
        i.waiting_since = 0;
    });
    c.version
}

/// Applies parked commits while the next one is parked; a parked commit whose expected
/// version no longer matches goes to review instead, and the stream stops there (as does a
/// sensitive one while the guard is degraded).
fn cascade(book: &mut Book, stream: &str, hold_sensitive: bool, now: i64) {
    loop {
        let c = book.stream(stream).unwrap_or_default();
        let next = c.last_committed + 1;
        let Some(parked) = book.intent(stream, next) else {
            return;
        };
        if parked.state != IntentState::Waiting {
            return;
        }
        let expected = parked.expected_version;
        if expected >= 0 && expected != c.version {
            let detail = format!(
                "parked commit expected version {expected}; the stream was at {} when its turn came",
                c.version
            );
            to_review(book, stream, next, reason::VERSION_CONFLICT, detail, now);
            return;
        }
        if hold_sensitive && parked.sensitive {
            let detail = "a sensitive intent's parked commit came due while the guard was degraded";
            to_review(
                book,
                stream,
                next,
                reason::GUARD_DEGRADED,
                detail.to_owned(),
                now,
            );
            return;
        }
        apply_commit(book, stream, next, now);
    }
}

/// Moves the intent at `seq` to review; returns the new item's id.
fn to_review(
    book: &mut Book,
    stream: &str,
    seq: i64,
    why: &str,
    detail: String,
    now: i64,
) -> String {
    let intent_id = book
        .intent(stream, seq)
        .map(|i| i.intent_id.clone())
        .unwrap_or_default();
    book.update_intent(stream, seq, |i| {
        i.state = IntentState::Review;
        i.waiting_since = 0;
    });
    new_review(book, stream, &intent_id, seq, why, detail, now)
}

fn new_review(
    book: &mut Book,
    stream: &str,
    intent_id: &str,
    seq: i64,
    why: &str,
    detail: String,
    now: i64,
) -> String {
    let id = new_id("rv");
    book.insert_review(ReviewItem {
        id: id.clone(),
        created_at: now,
        reason: why.to_owned(),
        stream: stream.to_owned(),
        intent_id: intent_id.to_owned(),
        seq,
        detail,
        state: ReviewState::Open,
        action: String::new(),
        actor: String::new(),
        note: String::new(),
        resolved_at: 0,
    });
    id
}

fn timeout(book: &mut Book, stream: &str, seq: i64, older_than: i64, now: i64) -> Outcome {
    let due = book
        .intent(stream, seq)
        .is_some_and(|i| i.state == IntentState::Waiting && i.waiting_since <= older_than);
    if !due {
        return Outcome::NotDue;
    }
    let c = book.stream(stream).unwrap_or_default();
    let waited = book
        .intent(stream, seq)
        .map_or(0, |i| now - i.waiting_since);
    let detail = format!(
        "commit of sequence {seq} waited {waited} ms for sequence {} (last committed {})",
        c.last_committed + 1,
        c.last_committed
    );
    Outcome::TimedOut(to_review(
        book,
        stream,
        seq,
        reason::CAUSAL_TIMEOUT,
        detail,
        now,
    ))
}

fn replay(
    book: &mut Book,
    stream: &str,
    intent_id: &str,
    as_of: i64,
    ttls: &TtlTable,
    now: i64,
) -> Outcome {
    let Some(seq) = book.seq_of(stream, intent_id) else {
        return Outcome::UnknownIntent;
    };
    let Some(intent) = book.intent(stream, seq).cloned() else {
        return Outcome::UnknownIntent;
    };
    // TTL first, then the version: both before any side effect.
    let age = now - intent.arrived_at;
    let ttl_ms = ttls.of(&intent.intent_type);
    if age > ttl_ms {
        let review_id = match book.open_review(stream, intent_id, reason::EXPIRED_REPLAY) {
            Some(r) => r.id.clone(),
            None => {
                let detail = format!(
                    "replay of a {} intent {age} ms old; its TTL is {ttl_ms} ms",
                    intent.intent_type
                );
                new_review(
                    book,
                    stream,
                    intent_id,
                    seq,
                    reason::EXPIRED_REPLAY,
                    detail,
                    now,
                )
            }
        };
        return Outcome::Expired { review_id };
    }
    let version = book.stream(stream).unwrap_or_default().version;
    if as_of != version {
        return Outcome::ReplayConflict { version };
    }
    book.update_intent(stream, seq, |i| i.replays += 1);
    let intent = book.intent(stream, seq).cloned().unwrap_or(intent);
    Outcome::Replayed {
        intent: Box::new(intent),
        version,
    }
}

fn resolve(
    book: &mut Book,
    id: &str,
    (stream, seq): (&str, i64),
    action: Action,
    actor: &str,
    note: &str,
    now: i64,
) -> Outcome {
    let Some(item) = book.review(id).cloned() else {
        return Outcome::UnknownReview;
    };
    if item.state == ReviewState::Resolved {
        return Outcome::Resolved {
            item: Box::new(item),
            fresh: false,
        };
    }
    if action == Action::Requeue {
        let state = book.intent(stream, seq).map(|i| i.state);
        match state {
            Some(IntentState::Review | IntentState::Ready | IntentState::Leased) => {
                book.update_intent(stream, seq, |i| {
                    i.state = IntentState::Ready;
                    i.worker.clear();
                    i.lease_until = 0;
                    i.expected_version = -1;
                    i.waiting_since = 0;
                });
            }
            Some(state) => return Outcome::ActionRefused { state },
            None => return Outcome::UnknownReview,
        }
    }
    book.update_review(id, |r| {
        r.state = ReviewState::Resolved;
        r.action = action.as_str().to_owned();
        r.actor = actor.to_owned();
        r.note = note.to_owned();
        r.resolved_at = now;
    });
    book.audit(Audit::new(
        now,
        actor,
        &format!("review.{}", action.as_str()),
        id,
        format!(
            "{} of stream {stream} intent {} (sequence {seq}): {note}",
            item.reason, item.intent_id
        ),
    ));
    let item = book.review(id).cloned().unwrap_or(item);
    Outcome::Resolved {
        item: Box::new(item),
        fresh: true,
    }
}

#[cfg(test)]
mod tests;
