//! The semaphore's acquire rule, decided once over the live permits a store returns: a limit
//! mismatch first, then the owner's own permit (handed back), then whether the ask fits. The
//! SQL store applies it inside its transaction; `sem_acquire.lua` writes it again for Redis,
//! and `tests/contracts/semaphore_rule.rs` checks that both answer every case as it does.

use crate::store::semaphore::{OnPermit, Permit, PermitAsk};

/// The acquire rule over a semaphore's live permits and the limit they were granted under.
pub fn on_permit(live: &[Permit], limit: Option<i64>, ask: &PermitAsk<'_>) -> OnPermit {
    if let Some(set) = limit.filter(|l| *l != ask.limit && !live.is_empty()) {
        return OnPermit::Mismatch(set);
    }
    let held = live.iter().map(|p| p.count).sum();
    if let Some(mine) = live
        .iter()
        .filter(|p| p.owner == ask.owner)
        .max_by_key(|p| p.token)
    {
        return OnPermit::Held(mine.clone());
    }
    if held + ask.count > ask.limit {
        return OnPermit::Full { held };
    }
    OnPermit::Grant { held }
}
