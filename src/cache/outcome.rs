//! What cache calls answer: each variant is one terminal state of DESIGN §4.8, with its HTTP
//! status, in one place.

use crate::outcome::{StateDoc, Terminal};

/// A read's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Fresh: the value (JSON text) and its age.
    Hit(String, i64),
    /// Stale (asked for with `allow_stale`): the value and its age.
    Stale(String, i64),
    /// Nothing usable.
    Miss,
}

impl Terminal for Read {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("hit", 200, "`value`, `age_ms`"),
        StateDoc::json(
            "stale",
            200,
            "`value`, `age_ms` (asked for with `allow_stale`)",
        ),
        StateDoc::problem("miss", 404, "no usable entry (always while failed over)"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Hit(..) => "hit",
            Self::Stale(..) => "stale",
            Self::Miss => "miss",
        }
    }
}

/// A read-through read's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// Fresh: the value and its age.
    Hit(String, i64),
    /// Fresh, and this caller was picked to reload it before it expires (XFetch): the value,
    /// its age and the lease to store under.
    Refresh(String, i64, i64),
    /// Nothing usable: this caller loads it under the lease.
    MissLease(i64),
    /// Another caller holds the lease: a stale value meanwhile.
    Stale(String, i64),
    /// Another caller holds the lease: ask again after this many ms.
    MissWait(i64),
}

impl Terminal for Fetch {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("hit", 200, "`value`, `age_ms`"),
        StateDoc::json(
            "refresh",
            200,
            "`value`, `age_ms` and a `lease_token`: reload it before it expires (early recompute)",
        ),
        StateDoc::json(
            "miss_lease",
            200,
            "`lease_token`: load it and put it under the lease",
        ),
        StateDoc::json(
            "stale",
            200,
            "`value`, `age_ms` while another caller loads it",
        ),
        StateDoc::json(
            "miss_wait",
            202,
            "another caller loads it: ask again after `retry_after_ms`",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Hit(..) => "hit",
            Self::Refresh(..) => "refresh",
            Self::MissLease(_) => "miss_lease",
            Self::Stale(..) => "stale",
            Self::MissWait(_) => "miss_wait",
        }
    }
}

/// A write's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored (`kept`: false while failed over, when nothing is kept); entries evicted for
    /// the namespace's `max_bytes`.
    Stored {
        /// Whether the entry is held (false while the cache is failed over).
        kept: bool,
        /// Entries evicted.
        evicted: i64,
    },
    /// The lease was voided (a delete or an invalidation since it was granted), lapsed, or
    /// passed to another caller: nothing stored.
    LeaseInvalid,
}

impl Terminal for Put {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json("stored", 200, "`evicted`, `kept` (false while failed over)"),
        StateDoc::problem(
            "lease_invalid",
            409,
            "the lease was voided by a delete or an invalidation, lapsed, or passed on: nothing stored",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Stored { .. } => "stored",
            Self::LeaseInvalid => "lease_invalid",
        }
    }
}

/// The answer of deletes and invalidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalidated;

impl Terminal for Invalidated {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "invalidated",
        200,
        "nothing written before it is served again (O(1) for a tag or a namespace)",
    )];

    fn state(&self) -> &'static str {
        "invalidated"
    }
}

/// The answer of a warm-up: entries stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmed(pub usize);

impl Terminal for Warmed {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "warmed",
        200,
        "`count` entries stored (0 while failed over)",
    )];

    fn state(&self) -> &'static str {
        "warmed"
    }
}

/// The one state of a namespace's stats (`GET /v1/cache/{ns}/stats`).
pub const STATS: &[StateDoc] = &[StateDoc::json(
    "stats",
    200,
    "counters, `bytes`, `entries`, `compression_ratio`",
)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_state_is_listed() {
        assert_listed(&[
            Read::Hit("1".into(), 0),
            Read::Stale("1".into(), 0),
            Read::Miss,
        ]);
        assert_listed(&[
            Fetch::Hit("1".into(), 0),
            Fetch::Refresh("1".into(), 0, 1),
            Fetch::MissLease(1),
            Fetch::Stale("1".into(), 0),
            Fetch::MissWait(1),
        ]);
        assert_listed(&[
            Put::Stored {
                kept: true,
                evicted: 0,
            },
            Put::LeaseInvalid,
        ]);
        assert_listed(&[Invalidated]);
        assert_listed(&[Warmed(1)]);
    }
}
