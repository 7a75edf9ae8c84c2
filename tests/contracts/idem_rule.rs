//! One rule, two writings and a copy: who may claim an idempotency key is decided by the pure
//! rule in `idem/rules.rs` and enforced inside the SQL claim's `FREE` condition; the Redis copy
//! answers only replays of completed keys. Every combination of stored state, expiry, lease
//! and fingerprints goes through the rule and the SQL claim on real SQLite and PostgreSQL, and
//! they must agree: the same cases claim, and the others answer the same thing. The same
//! records seeded into a real Redis and read back must answer exactly as the rule does
//! whenever the copy answers (a completed key), and leave every other case to SQL.

use std::time::Duration;

use warden::idem::rules::{on_begin, refused, OnBegin};
use warden::idem::Begun;
use warden::key::Key;
use warden::runtime::correlation::Correlation;
use warden::store::idem::{IdemCopy, IdemRecord, IdemState, IdemWrite, IdemWritten};

/// The correlation of the request that claimed stored record `n`: a replay must name it.
fn stored_by(n: usize) -> Correlation {
    Correlation {
        id: format!("claimed-{n}"),
        traceparent: format!("00-{:032x}-00f067aa0ba902b7-01", n + 1),
    }
}

/// The correlation of the probing request: never the one a replay names.
fn probe_by() -> Correlation {
    Correlation {
        id: "probe".into(),
        traceparent: String::new(),
    }
}
use warden::store::redis::RedisStore;
use warden::store::sql::SqlStore;
use warden::token::token_base;

/// The clock of every probe, ms.
const T: i64 = 10_000_000;
/// When every stored record was written.
const WRITTEN: i64 = T - 1_000;
const EPOCH: i64 = 1;

/// One stored record (or none) and the fingerprint a `begin` brings.
#[derive(Debug, Clone)]
struct Case {
    key: String,
    stored: Option<IdemRecord>,
    fingerprint: &'static str,
}

fn cases() -> Vec<Case> {
    let states = [
        None,
        Some(IdemState::InProgress),
        Some(IdemState::Completed),
        Some(IdemState::Released),
    ];
    let mut out = Vec::new();
    for state in states {
        for stored_fp in ["", "a", "b"] {
            for expired in [false, true] {
                for lapsed in [false, true] {
                    for fingerprint in ["", "a"] {
                        let key = format!("case-{}", out.len());
                        let stored = state.map(|state| IdemRecord {
                            key: key.clone(),
                            state,
                            token: token_base(EPOCH) + out.len() as i64 + 1,
                            fingerprint: stored_fp.into(),
                            lease_until: if lapsed { T - 500 } else { T + 500 },
                            expires_at: if expired { T - 100 } else { T + 5_000 },
                            response: (state == IdemState::Completed)
                                .then(|| format!(r#"{{"n":{}}}"#, out.len())),
                            correlation: stored_by(out.len()),
                        });
                        out.push(Case {
                            key,
                            stored,
                            fingerprint,
                        });
                    }
                }
            }
        }
    }
    out
}

/// The rule's verdict: `None` to claim, or the answer.
fn by_rule(c: &Case) -> Option<Begun> {
    match on_begin(c.stored.as_ref(), c.fingerprint, T) {
        OnBegin::Claim => None,
        OnBegin::Answer(b) => Some(b),
    }
}

async fn write(sql: &SqlStore, w: IdemWrite) -> IdemWritten {
    sql.apply_idem(vec![w]).await.unwrap().remove(0)
}

/// Stores `c.stored` in SQL through the claim, complete and release writes, then claims.
async fn by_sql(sql: &SqlStore, c: &Case) -> Option<Begun> {
    if let Some(rec) = &c.stored {
        let claim = IdemWrite::Claim {
            key: c.key.clone(),
            token: Some(rec.token),
            base: token_base(EPOCH),
            fingerprint: rec.fingerprint.clone(),
            lease_until: rec.lease_until,
            expires_at: rec.expires_at,
            now: WRITTEN,
            correlation: rec.correlation.clone(),
        };
        assert!(matches!(write(sql, claim).await, IdemWritten::Applied(_)));
        let (key, token, now) = (c.key.clone(), rec.token, WRITTEN);
        let end = match rec.state {
            IdemState::InProgress => None,
            IdemState::Completed => Some(IdemWrite::Complete {
                key,
                token,
                response: rec.response.clone().unwrap(),
                now,
            }),
            IdemState::Released => Some(IdemWrite::Release { key, token, now }),
        };
        if let Some(end) = end {
            assert!(matches!(write(sql, end).await, IdemWritten::Applied(_)));
        }
    }
    let probe = IdemWrite::Claim {
        key: c.key.clone(),
        token: None,
        base: token_base(EPOCH),
        fingerprint: c.fingerprint.into(),
        lease_until: T + 1_000,
        expires_at: T + 10_000,
        now: T,
        correlation: probe_by(),
    };
    match write(sql, probe).await {
        IdemWritten::Applied(_) => None,
        IdemWritten::Refused(rec) => Some(refused(rec.as_ref(), c.fingerprint, T)),
    }
}

/// Seeds `c.stored` into the hot copy and reads it back as a `begin` does: the copy answers
/// (outer `Some`) only from a completed record; otherwise the begin goes to SQL.
async fn by_copy(redis: &RedisStore, c: &Case) -> Option<Option<Begun>> {
    if let Some(rec) = &c.stored {
        redis.idem_seed(rec, None, T).await.unwrap();
    }
    let key = Key::parse(&c.key).unwrap();
    let copy = redis.idem_peek(&key).await.unwrap();
    let seeded = c
        .stored
        .as_ref()
        .filter(|r| r.state != IdemState::Released && r.live(T));
    assert_eq!(
        copy.as_ref(),
        seeded,
        "{c:?}: the copy reads back what was seeded"
    );
    match copy.filter(|r| r.state == IdemState::Completed) {
        Some(rec) => match on_begin(Some(&rec), c.fingerprint, T) {
            OnBegin::Answer(b) => Some(Some(b)),
            OnBegin::Claim => Some(None),
        },
        None => None,
    }
}

async fn agree(sql: SqlStore) {
    let redis = crate::support::Redis::start();
    let hot = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();
    hot.arm_epoch(EPOCH).await.unwrap();
    let cases = cases();
    let (mut claims, mut copied) = (0, 0);
    for c in &cases {
        let rule = by_rule(c);
        assert_eq!(
            by_sql(&sql, c).await,
            rule,
            "sql disagrees with the rule on {c:?}"
        );
        if let Some(answer) = by_copy(&hot, c).await {
            assert_eq!(answer, rule, "the copy disagrees with the rule on {c:?}");
            copied += 1;
        }
        claims += usize::from(rule.is_none());
    }
    // Both verdicts occur, so agreement is not agreement on one answer; the copy answered
    // some cases.
    assert!(
        claims > 0 && claims < cases.len() && copied > 0,
        "{claims} claims, {copied} copy answers of {}",
        cases.len()
    );
}

#[tokio::test]
async fn sqlite_and_the_copy_answer_exactly_as_the_rule_does() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    agree(sql).await;
}

#[tokio::test]
async fn postgres_and_the_copy_answer_exactly_as_the_rule_does() {
    let (_pg, sql) = crate::support::postgres_store().await;
    agree(sql).await;
}
