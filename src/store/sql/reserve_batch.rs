//! Reserves of the fallback tier, batched: one transaction takes a batch's reserves of one SKU
//! under one lock of its row and one conditional update, and splits the units among them in
//! arrival order — so a hot SKU costs one row lock per batch, not per buyer, and the rules of a
//! single reserve hold for each: never more than available (G6), one live hold per user and
//! SKU, nothing at a stale epoch.

use std::collections::{BTreeMap, HashMap};

use sqlx::AssertSqlSafe;

use super::{classify, col, SqlStore};
pub use crate::store::reserve::ReserveAsk;
use crate::store::reserve::{Hold, ReserveReply, Stock};
use crate::store::StoreError;

impl SqlStore {
    /// Runs `asks` in one transaction; one reply per ask, in order.
    pub async fn reserve_batch(
        &self,
        asks: Vec<ReserveAsk>,
    ) -> Result<Vec<ReserveReply>, StoreError> {
        let mut out: Vec<Option<ReserveReply>> = vec![None; asks.len()];
        let mut tx = self.begin_write().await?;
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM warden_tier WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?;
        let now = asks.iter().map(|a| a.now).max().unwrap_or(0);
        let mut by_sku: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, a) in asks.iter().enumerate() {
            if a.epoch != epoch {
                out[i] = Some(ReserveReply::Stale);
            } else {
                by_sku.entry(&a.hold.sku).or_default().push(i);
            }
        }
        let mut granted: Vec<&Hold> = Vec::new();
        for (sku, idx) in by_sku {
            let lock = if self.sqlite {
                "SELECT total, reserved, confirmed FROM warden_inventory WHERE sku = $1"
            } else {
                "SELECT total, reserved, confirmed FROM warden_inventory WHERE sku = $1 FOR UPDATE"
            };
            let row = sqlx::query(lock)
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
            let Some(row) = row else {
                idx.iter()
                    .for_each(|&i| out[i] = Some(ReserveReply::OutOfStock(None)));
                continue;
            };
            let mut stock = Stock {
                total: col(&row, 0)?,
                reserved: col(&row, 1)?,
                confirmed: col(&row, 2)?,
            };
            let users: Vec<&str> = idx.iter().map(|&i| asks[i].hold.user_id.as_str()).collect();
            let mut live = live_holds(&mut tx, sku, &users, now).await?;
            let before = stock.reserved;
            for i in idx {
                let h = &asks[i].hold;
                out[i] = Some(if let Some(id) = live.get(&h.user_id) {
                    ReserveReply::AlreadyReserved(id.clone())
                } else if h.quantity <= stock.available() {
                    stock.reserved += h.quantity;
                    live.insert(h.user_id.clone(), h.id.clone());
                    granted.push(h);
                    ReserveReply::Reserved(stock)
                } else {
                    ReserveReply::OutOfStock(Some(stock))
                });
            }
            if stock.reserved > before {
                sqlx::query("UPDATE warden_inventory SET reserved = reserved + $2 WHERE sku = $1")
                    .bind(sku)
                    .bind(stock.reserved - before)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
        }
        for chunk in granted.chunks(1000) {
            super::reserve::insert_holds(&mut tx, chunk).await?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(out
            .into_iter()
            .map(|r| r.expect("every ask has a reply"))
            .collect())
    }
}

/// The live holds of `users` on `sku`, by user.
async fn live_holds(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sku: &str,
    users: &[&str],
    now: i64,
) -> Result<HashMap<String, String>, StoreError> {
    let mut live = HashMap::new();
    for chunk in users.chunks(500) {
        // `($3),($4),…`: one placeholder per user, after the SKU and the clock.
        let list = (0..chunk.len())
            .map(|n| format!("${}", n + 3))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT user_id, id FROM warden_holds WHERE sku = $1 AND state = 'held' \
             AND expires_at > $2 AND user_id IN ({list})"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(sku).bind(now);
        for u in chunk {
            q = q.bind(*u);
        }
        for row in q.fetch_all(&mut **tx).await.map_err(classify)? {
            live.insert(col(&row, 0)?, col(&row, 1)?);
        }
    }
    Ok(live)
}
