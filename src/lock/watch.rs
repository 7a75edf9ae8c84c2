//! The lost-lock signal: a holder long-polls its lease until the wait ends (`held`) or the
//! lease is gone (`lost`, with why). The lease is read on the active tier at least every
//! [`RECHECK`] and at its expiry, so a loss through a tier switch is seen within that time and
//! an expiry at once; nothing busy-polls.

use std::time::{Duration, Instant};

use super::rules::Miss;
use super::{Locks, LostReason, Read, Touch};
use crate::key::Key;
use crate::outcome::{StateDoc, Terminal};
use crate::store::Lease;
use crate::tier::{Blocked, Mode};

/// Longest sleep between two reads of a watched lease.
pub const RECHECK: Duration = Duration::from_millis(200);

/// The answer to a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// Still the caller's when the wait ended: the lease.
    Held(Lease),
    /// Gone, and why.
    Lost(LostReason),
    /// The key's live lease is the caller's token under another owner.
    NotOwner,
}

impl Terminal for Watched {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "held",
            200,
            "still the caller's when the wait ended; `expires_at`, `ttl_ms_remaining`",
        ),
        StateDoc::json(
            "lost",
            200,
            "the lease is gone; `reason`: expired, superseded, tier_switched or \
             max_hold_exceeded",
        ),
        StateDoc::json(
            "not_owner",
            409,
            "the key's lease is this token under another owner",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Held(_) => "held",
            Self::Lost(_) => "lost",
            Self::NotOwner => "not_owner",
        }
    }
}

impl Locks {
    /// Waits up to `wait_ms` while the lease `(owner, token)` on `key` stays live; answers as
    /// soon as it is lost.
    pub async fn watch(
        &self,
        key: &Key,
        owner: &str,
        token: i64,
        wait_ms: i64,
    ) -> Result<(Watched, Mode), Blocked> {
        let deadline = Instant::now() + Duration::from_millis(wait_ms.max(0) as u64);
        loop {
            let epoch = self.tier.active(false)?.epoch;
            let (read, mode) = self.get(key).await?;
            let leases = match &read {
                Read::Held(leases) => leases.as_slice(),
                Read::NotHeld => &[],
            };
            let mine = leases.iter().find(|l| l.token == token);
            let current = match mine {
                Some(l) if l.owner == owner => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok((Watched::Held(l.clone()), mode));
                    }
                    let left =
                        Duration::from_millis((l.expires_at - self.tier.now()).max(0) as u64);
                    let nap = left.min(RECHECK).min(deadline - now);
                    tokio::time::sleep(nap.max(Duration::from_millis(1))).await;
                    continue;
                }
                // That token under another owner, else the exclusive lease (other shared
                // holders say nothing about the caller's lease).
                Some(l) => Some(l),
                None => leases.iter().find(|l| !l.shared),
            };
            let miss = Miss {
                owner,
                token,
                current,
                epoch,
                now: self.tier.now(),
                keeps_records: false,
            };
            return Ok((
                match miss.decide::<()>() {
                    Touch::Lost(why) => Watched::Lost(why),
                    _ if current.is_none() => Watched::Lost(LostReason::Expired),
                    _ => Watched::NotOwner,
                },
                mode,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_state_is_listed() {
        let lease = Lease {
            owner: "a".into(),
            token: 1,
            expires_at: 1,
            hold_until: None,
            shared: false,
        };
        assert_listed(&[
            Watched::Held(lease),
            Watched::Lost(LostReason::Expired),
            Watched::NotOwner,
        ]);
    }
}
