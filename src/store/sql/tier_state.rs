//! The shared tier row: active tier, epoch (a durable counter that only grows), when the
//! current epoch may start granting, and what Redis was last armed for.

use super::{classify, col, SqlStore};
use crate::store::{GuardState, StoreError, TierName};

/// The tier row's columns, in [`TierRow`] order (a macro so statements stay `&'static str`).
macro_rules! columns {
    () => {
        "tier, epoch, grants_from, reason, changed_at, max_ttl_ms, redis_armed_epoch, redis_arming_since, guard, \
         redis_run_id"
    };
}

/// The tier row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierRow {
    /// The active tier.
    pub tier: TierName,
    /// Current epoch.
    pub epoch: i64,
    /// No grant in this epoch before this instant (epoch ms): old-tier leases may be live.
    pub grants_from: i64,
    /// Why the last switch happened.
    pub reason: String,
    /// When the last switch happened (epoch ms).
    pub changed_at: i64,
    /// Longest lock TTL ever granted, for the default failover grace.
    pub max_ttl_ms: i64,
    /// The last epoch Redis's gate was armed for.
    pub redis_armed_epoch: i64,
    /// While that arming is in progress, when it began (database clock, ms); 0 once done.
    pub redis_arming_since: i64,
    /// The guard's state, shared by every instance under the tier lease.
    pub guard: GuardState,
    /// The run id of the Redis process the armed epoch was armed on (`""` before any).
    pub redis_run_id: String,
}

fn row_of(row: &sqlx::any::AnyRow) -> Result<TierRow, StoreError> {
    Ok(TierRow {
        tier: {
            let name: String = col(row, 0)?;
            TierName::parse(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown tier {name:?} in row")))?
        },
        epoch: col(row, 1)?,
        grants_from: col(row, 2)?,
        reason: col(row, 3)?,
        changed_at: col(row, 4)?,
        max_ttl_ms: col(row, 5)?,
        redis_armed_epoch: col(row, 6)?,
        redis_arming_since: col(row, 7)?,
        guard: {
            let name: String = col(row, 8)?;
            GuardState::parse(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown guard state {name:?}")))?
        },
        redis_run_id: col(row, 9)?,
    })
}

impl SqlStore {
    /// Reads the tier row.
    pub async fn tier_row(&self) -> Result<TierRow, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM warden_tier WHERE id = 1"
        ))
        .fetch_one(&self.control)
        .await
        .map_err(classify)?;
        row_of(&row)
    }

    /// Switches to `tier` with epoch `expected + 1`, if the epoch is still `expected`.
    /// Returns the new row, or `None` if another instance switched first.
    pub async fn switch_tier(
        &self,
        expected: i64,
        tier: TierName,
        reason: &str,
        now: i64,
        grants_from: i64,
    ) -> Result<Option<TierRow>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE warden_tier SET tier = $1, epoch = epoch + 1, reason = $2, changed_at = $3,
                 grants_from = $4
             WHERE id = 1 AND epoch = $5 RETURNING ",
            columns!()
        ))
        .bind(tier.as_str())
        .bind(reason)
        .bind(now)
        .bind(grants_from)
        .bind(expected)
        .fetch_optional(&self.control)
        .await
        .map_err(classify)?;
        row.as_ref().map(row_of).transpose()
    }

    /// Records that Redis is being armed for `epoch` from `now` on (before its gates are
    /// raised). `false` if `epoch` is no longer the current Redis epoch or another instance
    /// is already arming it: exactly one instance arms each epoch.
    pub async fn mark_redis_armed(&self, epoch: i64, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE warden_tier SET redis_armed_epoch = $1, redis_arming_since = $2
             WHERE id = 1 AND epoch = $1 AND tier = 'redis' AND redis_armed_epoch < $1",
        )
        .bind(epoch)
        .bind(now)
        .execute(&self.control)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes back the arming of `epoch` begun at `since` that failed before its gates were all
    /// written, so the next supervision step arms again at once (a missing gate of an epoch
    /// recorded as armed reads as data loss, and an arming recorded as under way holds every
    /// instance back for the whole arming window).
    pub async fn abandon_arming(&self, epoch: i64, since: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE warden_tier SET redis_armed_epoch = $1 - 1, redis_arming_since = 0
             WHERE id = 1 AND redis_armed_epoch = $1 AND redis_arming_since = $2",
        )
        .bind(epoch)
        .bind(since)
        .execute(&self.control)
        .await
        .map(drop)
        .map_err(classify)
    }

    /// Records `run_id` as the Redis process `epoch` was armed on, for an epoch armed before
    /// run ids were recorded.
    pub async fn adopt_redis_run_id(&self, epoch: i64, run_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE warden_tier SET redis_run_id = $2
             WHERE id = 1 AND redis_armed_epoch = $1 AND redis_run_id = ''",
        )
        .bind(epoch)
        .bind(run_id)
        .execute(&self.control)
        .await
        .map(drop)
        .map_err(classify)
    }

    /// Records that every gate of `epoch` is written, on the Redis process `run_id`.
    pub async fn finish_arming(&self, epoch: i64, run_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE warden_tier SET redis_arming_since = 0, redis_run_id = $2
             WHERE id = 1 AND redis_armed_epoch = $1",
        )
        .bind(epoch)
        .bind(run_id)
        .execute(&self.control)
        .await
        .map(drop)
        .map_err(classify)
    }

    /// Raises the recorded longest lock TTL to `ttl_ms`.
    pub async fn raise_max_ttl(&self, ttl_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE warden_tier SET max_ttl_ms = $1 WHERE id = 1 AND max_ttl_ms < $1")
            .bind(ttl_ms)
            .execute(&self.control)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
