//! Fences: the highest token per resource, raised by one conditional upsert (durable, so a
//! Redis reset can never let a stale token pass).

use super::{classify, SqlStore};
use crate::store::StoreError;

const RAISE: &str = "
INSERT INTO warden_fences (resource, highest) VALUES ($1, $2)
ON CONFLICT (resource) DO UPDATE SET highest = excluded.highest
WHERE warden_fences.highest <= excluded.highest
RETURNING highest";

const HIGHEST: &str = "SELECT highest FROM warden_fences WHERE resource = $1";

impl SqlStore {
    /// Records `token` for `resource` if it is at least the highest seen. Returns
    /// `Ok(Ok(()))` when accepted, `Ok(Err(highest))` when stale.
    pub async fn fence_check(
        &self,
        resource: &str,
        token: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let accepted = sqlx::query(RAISE)
            .bind(resource)
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        if accepted.is_some() {
            return Ok(Ok(()));
        }
        let highest: i64 = sqlx::query_scalar(HIGHEST)
            .bind(resource)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(Err(highest))
    }
}
