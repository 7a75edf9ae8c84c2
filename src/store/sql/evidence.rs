//! What each instance saw, kept for the evidence pack: refusals per minute (with samples) and
//! one §10 reading a minute. Each instance writes only its own rows; the pack reads them all.

use super::{classify, col, SqlStore};
pub use crate::store::guard::{ReadingRow, RefusalRow};
use crate::store::StoreError;

fn list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

impl SqlStore {
    /// Adds `r.count` refusals to its minute's row (the samples replace the row's).
    pub async fn record_refusals(&self, rows: &[RefusalRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO warden_refusals (minute, instance, op, reason, count, sample_keys, \
                 sample_correlation_ids) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (minute, instance, op, reason) DO UPDATE SET \
                 count = warden_refusals.count + excluded.count, \
                 sample_keys = excluded.sample_keys, \
                 sample_correlation_ids = excluded.sample_correlation_ids",
            )
            .bind(r.minute)
            .bind(&r.instance)
            .bind(&r.op)
            .bind(&r.reason)
            .bind(r.count)
            .bind(serde_json::json!(r.sample_keys).to_string())
            .bind(serde_json::json!(r.sample_correlation_ids).to_string())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    /// Records one reading (a repeat of the same instant is ignored).
    pub async fn record_reading(&self, r: &ReadingRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warden_readings (at, instance, operations, fallback_permille, \
             fallback_lock_p95_ms, primary_lock_p95_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING",
        )
        .bind(r.at)
        .bind(&r.instance)
        .bind(r.operations)
        .bind(r.fallback_permille)
        .bind(r.fallback_lock_p95_ms)
        .bind(r.primary_lock_p95_ms)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(classify)
    }

    /// Refusal rows of minutes in `[from, to]`, in order.
    pub async fn refusals_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<RefusalRow>, StoreError> {
        const SQL: &str =
            "SELECT minute, instance, op, reason, count, sample_keys, sample_correlation_ids \
             FROM warden_refusals WHERE minute >= $1 AND minute <= $2 \
             ORDER BY minute, instance, op, reason LIMIT 10000";
        self.between(SQL, from, to)
            .await?
            .iter()
            .map(|r| {
                Ok(RefusalRow {
                    minute: col(r, 0)?,
                    instance: col(r, 1)?,
                    op: col(r, 2)?,
                    reason: col(r, 3)?,
                    count: col(r, 4)?,
                    sample_keys: list(&col::<String>(r, 5)?),
                    sample_correlation_ids: list(&col::<String>(r, 6)?),
                })
            })
            .collect()
    }

    /// The rows `sql` selects for the time range `[$1, $2]` = `[from, to]`.
    async fn between(
        &self,
        sql: &'static str,
        from: i64,
        to: i64,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        sqlx::query(sql)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    /// Readings in `[from, to]`, in order.
    pub async fn readings_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<ReadingRow>, StoreError> {
        const SQL: &str =
            "SELECT at, instance, operations, fallback_permille, fallback_lock_p95_ms, \
             primary_lock_p95_ms FROM warden_readings WHERE at >= $1 AND at <= $2 \
             ORDER BY at, instance LIMIT 10000";
        self.between(SQL, from, to)
            .await?
            .iter()
            .map(|r| {
                Ok(ReadingRow {
                    at: col(r, 0)?,
                    instance: col(r, 1)?,
                    operations: col(r, 2)?,
                    fallback_permille: col(r, 3)?,
                    fallback_lock_p95_ms: col(r, 4)?,
                    primary_lock_p95_ms: col(r, 5)?,
                })
            })
            .collect()
    }

    /// Deletes what the guard keeps only for a while, older than `before`: evidence rows, and
    /// outbox rows (with their tries) that are finished. Incidents and the audit chain stay.
    pub async fn reap_guard(&self, before: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        for sql in [
            "DELETE FROM warden_refusals WHERE minute < $1",
            "DELETE FROM warden_readings WHERE at < $1",
            "DELETE FROM warden_delivery_tries WHERE outbox_id IN (SELECT id FROM warden_outbox \
             WHERE state <> 'pending' AND done_at > 0 AND done_at < $1)",
            "DELETE FROM warden_outbox WHERE state <> 'pending' AND done_at > 0 AND done_at < $1",
        ] {
            let done = sqlx::query(sql)
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            n += done.rows_affected();
        }
        Ok(n)
    }
}
