//! Who may claim an idempotency key, as one pure rule over the stored record. The same rule is
//! written inside the atomic step that enforces it — the `FREE` condition of the SQL claim —
//! and applied to the Redis copy's completed records, which answer replays; `tests/contracts/idem_rule.rs`
//! checks they agree on every case.

use super::Begun;
use crate::store::idem::{fingerprints_conflict, IdemRecord, IdemState};

/// What a `begin` finds in a key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnBegin {
    /// The key is free: absent, expired, released, or a lapsed claim whose fingerprint does
    /// not conflict. A new claim may be made.
    Claim,
    /// The record answers.
    Answer(Begun),
}

/// The rule: a live record answers, in this order — another request's fingerprint
/// (`fingerprint_mismatch`), a completion (`completed`, its response), a live claim
/// (`in_progress`); anything else leaves the key free.
pub fn on_begin(rec: Option<&IdemRecord>, fingerprint: &str, now: i64) -> OnBegin {
    let Some(rec) = rec.filter(|r| r.live(now) && r.state != IdemState::Released) else {
        return OnBegin::Claim;
    };
    if fingerprints_conflict(&rec.fingerprint, fingerprint) {
        return OnBegin::Answer(Begun::FingerprintMismatch);
    }
    match rec.state {
        IdemState::Completed => OnBegin::Answer(Begun::Completed {
            response: rec.response.clone().unwrap_or_default(),
            correlation: rec.correlation.clone(),
        }),
        IdemState::InProgress if rec.lease_until > now => OnBegin::Answer(Begun::InProgress {
            retry_after_ms: rec.lease_until - now,
        }),
        _ => OnBegin::Claim,
    }
}

/// The answer to a claim SQL refused, from the record it found: the rule's answer, or — when
/// the record looks free again by now (it changed between the two) — a busy answer that asks
/// for an immediate retry.
pub fn refused(rec: Option<&IdemRecord>, fingerprint: &str, now: i64) -> Begun {
    match on_begin(rec, fingerprint, now) {
        OnBegin::Answer(begun) => begun,
        OnBegin::Claim => Begun::InProgress { retry_after_ms: 1 },
    }
}

/// Whether a refused `complete`, `fail` or `extend` of the claim `token` is a retry of one
/// that was applied: the record is already where the write would leave it. (An extend is
/// never a retry: a lease end cannot tell.)
pub fn already_applied(rec: Option<&IdemRecord>, token: i64, target: IdemState) -> bool {
    target != IdemState::InProgress && rec.is_some_and(|r| r.token == token && r.state == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: IdemState, lease_until: i64) -> IdemRecord {
        IdemRecord {
            key: "k".into(),
            state,
            token: 5,
            fingerprint: "a".into(),
            lease_until,
            expires_at: 1_000,
            response: Some("{}".into()),
            correlation: Default::default(),
        }
    }

    #[test]
    fn a_refused_claim_answers_from_the_durable_record() {
        let done = rec(IdemState::Completed, 0);
        assert_eq!(
            refused(Some(&done), "a", 10),
            Begun::Completed {
                response: "{}".into(),
                correlation: Default::default(),
            }
        );
        assert_eq!(refused(Some(&done), "b", 10), Begun::FingerprintMismatch);
        assert_eq!(refused(Some(&done), "", 10), refused(Some(&done), "a", 10));
        let running = rec(IdemState::InProgress, 110);
        assert_eq!(
            refused(Some(&running), "a", 10),
            Begun::InProgress {
                retry_after_ms: 100
            }
        );
        // Expired records never answer.
        assert_eq!(
            refused(Some(&done), "b", 2_000),
            Begun::InProgress { retry_after_ms: 1 }
        );
    }

    #[test]
    fn released_expired_and_lapsed_records_leave_the_key_free() {
        assert_eq!(on_begin(None, "a", 10), OnBegin::Claim);
        let released = rec(IdemState::Released, 0);
        assert_eq!(on_begin(Some(&released), "b", 10), OnBegin::Claim);
        let lapsed = rec(IdemState::InProgress, 10);
        assert_eq!(on_begin(Some(&lapsed), "a", 10), OnBegin::Claim);
        assert_eq!(on_begin(Some(&lapsed), "", 10), OnBegin::Claim);
        assert_eq!(
            on_begin(Some(&lapsed), "b", 10),
            OnBegin::Answer(Begun::FingerprintMismatch)
        );
    }

    #[test]
    fn only_a_finished_claim_is_its_own_retry() {
        let done = rec(IdemState::Completed, 0);
        assert!(already_applied(Some(&done), 5, IdemState::Completed));
        assert!(!already_applied(Some(&done), 6, IdemState::Completed));
        assert!(!already_applied(Some(&done), 5, IdemState::Released));
        let running = rec(IdemState::InProgress, 10);
        assert!(!already_applied(Some(&running), 5, IdemState::InProgress));
        assert!(!already_applied(None, 5, IdemState::Completed));
    }
}
