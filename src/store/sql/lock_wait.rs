//! The wait-for graph of lock waiters, in SQL so every instance sees every edge: one row per
//! waiting owner and key (see migration 0019).

use super::{classify, col, SqlStore};
pub use crate::store::wait::WaitEdge;
use crate::store::StoreError;

const UPSERT: &str = "
INSERT INTO warden_lock_waits (waiter, lock_key, holder, priority, since, epoch, seen_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (waiter, lock_key) DO UPDATE SET
    holder = excluded.holder, epoch = excluded.epoch, seen_at = excluded.seen_at
RETURNING victim, cycle";

const EDGES: &str = "
SELECT waiter, lock_key, holder, priority, since FROM warden_lock_waits
WHERE epoch = $1 AND seen_at > $2 AND victim = 0";

impl SqlStore {
    /// Records (or refreshes) `edge` at `epoch`; answers the cycle if the edge's waiter was
    /// marked a deadlock's victim.
    pub async fn wait_edge(
        &self,
        edge: &WaitEdge,
        epoch: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(UPSERT)
            .bind(&edge.waiter)
            .bind(&edge.key)
            .bind(&edge.holder)
            .bind(edge.priority)
            .bind(edge.since)
            .bind(epoch)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let victim: i64 = col(&row, 0)?;
        (victim != 0).then(|| col(&row, 1)).transpose()
    }

    /// Every live edge of `epoch` seen after `fresh_after` whose waiter is not a victim yet.
    pub async fn wait_edges(
        &self,
        epoch: i64,
        fresh_after: i64,
    ) -> Result<Vec<WaitEdge>, StoreError> {
        let rows = sqlx::query(EDGES)
            .bind(epoch)
            .bind(fresh_after)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(WaitEdge {
                    waiter: col(r, 0)?,
                    key: col(r, 1)?,
                    holder: col(r, 2)?,
                    priority: col(r, 3)?,
                    since: col(r, 4)?,
                })
            })
            .collect()
    }

    /// Marks `waiter`'s waits as the victim of `cycle` (JSON text).
    pub async fn mark_victim(&self, waiter: &str, cycle: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE warden_lock_waits SET victim = 1, cycle = $2 WHERE waiter = $1")
            .bind(waiter)
            .bind(cycle)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(classify)
    }

    /// Ends `waiter`'s wait for `key`.
    pub async fn drop_wait(&self, waiter: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM warden_lock_waits WHERE waiter = $1 AND lock_key = $2")
            .bind(waiter)
            .bind(key)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(classify)
    }

    /// Deletes edges not refreshed since `before` (their waiter's instance is gone).
    pub async fn reap_waits(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM warden_lock_waits WHERE seen_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
