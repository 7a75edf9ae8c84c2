//! The tier lease: an instance acts only on a tier row it read within one tier lease, and
//! measures every shared instant on the database's clock (estimated at each renewal).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Cached, Tier};
use crate::metrics_names as m;
use crate::runtime::clock::now_ms;
use crate::store::sql::TierRow;
use crate::store::{bounded, StoreError, TierName};

impl Tier {
    /// The database's clock, as estimated here: every instant shared between instances
    /// (lease expiries, `grants_from`) is measured on it, so skewed host clocks cannot shorten
    /// a grace.
    pub fn now(&self) -> i64 {
        now_ms() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// Database clock minus local clock, in ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset.load(Ordering::Relaxed)
    }

    /// Rereads the shared tier row and renews this instance's lease on it.
    pub async fn refresh(&self) -> Result<TierRow, StoreError> {
        let started = Instant::now();
        let limit = self.cfg.tier_lease / 2;
        let before = now_ms();
        let db_now = bounded(limit, self.sql.db_now()).await?;
        let after = now_ms();
        self.clock_offset
            .store(db_now - (before + after) / 2, Ordering::Relaxed);
        let row = bounded(limit, self.sql.tier_row()).await?;
        self.install(row.clone(), started);
        Ok(row)
    }

    pub(super) fn install(&self, row: TierRow, read_at: Instant) {
        let mut slot = self.cached.write().unwrap_or_else(|p| p.into_inner());
        // Never step back to an older epoch (a slow read can finish after a switch).
        if slot.as_ref().is_some_and(|c| c.row.epoch > row.epoch) {
            return;
        }
        self.guard.store(row.guard as u8, Ordering::Relaxed);
        *slot = Some(Cached {
            row,
            lease_until: read_at + self.cfg.tier_lease,
        });
        drop(slot);
        self.publish_gauges();
    }

    pub(super) fn publish_gauges(&self) {
        let c = self.cached();
        metrics::gauge!(m::BREAKER_STATE).set(self.breaker.state().gauge());
        if let Some(c) = c {
            metrics::gauge!(m::TIER_EPOCH).set(c.row.epoch as f64);
            for t in [TierName::Redis, TierName::Sql] {
                let on = if c.row.tier == t { 1.0 } else { 0.0 };
                metrics::gauge!(m::TIER_ACTIVE, "tier" => t.as_str()).set(on);
            }
        }
    }

    /// Records that a lock with `ttl_ms` is about to be granted, so a later failover waits
    /// long enough (only when the grace is not fixed by configuration).
    pub async fn note_ttl(&self, ttl_ms: i64) -> Result<(), StoreError> {
        if self.cfg.failover_grace.is_some() {
            return Ok(());
        }
        let known = self
            .cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |c| c.row.max_ttl_ms);
        if ttl_ms <= known {
            return Ok(());
        }
        bounded(self.sql.timeout(), self.sql.raise_max_ttl(ttl_ms)).await?;
        if let Some(c) = self
            .cached
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            c.row.max_ttl_ms = c.row.max_ttl_ms.max(ttl_ms);
        }
        Ok(())
    }
}
