//! SQL semaphore steps. An acquire is one transaction holding the semaphore's row (and, on
//! PostgreSQL, a share lock on the tier row, so a tier switch waits for it and arming sees
//! every permit it granted); it sums the live permit rows and grants by [`on_permit`]. Extends
//! and releases are one conditional statement each that also checks the tier epoch.

use super::{classify, col, SqlStore};
use crate::key::Key;
use crate::store::semaphore::{
    Census, OnPermit, Permit, PermitAsk, PermitReply, PermitRule, PermitStore,
};
use crate::store::{Holder, Step, StoreError, Touched};
use crate::token::{token_base, COUNTER_MAX};

const ENSURE: &str = "
INSERT INTO warden_semaphores (name, limit_n, counter, token) VALUES ($1, $2, 0, 0)
ON CONFLICT (name) DO NOTHING";

const ROW: &str = "SELECT limit_n, counter, token FROM warden_semaphores WHERE name = $1";

const PURGE: &str = "DELETE FROM warden_permits WHERE name = $1 AND expires_at <= $2";

const LIVE: &str = "
SELECT owner, token, count_n, expires_at FROM warden_permits WHERE name = $1";

const SET: &str = "
UPDATE warden_semaphores SET limit_n = $2, counter = $3, token = $4 WHERE name = $1";

const GRANT: &str = "
INSERT INTO warden_permits (name, token, owner, count_n, expires_at) VALUES ($1, $2, $3, $4, $5)";

const EXTEND: &str = "
UPDATE warden_permits SET expires_at = $4
WHERE name = $1 AND token = $2 AND owner = $3 AND expires_at > $5
  AND EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $6)";

const RELEASE: &str = "
DELETE FROM warden_permits
WHERE name = $1 AND token = $2 AND owner = $3 AND expires_at > $4
  AND EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $5)";

/// After a touch changed nothing: the tier's epoch, and the permit of that token (under any
/// owner), else the owner's live permit.
const MISSED: &str = "
SELECT t.epoch, p.owner, p.token, p.count_n, p.expires_at
FROM warden_tier t LEFT JOIN warden_permits p
  ON p.name = $1 AND (p.token = $2 OR (p.owner = $3 AND p.expires_at > $4))
WHERE t.id = 1
ORDER BY CASE WHEN p.token = $2 THEN 0 ELSE 1 END, p.token DESC
LIMIT 1";

const CENSUS: &str = "
SELECT s.limit_n, CAST(COALESCE(SUM(p.count_n), 0) AS BIGINT), COUNT(p.token)
FROM warden_semaphores s
LEFT JOIN warden_permits p ON p.name = s.name AND p.expires_at > $2
WHERE s.name = $1
GROUP BY s.limit_n";

const LIVE_ALL: &str = "
SELECT p.owner, p.token, p.count_n, p.expires_at, p.name, s.limit_n
FROM warden_permits p JOIN warden_semaphores s ON s.name = p.name
WHERE p.expires_at > $1";

const ONE: &str = "
SELECT p.owner, p.token, p.count_n, p.expires_at, p.name, s.limit_n
FROM warden_permits p JOIN warden_semaphores s ON s.name = p.name
WHERE p.name = $1 AND p.token = $2";

const REAP_PERMITS: &str = "DELETE FROM warden_permits WHERE expires_at < $1";

const REAP_SEMAPHORES: &str = "
DELETE FROM warden_semaphores
WHERE token < $1
  AND NOT EXISTS (SELECT 1 FROM warden_permits p WHERE p.name = warden_semaphores.name)";

/// A permit from `owner, token, count_n, expires_at` starting at column `at`.
fn permit_from(row: &sqlx::any::AnyRow, at: usize) -> Result<Permit, StoreError> {
    Ok(Permit {
        owner: col(row, at)?,
        token: col(row, at + 1)?,
        count: col(row, at + 2)?,
        expires_at: col(row, at + 3)?,
    })
}

/// A permit with its semaphore's name and limit (a row of [`LIVE_ALL`] or [`ONE`]).
fn placed(row: &sqlx::any::AnyRow) -> Result<(String, Permit, i64), StoreError> {
    Ok((col(row, 4)?, permit_from(row, 0)?, col(row, 5)?))
}

impl SqlStore {
    /// Every permit live at `now`, with its semaphore's name and limit (copied into Redis at
    /// fail-back).
    pub async fn live_permits(&self, now: i64) -> Result<Vec<(String, Permit, i64)>, StoreError> {
        let rows = sqlx::query(LIVE_ALL)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(placed).collect()
    }

    /// The permit `token` of semaphore `name`, with its limit, if its row is kept.
    pub async fn permit(
        &self,
        name: &str,
        token: i64,
    ) -> Result<Option<(Permit, i64)>, StoreError> {
        let row = sqlx::query(ONE)
            .bind(name)
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(row
            .as_ref()
            .map(placed)
            .transpose()?
            .map(|(_, p, l)| (p, l)))
    }

    /// Deletes expired permit rows, and semaphore rows with no permit whose counter belongs
    /// to an epoch before `epoch` (a later grant draws a token of `epoch` or later).
    pub async fn reap_permits(&self, epoch: i64, now: i64) -> Result<u64, StoreError> {
        let permits = sqlx::query(REAP_PERMITS)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        let semaphores = sqlx::query(REAP_SEMAPHORES)
            .bind(token_base(epoch))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(permits.rows_affected() + semaphores.rows_affected())
    }
}

impl PermitStore for SqlStore {
    async fn acquire_permit(
        &self,
        ask: &PermitAsk<'_>,
        rule: PermitRule,
        epoch: i64,
        now: i64,
    ) -> Result<PermitReply, StoreError> {
        let name = ask.name.as_str();
        let mut tx = self.begin_write().await?;
        sqlx::query(ENSURE)
            .bind(name)
            .bind(ask.limit)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let (row, found) = self.row_at_epoch(&mut tx, ROW, name).await?;
        let (limit, counter, last): (i64, i64, i64) = (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
        if found != epoch {
            return Ok(PermitReply::EpochMismatch { found: Some(found) });
        }
        sqlx::query(PURGE)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let live = sqlx::query(LIVE)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?
            .iter()
            .map(|r| permit_from(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let soonest = live.iter().map(|p| p.expires_at).min().unwrap_or(now + 1);
        let held = match rule(&live, Some(limit), ask) {
            OnPermit::Mismatch(limit) => return Ok(PermitReply::LimitMismatch { limit }),
            OnPermit::Held(permit) => {
                let held: i64 = live.iter().map(|p| p.count).sum();
                let available = ask.limit - held;
                return Ok(PermitReply::Held { permit, available });
            }
            OnPermit::Full { held } => {
                tx.commit().await.map_err(classify)?;
                let retry_after_ms = (soonest - now).max(1);
                return Ok(PermitReply::Full {
                    held,
                    retry_after_ms,
                });
            }
            OnPermit::Grant { held } => held,
        };
        let base = token_base(epoch);
        let counter = if last >= base { counter + 1 } else { 1 };
        if counter > COUNTER_MAX {
            return Ok(PermitReply::CounterExhausted);
        }
        let permit = Permit {
            owner: ask.owner.to_owned(),
            token: base + counter,
            count: ask.count,
            expires_at: now + ask.ttl_ms,
        };
        sqlx::query(SET)
            .bind(name)
            .bind(ask.limit)
            .bind(counter)
            .bind(permit.token)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(GRANT)
            .bind(name)
            .bind(permit.token)
            .bind(&permit.owner)
            .bind(permit.count)
            .bind(permit.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let available = ask.limit - held - ask.count;
        Ok(PermitReply::Granted { permit, available })
    }

    /// One conditional statement extends or deletes the live permit `holder` as of `epoch`;
    /// when it changes nothing, a read says why.
    async fn touch_permit(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        let name = holder.key.as_str();
        let (done, expires_at) = match step {
            Step::Extend { ttl_ms } => {
                let q = sqlx::query(EXTEND)
                    .bind(name)
                    .bind(holder.token)
                    .bind(holder.owner)
                    .bind(now + ttl_ms)
                    .bind(now)
                    .bind(epoch);
                (q.execute(&self.pool).await, now + ttl_ms)
            }
            Step::Release => {
                let q = sqlx::query(RELEASE)
                    .bind(name)
                    .bind(holder.token)
                    .bind(holder.owner)
                    .bind(now)
                    .bind(epoch);
                (q.execute(&self.pool).await, now)
            }
        };
        if done.map_err(classify)?.rows_affected() == 1 {
            let permit = Permit {
                owner: holder.owner.to_owned(),
                token: holder.token,
                count: 0,
                expires_at,
            };
            return Ok(Touched::Done(permit.lease()));
        }
        let row = sqlx::query(MISSED)
            .bind(name)
            .bind(holder.token)
            .bind(holder.owner)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let found: i64 = col(&row, 0)?;
        if found != epoch {
            return Ok(Touched::EpochMismatch);
        }
        let owner: Option<String> = col(&row, 1)?;
        let current = match owner {
            Some(_) => Some(permit_from(&row, 1)?.lease()),
            None => None,
        };
        Ok(Touched::Missed { current })
    }

    async fn census(&self, name: &Key, now: i64) -> Result<Census, StoreError> {
        let row = sqlx::query(CENSUS)
            .bind(name.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        let Some(row) = row else {
            return Ok(Census::default());
        };
        let (limit, held, holders): (i64, i64, i64) = (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
        Ok(Census {
            limit: (holders > 0).then_some(limit),
            held,
            holders,
        })
    }
}
