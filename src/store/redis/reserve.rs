//! Redis inventory steps: the hot copy of each SKU (counts, live holds by user and by id)
//! under one hash tag, so every step is one script in one slot. A copy is valid only in the
//! epoch it was seeded from SQL in; otherwise the reserve script answers `stale`.

use redis::Value;

use super::{tagged, unexpected, RedisStore};
use crate::store::reserve::{Hold, HoldState, ReserveReply, Stock, StockCopy};
use crate::store::StoreError;

/// The three keys of one SKU's hot copy.
fn keys(sku: &str) -> [String; 3] {
    [
        tagged(sku, "inv"),
        tagged(sku, "inv_users"),
        tagged(sku, "inv_holds"),
    ]
}

fn int(items: &[Value], i: usize) -> Option<i64> {
    redis::from_redis_value_ref(items.get(i)?).ok()
}

/// `{state, total, avail, reserved, confirmed}` replies.
fn counts(items: &[Value]) -> Option<Stock> {
    Some(Stock {
        total: int(items, 1)?,
        reserved: int(items, 3)?,
        confirmed: int(items, 4)?,
    })
}

fn state(reply: &Value) -> Result<(String, &[Value]), StoreError> {
    let Value::Array(items) = reply else {
        return Err(unexpected(reply));
    };
    let s = items
        .first()
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .ok_or_else(|| unexpected(reply))?;
    Ok((s, items))
}

impl StockCopy for RedisStore {
    async fn reserve(&self, h: &Hold, epoch: i64) -> Result<ReserveReply, StoreError> {
        let [inv, users, holds] = keys(&h.sku);
        let mut call = self.scripts.res_reserve.key(inv);
        call.key(users)
            .key(holds)
            .arg(epoch)
            .arg(&h.user_id)
            .arg(h.quantity)
            .arg(&h.id);
        let reply: Value = self.eval(&call).await?;
        let (s, items) = state(&reply)?;
        let parsed = match s.as_str() {
            "stale" => Some(ReserveReply::Stale),
            "already" => items
                .get(1)
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .map(ReserveReply::AlreadyReserved),
            "out" => counts(items).map(|c| ReserveReply::OutOfStock(Some(c))),
            "reserved" => counts(items).map(ReserveReply::Reserved),
            _ => None,
        };
        parsed.ok_or_else(|| unexpected(&reply))
    }

    async fn settle(&self, sku: &str, id: &str, to: HoldState) -> Result<bool, StoreError> {
        let [inv, users, holds] = keys(sku);
        let mut call = self.scripts.res_settle.key(inv);
        call.key(users).key(holds).arg(id).arg(to.as_str());
        self.eval::<i64>(&call).await.map(|n| n == 1)
    }

    async fn seed_stock(
        &self,
        sku: &str,
        stock: Stock,
        live: &[Hold],
        epoch: i64,
        force: bool,
    ) -> Result<bool, StoreError> {
        let [inv, users, holds] = keys(sku);
        let mut call = self.scripts.res_seed.key(inv);
        call.key(users)
            .key(holds)
            .arg(epoch)
            .arg(stock.total)
            .arg(stock.reserved)
            .arg(stock.confirmed)
            .arg(live.len())
            .arg(if force { "force" } else { "if_stale" });
        for h in live {
            call.arg(&h.id).arg(&h.user_id).arg(h.quantity);
        }
        self.eval::<i64>(&call).await.map(|n| n == 1)
    }

    async fn set_total(
        &self,
        sku: &str,
        total: i64,
        epoch: i64,
    ) -> Result<Option<Result<Stock, Stock>>, StoreError> {
        let [inv, _, _] = keys(sku);
        let mut call = self.scripts.res_total.key(inv);
        call.arg(epoch).arg(total);
        let reply: Value = self.eval(&call).await?;
        let (s, items) = state(&reply)?;
        let parsed = match s.as_str() {
            "stale" => Some(None),
            "ok" => counts(items).map(|c| Some(Ok(c))),
            "conflict" => counts(items).map(|c| Some(Err(c))),
            _ => None,
        };
        parsed.ok_or_else(|| unexpected(&reply))
    }

    async fn stock(&self, sku: &str, epoch: i64) -> Result<Option<Stock>, StoreError> {
        let [inv, _, _] = keys(sku);
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(inv)
            .arg(&["ep", "total", "reserved", "confirmed"][..]);
        let got: Vec<Option<i64>> = self.query(&cmd).await?;
        Ok(match got.as_slice() {
            [Some(ep), Some(total), Some(reserved), Some(confirmed)] if *ep == epoch => {
                Some(Stock {
                    total: *total,
                    reserved: *reserved,
                    confirmed: *confirmed,
                })
            }
            _ => None,
        })
    }
}
