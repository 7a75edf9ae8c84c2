//! The lock rules, each decided once from the facts the stores return: who an acquire finds on
//! a key ([`on_acquire`], which both atomic grant steps also write — `acquire.lua` and the SQL
//! grant — and `tests/contracts/lock_rule.rs` checks they agree), and what an extend or release that found
//! no lease of the caller's means ([`Miss`]), so every tier answers `not_owner` and `lock_lost`
//! by the same rule.

use crate::store::Lease;
use crate::token::token_parts;

/// What an acquire finds on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAcquire {
    /// The key is free (no lease, or it expired or was released): a new grant.
    Grant,
    /// The caller's own live lease: handed back as it is (an owner's retry gets its grant
    /// back, with the same token).
    Held,
    /// Another owner's live lease.
    Busy,
}

/// The acquire rule over the key's lease record, if any, at `now`.
pub fn on_acquire(current: Option<&Lease>, owner: &str, now: i64) -> OnAcquire {
    match current.filter(|l| l.expires_at > now) {
        None => OnAcquire::Grant,
        Some(l) if l.owner == owner => OnAcquire::Held,
        Some(_) => OnAcquire::Busy,
    }
}

/// Why a holder's lease is gone (`reason` of `lock_lost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// Its TTL ran out (or it was already released).
    Expired,
    /// A later grant of the key took its place.
    Superseded,
    /// It was granted on a tier that is no longer active and cannot be seen from the active one
    /// (a Redis lease after Redis failed).
    TierSwitched,
    /// An extend would have taken it past its `max_hold_ms` deadline: it is not renewed and
    /// ends at its current expiry.
    MaxHoldExceeded,
}

impl LostReason {
    /// The stable reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Superseded => "superseded",
            Self::TierSwitched => "tier_switched",
            Self::MaxHoldExceeded => "max_hold_exceeded",
        }
    }
}

/// The answer to an extend or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch<T> {
    /// Done: the extended lease's expiry, or `()` for a release.
    Done(T),
    /// A live lease of the key is held under another owner or token.
    NotOwner,
    /// The caller's lease is gone.
    Lost(LostReason),
}

/// Facts about a step that found no live lease `(owner, token)` in one store.
#[derive(Debug, Clone, Copy)]
pub struct Miss<'a> {
    /// The caller's identity.
    pub owner: &'a str,
    /// The caller's token.
    pub token: i64,
    /// The key's lease record in that store, if any (live, or ended where the store keeps it).
    pub current: Option<&'a Lease>,
    /// The epoch the step ran at.
    pub epoch: i64,
    /// The time of the step, epoch ms.
    pub now: i64,
    /// Whether the store keeps a record of every grant of the key (SQL does; an ended Redis
    /// lease leaves no trace).
    pub keeps_records: bool,
}

impl Miss<'_> {
    /// Whether the caller's token was drawn in an epoch before the one the step ran at.
    pub fn older_epoch(&self) -> bool {
        token_parts(self.token).0 < self.epoch
    }

    /// What the miss means.
    pub fn decide<T>(&self) -> Touch<T> {
        match self.current {
            Some(l) if l.token == self.token && l.owner != self.owner => Touch::NotOwner,
            // The caller's own live lease, left as it was: the step was an extend past the
            // lease's max_hold deadline (the only step a live lease of the caller's refuses).
            Some(l) if l.token == self.token && l.expires_at > self.now => {
                Touch::Lost(LostReason::MaxHoldExceeded)
            }
            Some(l) if l.token == self.token => Touch::Lost(LostReason::Expired),
            Some(l) if l.token > self.token => Touch::Lost(LostReason::Superseded),
            // A token of an earlier epoch the store has no record of: granted on a tier the
            // active one cannot see.
            _ if self.older_epoch() => Touch::Lost(LostReason::TierSwitched),
            // SQL keeps every grant's row: this epoch never granted this token for the key.
            _ if self.keeps_records => Touch::NotOwner,
            // Redis holds a lease with a smaller token: the caller's token was never granted.
            Some(_) => Touch::NotOwner,
            // Redis forgets an expired lease: this epoch's token with nothing left is expired.
            None => Touch::Lost(LostReason::Expired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::token_base;

    fn lease(owner: &str, token: i64, expires_at: i64) -> Lease {
        Lease {
            owner: owner.into(),
            token,
            expires_at,
            hold_until: None,
            shared: false,
        }
    }

    /// The time of every probe: leases expiring after it are live.
    const NOW: i64 = 50;

    fn decide(current: Option<&Lease>, token: i64, epoch: i64, keeps: bool) -> Touch<()> {
        Miss {
            owner: "a",
            token,
            current,
            epoch,
            now: NOW,
            keeps_records: keeps,
        }
        .decide()
    }

    const LOST_EXPIRED: Touch<()> = Touch::Lost(LostReason::Expired);
    const SUPERSEDED: Touch<()> = Touch::Lost(LostReason::Superseded);
    const SWITCHED: Touch<()> = Touch::Lost(LostReason::TierSwitched);

    #[test]
    fn the_callers_own_token_is_expired_or_someone_elses() {
        let t = token_base(3) + 7;
        for keeps in [true, false] {
            assert_eq!(decide(Some(&lease("a", t, 0)), t, 3, keeps), LOST_EXPIRED);
            assert_eq!(
                decide(Some(&lease("b", t, 99)), t, 3, keeps),
                Touch::NotOwner
            );
        }
    }

    #[test]
    fn the_callers_own_live_lease_left_as_it_was_is_capped() {
        let t = token_base(3) + 7;
        for keeps in [true, false] {
            let capped = Touch::Lost(LostReason::MaxHoldExceeded);
            assert_eq!(decide(Some(&lease("a", t, NOW + 1)), t, 3, keeps), capped);
            assert_eq!(decide(Some(&lease("a", t, NOW)), t, 3, keeps), LOST_EXPIRED);
        }
    }

    #[test]
    fn a_later_grant_supersedes_whatever_the_tier() {
        let t = token_base(3) + 7;
        for (epoch, keeps) in [(3, true), (3, false), (4, true), (4, false)] {
            let later = lease("b", t + 1, 99);
            assert_eq!(decide(Some(&later), t, epoch, keeps), SUPERSEDED);
        }
        let next_epoch = lease("a", token_base(4) + 1, 99);
        assert_eq!(decide(Some(&next_epoch), t, 4, false), SUPERSEDED);
    }

    #[test]
    fn an_earlier_epochs_token_without_a_record_was_lost_with_its_tier() {
        let t = token_base(2) + 5;
        assert_eq!(decide(None, t, 3, true), SWITCHED);
        assert_eq!(decide(None, t, 3, false), SWITCHED);
    }

    #[test]
    fn this_epochs_token_without_a_record_depends_on_what_the_store_keeps() {
        let t = token_base(3) + 5;
        assert_eq!(
            decide(None, t, 3, true),
            Touch::NotOwner,
            "sql keeps every row"
        );
        assert_eq!(decide(None, t, 3, false), LOST_EXPIRED, "redis forgets");
        let smaller = lease("b", t - 1, 99);
        assert_eq!(decide(Some(&smaller), t, 3, false), Touch::NotOwner);
        assert_eq!(decide(Some(&smaller), t, 3, true), Touch::NotOwner);
    }
}
