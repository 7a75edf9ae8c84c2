//! The cache's background work: invalidations made while failed over are applied to Redis
//! (before the cache answers from a new Redis epoch, and every `cache.replay_every_ms` after,
//! for an instance that was still failed over when it made one), and every namespace in use is
//! walked for expired and invalidated entries, so their bytes come back within a bounded time;
//! an applied invalidation is forgotten `cache.invalidations_kept_ms` later, so its SQL table
//! stays bounded.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{apply, Cache};
use crate::metrics_names as m;
use crate::store::cache::CacheCopy;
use crate::tier::Primary;

/// Pending invalidations read per pass.
const REPLAY_BATCH: i64 = 1_000;

impl Cache {
    /// Applies the invalidations kept in SQL to Redis; once none is left, records `epoch` as
    /// done. Whether none is left. Unless `again`, an epoch done already is not looked at.
    pub(super) async fn replay(&self, p: Primary<'_>, epoch: i64, again: bool) -> bool {
        let _one = self.replaying.lock().await;
        if !again && self.replayed.load(Ordering::Acquire) >= epoch {
            return true;
        }
        let sql = self.tier.durable();
        loop {
            metrics::counter!(m::CACHE_SQL, "statement" => "pending").increment(1);
            let pending = match self.tier.on_durable(sql.cache_pending(REPLAY_BATCH)).await {
                Ok(p) => p,
                Err(b) => {
                    tracing::warn!(reason = b.reason(), "cache invalidations not read");
                    return false;
                }
            };
            for inv in &pending {
                let applied = p
                    .call(|s| apply(s, &inv.ns, &inv.kind, &inv.target, self.max_lease()))
                    .await;
                if let Err(e) = applied {
                    tracing::warn!(error = %e, "cache invalidation not applied to redis");
                    return false;
                }
                metrics::counter!(m::CACHE_SQL, "statement" => "replayed").increment(1);
                let at = self.tier.now();
                if let Err(b) = self.tier.on_durable(sql.cache_replayed(&inv.id, at)).await {
                    tracing::warn!(reason = b.reason(), "cache invalidation not marked");
                    return false;
                }
                tracing::info!(ns = %inv.ns, kind = %inv.kind, "cache invalidation made while failed over applied to redis");
            }
            if (pending.len() as i64) < REPLAY_BATCH {
                break;
            }
        }
        self.replayed.fetch_max(epoch, Ordering::AcqRel);
        true
    }

    /// Forgets invalidations applied to Redis more than `cache.invalidations_kept_ms` ago (at
    /// most one batch per pass): nothing reads them again once applied.
    async fn forget_applied(&self) {
        let before = self.tier.now() - self.cfg.invalidations_kept_ms as i64;
        let sql = self.tier.durable();
        metrics::counter!(m::CACHE_SQL, "statement" => "forget").increment(1);
        match self
            .tier
            .on_durable(sql.cache_reap(before, REPLAY_BATCH))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(forgotten = n, "applied cache invalidations forgotten"),
            Err(b) => tracing::debug!(
                reason = b.reason(),
                "applied cache invalidations not forgotten"
            ),
        }
    }

    /// One reclaim pass over every namespace this instance used (and its size gauges).
    async fn reclaim(&self) {
        let Ok(active) = self.tier.active_durable() else {
            return;
        };
        let Some(p) = active.primary() else { return };
        let walks: Vec<(String, i64)> = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.iter().map(|(n, at)| (n.clone(), *at)).collect()
        };
        let batch = self.cfg.reclaim_batch as i64;
        for (ns, from) in walks {
            match p.call(|s| s.cache_reclaim(&ns, from, batch)).await {
                Ok((forgotten, next)) => {
                    if forgotten > 0 {
                        metrics::counter!(m::CACHE_RECLAIMED, "ns" => ns.clone())
                            .increment(forgotten as u64);
                    }
                    self.seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(ns.clone(), next);
                    // Keeps the size gauges current.
                    if let Ok(counts) = p.call(|s| s.cache_stats(&ns)).await {
                        super::publish(&ns, &counts);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cache reclaim pass failed");
                    return;
                }
            }
        }
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Cache> {
    /// `cache_replay`: invalidations Redis missed replayed (and applied ones forgotten), every
    /// `cache.replay_every_ms`; `cache_reclaim`: memory given back, every
    /// `cache.reclaim_every_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let cache = self.clone();
        s.every(
            "cache_replay",
            Duration::from_millis(self.cfg.replay_every_ms),
            move || {
                let cache = cache.clone();
                async move {
                    if let Ok(active) = cache.tier.active_durable() {
                        if let Some(p) = active.primary() {
                            // Again each time: an instance that had not seen the switch yet may
                            // have kept one since.
                            if cache.replay(p, active.epoch, true).await {
                                cache.forget_applied().await;
                            }
                        }
                    }
                }
            },
        );
        let cache = self.clone();
        s.every(
            "cache_reclaim",
            Duration::from_millis(self.cfg.reclaim_every_ms),
            move || {
                let cache = cache.clone();
                async move { cache.reclaim().await }
            },
        );
    }
}
