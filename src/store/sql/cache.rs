//! Cache invalidations made while the cache is failed over: the only cache state SQL keeps.
//! Each is one row, written once, applied to Redis when it serves again and then marked.

use super::{classify, col, SqlStore};
pub use crate::store::cache::CacheInvalidation;
use crate::store::StoreError;

impl SqlStore {
    /// Keeps an invalidation for Redis.
    pub async fn cache_invalidation(
        &self,
        inv: &CacheInvalidation,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warden_cache_invalidations (id, ns, kind, target, at, replayed) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(&inv.id)
        .bind(&inv.ns)
        .bind(&inv.kind)
        .bind(&inv.target)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Invalidations not applied to Redis yet, oldest first (at most `limit`).
    pub async fn cache_pending(&self, limit: i64) -> Result<Vec<CacheInvalidation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ns, kind, target FROM warden_cache_invalidations WHERE replayed = 0 \
             ORDER BY at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(CacheInvalidation {
                    id: col(r, 0)?,
                    ns: col(r, 1)?,
                    kind: col(r, 2)?,
                    target: col(r, 3)?,
                })
            })
            .collect()
    }

    /// Marks invalidation `id` applied to Redis at `at`.
    pub async fn cache_replayed(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE warden_cache_invalidations SET replayed = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Forgets invalidations applied before `before` (at most `limit`).
    pub async fn cache_reap(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM warden_cache_invalidations WHERE id IN (SELECT id FROM \
             warden_cache_invalidations WHERE replayed > 0 AND replayed < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
