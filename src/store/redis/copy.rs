//! Redis hot copies of durable records: one hash per record, read with one `HMGET`, written
//! only by `lua/copy_hold.lua` (before a write) and `lua/copy_seed.lua` (after it, or after a
//! read from SQL).

use std::collections::HashMap;

use super::RedisStore;
use crate::store::copy::{HotCopy, Peeked, Seeder};
use crate::store::StoreError;

impl HotCopy for RedisStore {
    async fn copy_peek(&self, key: &str, fields: &[&'static str]) -> Result<Peeked, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg(&["p", "ep", "v"]).arg(fields);
        let items: Vec<Option<String>> = self.query(&cmd).await?;
        let int = |i: usize| {
            items
                .get(i)
                .cloned()
                .flatten()
                .and_then(|s| s.parse::<i64>().ok())
        };
        if int(0).unwrap_or(0) > 0 {
            return Ok(Peeked::Held);
        }
        let (Some(epoch), Some(version)) = (int(1), int(2)) else {
            return Ok(Peeked::Absent);
        };
        let fields = fields
            .iter()
            .zip(items.into_iter().skip(3))
            .filter_map(|(name, v)| Some((*name, v?)))
            .collect::<HashMap<_, _>>();
        Ok(Peeked::Copy {
            epoch,
            version,
            fields,
        })
    }

    async fn copy_hold(&self, key: &str, hold_ms: i64) -> Result<(), StoreError> {
        let mut inv = self.scripts.copy_hold.key(key);
        inv.arg(hold_ms);
        self.eval::<i64>(&inv).await.map(|_| ())
    }

    async fn copy_seed(
        &self,
        key: &str,
        epoch: i64,
        version: i64,
        fields: &[(&str, String)],
        by: Seeder,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut inv = self.scripts.copy_seed.key(key);
        inv.arg(epoch)
            .arg(version)
            .arg(ttl_ms.max(1))
            .arg(by.code());
        for (name, value) in fields {
            inv.arg(*name).arg(value);
        }
        self.eval::<i64>(&inv).await.map(|n| n == 1)
    }
}
