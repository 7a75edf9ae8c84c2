//! Semaphore permits as the stores keep them: one record per grant (owner, count, expiry,
//! fencing token), and a semaphore's count is always the sum of its live records on the
//! store's clock — never a counter that could drift from them.

use std::future::Future;

use super::{Holder, Lease, Step, StoreError, Touched};
use crate::key::Key;

/// Largest `limit` a semaphore may have (a count is summed over at most this many records).
pub const MAX_LIMIT: i64 = 10_000;

/// A permit grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// Holder.
    pub owner: String,
    /// Fencing token of the grant; the permit's id.
    pub token: i64,
    /// Permits it holds.
    pub count: i64,
    /// Expiry, epoch milliseconds.
    pub expires_at: i64,
}

impl Permit {
    /// The permit as a lease of its semaphore (for the rules extends and releases share with
    /// locks).
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            token: self.token,
            expires_at: self.expires_at,
            hold_until: None,
            shared: false,
        }
    }
}

/// An acquire of permits.
#[derive(Debug, Clone, Copy)]
pub struct PermitAsk<'a> {
    /// Semaphore name.
    pub name: &'a Key,
    /// Holder identity.
    pub owner: &'a str,
    /// The limit the caller believes the semaphore has, 1..=[`MAX_LIMIT`].
    pub limit: i64,
    /// Permits asked for, 1..=`limit`.
    pub count: i64,
    /// Lease length, ms.
    pub ttl_ms: i64,
}

/// The outcome of one atomic permit acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermitReply {
    /// New permits were granted; `available` is what is left under the limit.
    Granted {
        /// The grant.
        permit: Permit,
        /// Permits still free.
        available: i64,
    },
    /// The caller's live permit, handed back as it is.
    Held {
        /// The grant.
        permit: Permit,
        /// Permits still free.
        available: i64,
    },
    /// The request does not fit.
    Full {
        /// Permits held now.
        held: i64,
        /// ms until the next permit expires, at most.
        retry_after_ms: i64,
    },
    /// Live permits were granted under another limit.
    LimitMismatch {
        /// The semaphore's limit.
        limit: i64,
    },
    /// This epoch used all its counter values for the slot (or semaphore).
    CounterExhausted,
    /// The store is not at the caller's epoch.
    EpochMismatch {
        /// The store's epoch, if it still has one.
        found: Option<i64>,
    },
}

/// A semaphore's live permits, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    /// The limit the live permits were granted under (`None` when none lives).
    pub limit: Option<i64>,
    /// Permits held.
    pub held: i64,
    /// Live permit records.
    pub holders: i64,
}

/// Atomic permit steps, implemented once per backend. A permit is named in extends and
/// releases like a lease: [`Holder`] with the semaphore's name as its key, and its token.
pub trait PermitStore: Send + Sync {
    /// Grants `ask.count` permits if they fit under `ask.limit` with every live permit, as of
    /// `epoch`, as `rule` decides over the live permits. A store that decides in Rust applies
    /// `rule` inside its atomic step; one that decides in a script (`sem_acquire.lua`) writes
    /// the same rule there, and `tests/contracts/semaphore_rule.rs` holds it to `rule`.
    fn acquire_permit(
        &self,
        ask: &PermitAsk<'_>,
        rule: PermitRule,
        epoch: i64,
        now: i64,
    ) -> impl Future<Output = Result<PermitReply, StoreError>> + Send;
    /// Runs `step` on the live permit `holder`, as of `epoch`. `Missed` carries the permit of
    /// that token under another owner, else the owner's live permit, as a lease.
    fn touch_permit(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> impl Future<Output = Result<Touched, StoreError>> + Send;
    /// The semaphore's live permits.
    fn census(
        &self,
        name: &Key,
        now: i64,
    ) -> impl Future<Output = Result<Census, StoreError>> + Send;
}

/// The primary tier's copy of permits granted on SQL.
pub trait PermitCopy: Send + Sync {
    /// Copies a permit granted by the SQL tier (arming, or an extend made there meanwhile)
    /// into Redis with the semaphore's limit, unless it was released here since. Returns
    /// whether it is here now.
    fn seed_permit(
        &self,
        name: &str,
        permit: &Permit,
        limit: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What an acquire finds on a semaphore, decided over its live permits by the domain's rule
/// (`semaphore::rules::on_permit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnPermit {
    /// Live permits were granted under this other limit.
    Mismatch(i64),
    /// The owner's live permit, handed back.
    Held(Permit),
    /// The request does not fit; `held` permits are taken.
    Full {
        /// Permits held.
        held: i64,
    },
    /// A new grant fits; `held` permits were taken before it.
    Grant {
        /// Permits held before the grant.
        held: i64,
    },
}

/// The acquire rule's shape: over a semaphore's live permits and the limit they were granted
/// under, what an ask finds.
pub type PermitRule = fn(&[Permit], Option<i64>, &PermitAsk<'_>) -> OnPermit;
