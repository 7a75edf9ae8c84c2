//! Rate-limit state as the primary tier keeps it: one Redis key per limit of a subject, all
//! in one slot, read and charged in one atomic step on Redis's clock. Stores count; what a
//! count means (allowed, limited, shadow) is decided in `crate::ratelimit`.

use std::future::Future;

use crate::store::StoreError;

/// One limit as a check applies it: the policy's numbers after any degraded factor or ramp.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// `g` (gcra) or `s` (sliding_log).
    pub algorithm: &'static str,
    /// Units per period (fractional while a fail-back ramps the rate up).
    pub rate: f64,
    /// Period, µs.
    pub period_us: i64,
    /// Most units in use at once.
    pub capacity: i64,
}

/// One limit after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// Units still free.
    pub remaining: i64,
    /// Until the limit is wholly free again, µs.
    pub reset_us: i64,
}

/// What a check, peek or refund found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Whether the cost was (check), would be (peek) admitted.
    pub admitted: bool,
    /// Until the cost would fit, µs (0 when admitted).
    pub retry_us: i64,
    /// Each limit, in the policy's order.
    pub limits: Vec<Left>,
}

/// Which step a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Charge `cost` to every limit if all admit it.
    Check,
    /// Read only.
    Peek,
    /// Give `cost` back (never above capacity).
    Refund,
}

/// The primary tier's rate-limit steps.
pub trait LimitCopy: Send + Sync {
    /// Runs `step` for `cost` over the keys of one subject (`keys[i]` holds `limits[i]`).
    /// State written before `fresh_after_us` (Redis clock; 0 for none) counts as full.
    fn count(
        &self,
        step: Step,
        keys: &[String],
        limits: &[Applied],
        cost: i64,
        fresh_after_us: i64,
    ) -> impl Future<Output = Result<Counted, StoreError>> + Send;

    /// Deletes the subject's state.
    fn clear(&self, keys: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What an override save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideWrite {
    /// Saved.
    Saved,
    /// No such policy; nothing written.
    NoPolicy,
    /// The policy has as many overrides as allowed; nothing written.
    Full,
}

/// Which version a save may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any, or none (no `If-Match`).
    Anything,
    /// Some version (`If-Match: *`).
    Existing,
    /// Exactly this one.
    Version(i64),
}
