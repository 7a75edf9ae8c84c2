//! Redis KV steps: the hot copy of each record in one hash under the record's hash tag, read
//! with one `HMGET`; `lua/kv_hold.lua` before a write and `lua/kv_seed.lua` after it (or after
//! a read from SQL) keep a stale copy from ever being served.

use redis::Value;

use super::{tagged, unexpected, RedisStore};
use crate::store::kv::{KvCopied, KvCopy, KvPeek, KvRecord};
use crate::store::StoreError;

fn copy_key(key: &str) -> String {
    tagged(key, "kv")
}

impl KvCopy for RedisStore {
    async fn kv_peek(&self, key: &str) -> Result<KvPeek, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(copy_key(key)).arg(&["p", "ep", "v", "d", "e", "t"]);
        let items: Vec<Option<String>> = self.query(&cmd).await?;
        let field = |i: usize| items.get(i).cloned().flatten();
        let int = |i: usize| field(i).and_then(|s| s.parse::<i64>().ok());
        if int(0).unwrap_or(0) > 0 {
            return Ok(KvPeek::Held);
        }
        let (Some(epoch), Some(version)) = (int(1), int(2)) else {
            return Ok(KvPeek::Absent);
        };
        let bad = || unexpected(&Value::SimpleString(format!("kv copy of {key}")));
        Ok(KvPeek::Copy(KvCopied {
            epoch,
            record: KvRecord {
                value: field(3).ok_or_else(bad)?,
                version,
                expires_at: int(4).ok_or_else(bad)?,
                deleted: field(5).as_deref() == Some("1"),
            },
        }))
    }

    async fn kv_hold(&self, key: &str, hold_ms: i64) -> Result<(), StoreError> {
        let mut inv = self.scripts.kv_hold.key(copy_key(key));
        inv.arg(hold_ms);
        self.eval::<i64>(&inv).await.map(|_| ())
    }

    async fn kv_seed(
        &self,
        key: &str,
        record: &KvRecord,
        epoch: i64,
        release: bool,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut inv = self.scripts.kv_seed.key(copy_key(key));
        inv.arg(epoch)
            .arg(record.version)
            .arg(&record.value)
            .arg(record.expires_at)
            .arg(i64::from(record.deleted))
            .arg(ttl_ms.max(1))
            .arg(i64::from(release));
        self.eval::<i64>(&inv).await.map(|n| n == 1)
    }
}
