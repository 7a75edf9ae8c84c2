//! Rate-limit policies, overrides, the instance lease table and the aggregate usage rows, as
//! SQL keeps them. A policy save checks the version it replaces in the same transaction, so
//! two saves with one `If-Match` never both win.

use super::audit::append;
use super::{classify, col, SqlStore};
use crate::audit::Audit;
pub use crate::store::ratelimit::{Expect, OverrideWrite};
use crate::store::StoreError;

/// A policy row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// The policy as JSON.
    pub body: String,
    /// Moves on every save of the policy itself.
    pub version: i64,
    /// Moves on every save of the policy or one of its overrides.
    pub revision: i64,
}

impl SqlStore {
    /// The policy named `name` (stored key), if any.
    pub async fn rl_policy(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT body, version, revision FROM warden_ratelimit_policies WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| {
            Ok(PolicyRow {
                body: col(&r, 0)?,
                version: col(&r, 1)?,
                revision: col(&r, 2)?,
            })
        })
        .transpose()
    }

    /// Only the revision of policy `name`: what an instance asks to know its copy is current.
    pub async fn rl_revision(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT revision FROM warden_ratelimit_policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.map(|r| col(&r, 0)).transpose()
    }

    /// Every saved policy's name and revision (overrides bump the revision too), by name.
    pub async fn rl_revisions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT name, revision FROM warden_ratelimit_policies ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    /// Saves policy `name` if its current version is what `expect` allows: `Ok(version)` with
    /// the new version, or `Err(current)` (the version found, if any) and nothing written.
    pub async fn rl_save_policy(
        &self,
        name: &str,
        body: &str,
        expect: Expect,
        audit: &Audit,
    ) -> Result<Result<i64, Option<i64>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let current_row = if self.sqlite {
            "SELECT version, revision FROM warden_ratelimit_policies WHERE name = $1"
        } else {
            "SELECT version, revision FROM warden_ratelimit_policies WHERE name = $1 FOR UPDATE"
        };
        let current: Option<(i64, i64)> = sqlx::query(current_row)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?
            .map(|r| Ok::<_, StoreError>((col(&r, 0)?, col(&r, 1)?)))
            .transpose()?;
        let allowed = match (expect, current) {
            (Expect::Anything, _) => true,
            (Expect::Existing, found) => found.is_some(),
            (Expect::Version(v), found) => found.is_some_and(|(cur, _)| cur == v),
        };
        if !allowed {
            return Ok(Err(current.map(|(v, _)| v)));
        }
        // Two first saves racing (no row to lock yet) both land: the second one's version
        // follows the first's.
        let row = sqlx::query(
            "INSERT INTO warden_ratelimit_policies (name, body, version, revision, updated_at) \
             VALUES ($1, $2, 1, 1, $3) ON CONFLICT (name) DO UPDATE SET body = excluded.body, \
             version = warden_ratelimit_policies.version + 1, \
             revision = warden_ratelimit_policies.revision + 1, \
             updated_at = excluded.updated_at RETURNING version",
        )
        .bind(name)
        .bind(body)
        .bind(audit.at)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let version: i64 = col(&row, 0)?;
        append(&mut tx, self.sqlite, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(classify)?;
        Ok(Ok(version))
    }

    /// Saves the limits `body` of `subject` under policy `name` and moves the policy's
    /// revision, unless the policy does not exist or already has `max` other overrides.
    pub async fn rl_save_override(
        &self,
        name: &str,
        subject: &str,
        body: &str,
        max: i64,
        audit: &Audit,
    ) -> Result<OverrideWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        // The policy row is locked first (the UPDATE), so concurrent saves count in turn.
        let bumped = sqlx::query(
            "UPDATE warden_ratelimit_policies SET revision = revision + 1 WHERE name = $1",
        )
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if bumped.rows_affected() == 0 {
            return Ok(OverrideWrite::NoPolicy);
        }
        let others = sqlx::query(
            "SELECT COUNT(*) FROM warden_ratelimit_overrides WHERE policy = $1 AND subject <> $2",
        )
        .bind(name)
        .bind(subject)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        if col::<i64>(&others, 0)? >= max {
            return Ok(OverrideWrite::Full);
        }
        sqlx::query(
            "INSERT INTO warden_ratelimit_overrides (policy, subject, body, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (policy, subject) DO UPDATE SET \
             body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(subject)
        .bind(body)
        .bind(audit.at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        append(&mut tx, self.sqlite, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(classify)?;
        Ok(OverrideWrite::Saved)
    }

    /// The overrides of policy `name`, at most `limit` of them: `(subject, limits JSON)`.
    pub async fn rl_overrides(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject, body FROM warden_ratelimit_overrides WHERE policy = $1 \
             ORDER BY subject LIMIT $2",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    /// Renews `instance`'s row of the instance lease table at `now` and counts the instances
    /// seen since `live_after` (this one included).
    pub async fn heartbeat(
        &self,
        instance: &str,
        now: i64,
        live_after: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO warden_instances (id, seen_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(instance)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        let row = sqlx::query("SELECT COUNT(*) FROM warden_instances WHERE seen_at >= $1")
            .bind(live_after)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(col::<i64>(&row, 0)?.max(1))
    }

    /// Adds decisions taken in `local` mode to `(policy, instance)`'s usage row.
    pub async fn rl_flush_usage(
        &self,
        policy: &str,
        instance: &str,
        allowed: i64,
        limited: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warden_ratelimit_usage (policy, instance, allowed, limited, flushed_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (policy, instance) DO UPDATE SET \
             allowed = warden_ratelimit_usage.allowed + excluded.allowed, \
             limited = warden_ratelimit_usage.limited + excluded.limited, \
             flushed_at = excluded.flushed_at",
        )
        .bind(policy)
        .bind(instance)
        .bind(allowed)
        .bind(limited)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }
}
