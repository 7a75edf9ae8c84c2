//! The webhook outbox: a sender claims due rows for a bounded time (so an instance killed
//! mid-send leaves them to another after the claim ends, under the same `webhook-id`), and
//! settles each try in a transaction with its try record (and, for a dead delivery, its audit
//! entry and its copy for the other role).

use super::guard::GuardTx;
use super::{classify, col, SqlStore};
use crate::store::guard::DeliveryWrite;
pub use crate::store::guard::Settle;
use crate::store::guard::{Delivery, DeliveryTry};
use crate::store::StoreError;

/// The outbox columns, in [`Delivery`] order.
macro_rules! outbox_cols {
    () => {
        "id, subject, type, round, role, failover_of, body, state, tries, next_try_at, \
         created_at, done_at, last_status, last_error"
    };
}

pub(super) fn delivery_of(row: &sqlx::any::AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: col(row, 0)?,
        subject: col(row, 1)?,
        kind: col(row, 2)?,
        round: col(row, 3)?,
        role: col(row, 4)?,
        failover_of: col(row, 5)?,
        body: col(row, 6)?,
        state: col(row, 7)?,
        tries: col(row, 8)?,
        next_try_at: col(row, 9)?,
        created_at: col(row, 10)?,
        done_at: col(row, 11)?,
        last_status: col(row, 12)?,
        last_error: col(row, 13)?,
    })
}

impl SqlStore {
    /// Claims up to `limit` deliveries due at `now` until `until`: no other sender takes them
    /// before then. Each claim counts as a try.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let pick = if self.sqlite {
            "SELECT id FROM warden_outbox WHERE state = 'pending' AND next_try_at <= $2 \
             AND claimed_until < $2 ORDER BY next_try_at, created_at LIMIT $3"
        } else {
            "SELECT id FROM warden_outbox WHERE state = 'pending' AND next_try_at <= $2 \
             AND claimed_until < $2 ORDER BY next_try_at, created_at LIMIT $3 \
             FOR UPDATE SKIP LOCKED"
        };
        let sql = format!(
            "UPDATE warden_outbox SET claimed_until = $1, tries = tries + 1 \
             WHERE id IN ({pick}) RETURNING {}",
            outbox_cols!()
        );
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(until)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let mut out: Vec<Delivery> = rows.iter().map(delivery_of).collect::<Result<_, _>>()?;
        out.sort_by_key(|d| (d.next_try_at, d.created_at));
        Ok(out)
    }

    /// The state of delivery `id` now (`None` if unknown).
    pub async fn delivery_state(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM warden_outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(|r| col(r, 0)).transpose()
    }

    /// Deliveries about `subjects`, oldest first.
    pub async fn deliveries_of(&self, subjects: &[&str]) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::new();
        for s in subjects {
            let rows = sqlx::query(concat!(
                "SELECT ",
                outbox_cols!(),
                " FROM warden_outbox WHERE subject = $1 ORDER BY created_at, round, role"
            ))
            .bind(*s)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
            for r in &rows {
                out.push(delivery_of(r)?);
            }
        }
        out.sort_by_key(|d| d.created_at);
        Ok(out)
    }

    /// Every try of delivery `id`, in order.
    pub async fn tries_of(&self, id: &str) -> Result<Vec<DeliveryTry>, StoreError> {
        let rows = sqlx::query(
            "SELECT outbox_id, try_no, at, status, latency_ms, error FROM warden_delivery_tries \
             WHERE outbox_id = $1 ORDER BY try_no",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryTry {
                    outbox_id: col(r, 0)?,
                    try_no: col(r, 1)?,
                    at: col(r, 2)?,
                    status: col(r, 3)?,
                    latency_ms: col(r, 4)?,
                    error: col(r, 5)?,
                })
            })
            .collect()
    }

    /// Deliveries not yet delivered, dead or dropped.
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM warden_outbox WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        col(&row, 0)
    }
}

impl DeliveryWrite for GuardTx {
    /// The delivery `id` (locked).
    async fn delivery(&mut self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let sql = self.locking(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM warden_outbox WHERE id = $1"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.conn())
            .await
            .map_err(classify)?;
        row.as_ref().map(delivery_of).transpose()
    }

    /// Records try `t` of a delivery and settles the delivery as `how`, if it is still
    /// pending (a delivery dropped meanwhile stays dropped). Whether it was.
    async fn settle_delivery(
        &mut self,
        t: &DeliveryTry,
        how: &Settle,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "INSERT INTO warden_delivery_tries (outbox_id, try_no, at, status, latency_ms, \
             error) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&t.outbox_id)
        .bind(t.try_no)
        .bind(t.at)
        .bind(t.status)
        .bind(t.latency_ms)
        .bind(&t.error)
        .execute(self.conn())
        .await
        .map_err(classify)?;
        let (state, next_try_at, done_at) = match how {
            Settle::Delivered => ("delivered", 0, now),
            Settle::Retry(at) => ("pending", *at, 0),
            Settle::Dead => ("dead", 0, now),
            Settle::Dropped => ("dropped", 0, now),
        };
        let done = sqlx::query(
            "UPDATE warden_outbox SET state = $2, next_try_at = $3, done_at = $4, \
             claimed_until = 0, last_status = $5, last_error = $6 \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(&t.outbox_id)
        .bind(state)
        .bind(next_try_at)
        .bind(done_at)
        .bind(t.status)
        .bind(&t.error)
        .execute(self.conn())
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }
}
