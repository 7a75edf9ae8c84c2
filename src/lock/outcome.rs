//! The terminal states of the lock operations, each with its HTTP status, in one place.

use super::{Acquired, Read, Touch};
use crate::outcome::{StateDoc, Terminal};
use crate::tier::Mode;

/// The 409 answers extend and release share.
const NOT_OWNER: StateDoc = StateDoc::json(
    "not_owner",
    409,
    "a live lease of the key is held under another owner or token",
);
const LOCK_LOST: StateDoc = StateDoc::json(
    "lock_lost",
    409,
    "the caller's lease is gone (or, `max_hold_exceeded`, not renewed: it ends at its \
     current expiry); `reason`: expired, superseded, tier_switched or max_hold_exceeded",
);

impl Terminal for Acquired {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "lock_acquired_primary",
            200,
            "granted by Redis, with its fencing token",
        ),
        StateDoc::json(
            "lock_acquired_fallback",
            200,
            "granted by SQL, with its fencing token",
        ),
        StateDoc::json(
            "lock_busy",
            409,
            "held by another owner; `retry_after_ms`, `blocked_by`",
        ),
        StateDoc::json(
            "deadlock_detected",
            409,
            "the wait closed a cycle and this caller is its victim; `cycle`; its locks stay held",
        ),
        StateDoc::json(
            "lock_acquire_failed_safe_block",
            503,
            "no tier may grant now; `reason` says why",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Granted(g) if g.mode == Mode::Primary => "lock_acquired_primary",
            Self::Granted(_) => "lock_acquired_fallback",
            Self::Busy { .. } => "lock_busy",
            Self::Deadlock { .. } => "deadlock_detected",
            Self::Blocked(_) => "lock_acquire_failed_safe_block",
        }
    }
}

impl Terminal for super::GroupAcquired {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "lock_group_acquired",
            200,
            "every member held; `group_id`, a token per key",
        ),
        StateDoc::json(
            "lock_busy",
            409,
            "a member was held elsewhere for the whole wait; nothing is held; `blocked_at`",
        ),
        StateDoc::json(
            "deadlock_detected",
            409,
            "the group's wait closed a cycle and it is the victim; `cycle`; nothing of the \
             group is held",
        ),
        StateDoc::json(
            "lock_acquire_failed_safe_block",
            503,
            "no tier may grant now; nothing is held; `reason` says why",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Granted { .. } => "lock_group_acquired",
            Self::Busy { .. } => "lock_busy",
            Self::Deadlock { .. } => "deadlock_detected",
            Self::Blocked(_) => "lock_acquire_failed_safe_block",
        }
    }
}

/// The state of a failed extend or release.
fn refused<T>(touch: &Touch<T>) -> &'static str {
    match touch {
        Touch::Done(_) => unreachable!("refused() is asked about refusals only"),
        Touch::NotOwner => NOT_OWNER.state,
        Touch::Lost(_) => LOCK_LOST.state,
    }
}

impl Terminal for Touch<i64> {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("extended", 200, "the lease runs `ttl_ms` from now"),
        NOT_OWNER,
        LOCK_LOST,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Done(_) => "extended",
            refusal => refused(refusal),
        }
    }
}

impl Terminal for Touch<()> {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("released", 200, "the lease is ended; the key is free"),
        NOT_OWNER,
        LOCK_LOST,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Done(()) => "released",
            refusal => refused(refusal),
        }
    }
}

impl Terminal for Read {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("held", 200, "the live lease: owner, token, expiry"),
        StateDoc::json("not_held", 404, "no live lease"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Held(_) => "held",
            Self::NotHeld => "not_held",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Grant, LostReason};
    use crate::outcome::assert_listed;
    use crate::store::Lease;
    use crate::tier::Blocked;

    #[test]
    fn every_lock_outcome_has_a_listed_state_and_status() {
        let grant = |mode| {
            Acquired::Granted(Grant {
                owner: "a".into(),
                token: 1,
                expires_at: 1,
                mode,
                fresh: true,
                shared: false,
            })
        };
        let acquired = [
            grant(Mode::Primary),
            grant(Mode::Fallback),
            Acquired::Busy {
                retry_after_ms: 1,
                blocked_by: "b".into(),
                blocked_at: None,
            },
            Acquired::Deadlock { cycle: vec![] },
            Acquired::Blocked(Blocked::SafeMode),
        ];
        assert_listed(&acquired);
        assert_eq!(acquired.map(|a| a.status()), [200, 200, 409, 409, 503]);
        let lost = Touch::Lost(LostReason::Expired);
        assert_listed(&[Touch::Done(1i64), Touch::NotOwner, lost.clone()]);
        assert_listed(&[
            Touch::Done(()),
            Touch::NotOwner,
            Touch::Lost(LostReason::Superseded),
        ]);
        assert_eq!(<Touch<i64>>::NotOwner.status(), 409);
        let lease = Lease {
            owner: "a".into(),
            token: 1,
            expires_at: 1,
            hold_until: None,
            shared: false,
        };
        assert_listed(&[Read::Held(vec![lease]), Read::NotHeld]);
        assert_eq!(Read::NotHeld.status(), 404);
    }
}
