//! Lock group records: which leases (key and token) make up a group, so it can be extended or
//! released by id. The members themselves are ordinary leases on the active tier; the record
//! is durable in SQL on every tier, written only once all members are held.

use super::{classify, col, SqlStore};
pub use crate::store::lock_group::GroupRecord;
use crate::store::StoreError;

impl SqlStore {
    /// Records group `id`.
    pub async fn save_group(&self, id: &str, group: &GroupRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warden_lock_groups (id, owner, members, ttl_ms, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&group.owner)
        .bind(&group.members)
        .bind(group.ttl_ms)
        .bind(group.expires_at)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(classify)
    }

    /// Group `id`, if recorded.
    pub async fn group(&self, id: &str) -> Result<Option<GroupRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT owner, members, ttl_ms, expires_at FROM warden_lock_groups WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| {
            Ok(GroupRecord {
                owner: col(&r, 0)?,
                members: col(&r, 1)?,
                ttl_ms: col(&r, 2)?,
                expires_at: col(&r, 3)?,
            })
        })
        .transpose()
    }

    /// Sets group `id`'s expiry.
    pub async fn extend_group(&self, id: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE warden_lock_groups SET expires_at = $2 WHERE id = $1")
            .bind(id)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(classify)
    }

    /// Forgets group `id`.
    pub async fn drop_group(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM warden_lock_groups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(classify)
    }

    /// Deletes group records whose leases all ran out before `now`.
    pub async fn reap_groups(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM warden_lock_groups WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
