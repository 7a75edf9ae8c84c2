//! The cache's read-through rule, decided once: how a stored entry stands for a read (a miss
//! once invalidated or past its stale TTL; stale past its TTL or when written under another
//! epoch; else a hit), when a fresh entry is handed to one caller to recompute early (XFetch:
//! with a probability that grows as its expiry nears, scaled by how long it took to compute),
//! and what a fetch answers given the lease. `cache_fetch.lua` writes it again inside Redis's
//! atomic step; `tests/contracts/cache_rule.rs` holds the script to it.

/// How an entry stands for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Absent, invalidated, or past its stale TTL.
    Miss,
    /// Past its TTL (within its stale TTL), or written under another epoch.
    Stale,
    /// Fresh, written in the active epoch.
    Hit,
}

/// A stored entry's facts, as of a read at `now` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Fresh until, ms.
    pub fresh_until: i64,
    /// Stale (servable on request) until, ms.
    pub stale_until: i64,
    /// Whether it was written in the active epoch.
    pub this_epoch: bool,
    /// Whether an invalidation (of its key, a tag of its, or the namespace) came after it.
    pub invalidated: bool,
}

/// How `entry` (if any) stands at `now`.
pub fn standing(entry: Option<&Entry>, now: i64) -> Standing {
    match entry {
        None => Standing::Miss,
        Some(e) if e.invalidated || now >= e.stale_until => Standing::Miss,
        Some(e) if !e.this_epoch || now >= e.fresh_until => Standing::Stale,
        Some(_) => Standing::Hit,
    }
}

/// Whether a fresh entry is recomputed early (XFetch): `now − compute_ms · beta · ln(draw)`
/// reaches its expiry, `draw` uniform in (0, 1]. An entry whose compute time is unknown (0)
/// never is.
pub fn recompute_early(now: i64, fresh_until: i64, compute_ms: i64, beta: f64, draw: f64) -> bool {
    compute_ms > 0 && now as f64 - compute_ms as f64 * beta * draw.ln() >= fresh_until as f64
}

/// What a read-through read answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFetch {
    /// The fresh value.
    Hit,
    /// The fresh value, and a lease to recompute it early.
    Refresh,
    /// No usable value: a lease to compute it.
    MissLease,
    /// The stale value (another caller holds the lease, and the caller accepts stale).
    Stale,
    /// No usable value, and another caller holds the lease: wait for it.
    MissWait,
}

/// The fetch rule: a hit is served (and handed out for early recompute when `early` and no
/// lease is out); otherwise whoever finds no lease out takes it; a caller that finds one waits,
/// or takes the stale value when it accepts one and there is one.
pub fn on_fetch(standing: Standing, early: bool, lease_out: bool, allow_stale: bool) -> OnFetch {
    match standing {
        Standing::Hit if early && !lease_out => OnFetch::Refresh,
        Standing::Hit => OnFetch::Hit,
        _ if !lease_out => OnFetch::MissLease,
        Standing::Stale if allow_stale => OnFetch::Stale,
        _ => OnFetch::MissWait,
    }
}
