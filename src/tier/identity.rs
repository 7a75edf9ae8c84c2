//! Redis is trusted only as the process its epoch was armed on: a Redis that restarted — even
//! one that reloaded this epoch's gate from a snapshot or an AOF, with grant counters behind
//! tokens already answered and copies of sessions since revoked — has a new run id, and is
//! treated as having lost its data (a new epoch) before it grants or answers again.

use std::sync::atomic::Ordering;

use super::{reason, Mode, Tier, TierName};
use crate::store::redis::RedisStore;
use crate::store::sql::TierRow;

impl Tier {
    /// Whether the Redis behind the connection has been checked since the last Redis error:
    /// any error may have been a restart.
    pub(super) fn redis_verified(&self) -> bool {
        self.redis_verified.load(Ordering::Acquire)
    }

    /// Marks Redis as checked (`true`) or to be checked again (`false`).
    pub(super) fn set_redis_verified(&self, verified: bool) {
        self.redis_verified.store(verified, Ordering::Release);
    }

    /// Compares the run id of the Redis process with the one the armed epoch `row` was armed
    /// on: the same (or a Cluster, which has none) trusts Redis again; an epoch armed before
    /// run ids were recorded adopts this one; another one is data loss, and moves the epoch on.
    pub(super) async fn verify_redis(&self, row: &TierRow, redis: &RedisStore) {
        let found = redis.run_id().await;
        self.record(Mode::Primary, &found);
        let Ok(found) = found else { return };
        let Some(run_id) = found else {
            self.set_redis_verified(true);
            return;
        };
        if row.redis_run_id == run_id {
            self.set_redis_verified(true);
            return;
        }
        if row.redis_run_id.is_empty() {
            match self.sql.adopt_redis_run_id(row.epoch, &run_id).await {
                Ok(()) => self.set_redis_verified(true),
                Err(e) => tracing::warn!(error = %e, "cannot record the redis run id"),
            }
            return;
        }
        let _guard = self.switching.lock().await;
        let Ok(now) = self.refresh().await else {
            return;
        };
        if now.epoch != row.epoch
            || now.tier != TierName::Redis
            || now.redis_run_id != row.redis_run_id
        {
            return; // another instance acted meanwhile
        }
        let detail = format!(
            "redis restarted: run id {run_id}, armed on {}",
            row.redis_run_id
        );
        self.switch(&now, TierName::Redis, reason::REDIS_DATA_LOSS, &detail)
            .await;
    }
}
