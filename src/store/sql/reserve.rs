//! SQL inventory steps. Every count change is a conditional update on the SKU's row (never
//! below zero, never past `total`), made in the same transaction as the hold it belongs to, so
//! SQL alone can never oversell; on the fallback tier the epoch is checked in the same
//! transaction, so a stale instance cannot reserve there.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::{classify, col, rows_sql, SqlStore};
use crate::runtime::correlation::Correlation;
use crate::store::reserve::{Hold, HoldState, ReserveReply, Stock, Transitioned};
use crate::store::StoreError;

const SET_TOTAL: &str = "INSERT INTO warden_inventory (sku, total) VALUES ($1, $2)
ON CONFLICT (sku) DO UPDATE SET total = excluded.total
WHERE warden_inventory.reserved + warden_inventory.confirmed <= excluded.total
RETURNING total, reserved, confirmed";
const STOCK: &str = "SELECT total, reserved, confirmed FROM warden_inventory WHERE sku = $1";
/// Takes units if they fit (and, on the fallback tier, only at epoch `$3`).
const TAKE: &str = "UPDATE warden_inventory SET reserved = reserved + $2
WHERE sku = $1 AND total - reserved - confirmed >= $2
  AND ($3 < 0 OR EXISTS (SELECT 1 FROM warden_tier WHERE id = 1 AND epoch = $3))
RETURNING total, reserved, confirmed";
/// A hold's columns, in the order [`hold`] reads them.
macro_rules! hold_cols {
    () => {
        "id, sku, user_id, quantity, state, expires_at, correlation_id, traceparent"
    };
}
const HOLD: &str = concat!("SELECT ", hold_cols!(), " FROM warden_holds WHERE id = $1");
const LIVE_HOLDS: &str = concat!(
    "SELECT ",
    hold_cols!(),
    " FROM warden_holds WHERE sku = $1 AND state = 'held'"
);
const DUE: &str = "SELECT id FROM warden_holds WHERE state = 'held' AND expires_at <= $1
ORDER BY expires_at LIMIT $2";
/// `$3` is the deadline test: confirm/release need `expires_at > now`, expiry `<= now`.
const MOVE_LIVE: &str = concat!(
    "UPDATE warden_holds SET state = $2 WHERE id = $1 AND state = 'held' AND expires_at > $3 \
     RETURNING ",
    hold_cols!()
);
const MOVE_DUE: &str = concat!(
    "UPDATE warden_holds SET state = $2 WHERE id = $1 AND state = 'held' AND expires_at <= $3 \
     RETURNING ",
    hold_cols!()
);
const SETTLE: &str = "UPDATE warden_inventory
SET reserved = reserved - $2, confirmed = confirmed + $3 WHERE sku = $1";

fn stock(row: &AnyRow) -> Result<Stock, StoreError> {
    Ok(Stock {
        total: col(row, 0)?,
        reserved: col(row, 1)?,
        confirmed: col(row, 2)?,
    })
}

fn hold(row: &AnyRow) -> Result<Hold, StoreError> {
    let state: String = col(row, 4)?;
    Ok(Hold {
        id: col(row, 0)?,
        sku: col(row, 1)?,
        user_id: col(row, 2)?,
        quantity: col(row, 3)?,
        state: HoldState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown hold state {state}")))?,
        expires_at: col(row, 5)?,
        correlation: Correlation {
            id: col(row, 6)?,
            traceparent: col(row, 7)?,
        },
    })
}

impl SqlStore {
    /// Sets `total`, unless live holds and sales already exceed it: `Ok(Err(current))`.
    pub async fn set_total(
        &self,
        sku: &str,
        total: i64,
    ) -> Result<Result<Stock, Stock>, StoreError> {
        let row = sqlx::query(SET_TOTAL)
            .bind(sku)
            .bind(total)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        match row {
            Some(row) => Ok(Ok(stock(&row)?)),
            None => Ok(Err(self.stock(sku).await?.unwrap_or_default())),
        }
    }

    /// The counts of `sku`.
    pub async fn stock(&self, sku: &str) -> Result<Option<Stock>, StoreError> {
        let row = sqlx::query(STOCK)
            .bind(sku)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(stock).transpose()
    }

    /// The whole reserve step on the SQL tier at `epoch`: a batch of one (see
    /// [`SqlStore::reserve_batch`]).
    pub async fn reserve(
        &self,
        h: &Hold,
        epoch: i64,
        now: i64,
    ) -> Result<ReserveReply, StoreError> {
        let ask = super::reserve_batch::ReserveAsk {
            hold: h.clone(),
            epoch,
            now,
        };
        let mut replies = self.reserve_batch(vec![ask]).await?;
        replies
            .pop()
            .ok_or_else(|| StoreError::Lost("a reserve had no reply".into()))
    }

    /// Makes holds granted by Redis durable, in one transaction: per SKU, all of its holds'
    /// units are taken with one conditional update; if SQL disagrees that they fit, each hold
    /// is tried alone. Returns, per hold, whether it is now durable (a refused hold must be
    /// undone on Redis and answered `out_of_stock`).
    pub async fn record_holds(&self, holds: Vec<Hold>) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut by_sku: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, h) in holds.iter().enumerate() {
            by_sku.entry(&h.sku).or_default().push(i);
        }
        let mut kept = vec![false; holds.len()];
        for (sku, idx) in by_sku {
            let sum: i64 = idx.iter().map(|&i| holds[i].quantity).sum();
            if take(&mut tx, sku, sum).await? {
                idx.iter().for_each(|&i| kept[i] = true);
                continue;
            }
            for i in idx {
                kept[i] = take(&mut tx, sku, holds[i].quantity).await?;
            }
        }
        let durable: Vec<&Hold> = holds
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .map(|(h, _)| h)
            .collect();
        for chunk in durable.chunks(1000) {
            insert_holds(&mut tx, chunk).await?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(kept)
    }

    /// Moves hold `id` from `Held` to `to`, and its units with it, in one transaction.
    /// Confirm and release need the deadline ahead; expiry needs it passed.
    pub async fn transition(
        &self,
        id: &str,
        to: HoldState,
        now: i64,
    ) -> Result<Transitioned, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = if to == HoldState::Expired {
            MOVE_DUE
        } else {
            MOVE_LIVE
        };
        let moved = sqlx::query(sql)
            .bind(id)
            .bind(to.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(row) = moved else {
            let row = sqlx::query(HOLD)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
            return Ok(match row {
                Some(row) => Transitioned::Refused(hold(&row)?),
                None => Transitioned::Missing,
            });
        };
        let h = hold(&row)?;
        let sold = if to == HoldState::Confirmed {
            h.quantity
        } else {
            0
        };
        sqlx::query(SETTLE)
            .bind(&h.sku)
            .bind(h.quantity)
            .bind(sold)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Transitioned::Done(h))
    }

    /// Ids of up to `limit` holds whose deadline has passed, oldest first.
    pub async fn due_holds(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(DUE)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    /// Every live hold of `sku` (Redis is reseeded with them).
    pub async fn live_holds(&self, sku: &str) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query(LIVE_HOLDS)
            .bind(sku)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(hold).collect()
    }

    /// Every SKU (for reconciliation).
    pub async fn skus(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT sku FROM warden_inventory ORDER BY sku")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }
}

async fn take(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sku: &str,
    quantity: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(TAKE)
        .bind(sku)
        .bind(quantity)
        .bind(-1i64)
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(row.is_some())
}

pub(super) async fn insert_holds(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    holds: &[&Hold],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO warden_holds (id, sku, user_id, quantity, state, expires_at, \
         correlation_id, traceparent) VALUES {}",
        rows_sql(holds.len(), 8)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for h in holds {
        q = q
            .bind(h.id.as_str())
            .bind(h.sku.as_str())
            .bind(h.user_id.as_str())
            .bind(h.quantity)
            .bind(HoldState::Held.as_str())
            .bind(h.expires_at)
            .bind(h.correlation.id.as_str())
            .bind(h.correlation.traceparent.as_str());
    }
    q.execute(&mut **tx).await.map(drop).map_err(classify)
}
