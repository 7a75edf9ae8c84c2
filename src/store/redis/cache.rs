//! The cache's Redis steps, one Lua step each (`lua/cache_*.lua`, `cache_common.lua`
//! prepended). A namespace lives in one Cluster slot (hash tag `{cache:<ns>}`): its entries,
//! leases, tag stamps and bookkeeping are all reached by each step at once.

use redis::Value;

use super::RedisStore;
pub use crate::store::cache::{
    CacheCopy, CacheEntry, CacheFetched, CacheRead, CacheStats, CacheWrite,
};
use crate::store::StoreError;

/// The Redis keys of entry `key` of namespace `ns`: meta, index, sizes, entry, lease.
fn keys(ns: &str, key: &str) -> [String; 5] {
    let p = prefix(ns);
    [
        format!("{p}m"),
        format!("{p}x"),
        format!("{p}n"),
        format!("{p}e:{key}"),
        format!("{p}l:{key}"),
    ]
}

fn prefix(ns: &str) -> String {
    format!("warden:{{cache:{ns}}}:")
}

/// The key of tag `tag`'s stamp in `ns`.
fn tag_key(ns: &str, tag: &str) -> String {
    format!("{}t:{tag}", prefix(ns))
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> String {
    String::from_utf8_lossy(&bytes(v)).into_owned()
}

/// `{state, value, compressed, age_ms, …}` as a read (`miss` when the state is not a read).
fn read_of(items: &[Value]) -> CacheRead {
    let field = |i: usize| items.get(i).unwrap_or(&Value::Nil);
    let (value, compressed, age_ms) = (bytes(field(1)), text(field(2)) == "1", int(field(3)));
    match text(field(0)).as_str() {
        "hit" | "refresh" => CacheRead::Hit {
            value,
            compressed,
            age_ms,
        },
        "stale" => CacheRead::Stale {
            value,
            compressed,
            age_ms,
        },
        _ => CacheRead::Miss,
    }
}

impl CacheCopy for RedisStore {
    /// Reads entry `key` of `ns` as of `epoch` (`allow_stale`: a stale entry is answered).
    async fn cache_get(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        allow_stale: bool,
    ) -> Result<CacheRead, StoreError> {
        let k = keys(ns, key);
        let mut inv = self.scripts.cache_get.key(&k[..]);
        inv.arg(key).arg(epoch).arg(i64::from(allow_stale));
        let items: Vec<Value> = self.eval(&inv).await?;
        Ok(read_of(&items))
    }

    #[allow(clippy::too_many_arguments)]
    async fn cache_fetch(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        allow_stale: bool,
        lease_ms: i64,
        draw: f64,
        beta: f64,
    ) -> Result<CacheFetched, StoreError> {
        let k = keys(ns, key);
        let mut inv = self.scripts.cache_fetch.key(&k[..]);
        inv.arg(key)
            .arg(epoch)
            .arg(i64::from(allow_stale))
            .arg(lease_ms)
            .arg(draw.to_string())
            .arg(beta.to_string());
        let items: Vec<Value> = self.eval(&inv).await?;
        let last = items.get(4).map(int).unwrap_or(0);
        Ok(match text(items.first().unwrap_or(&Value::Nil)).as_str() {
            "miss_lease" => CacheFetched::Lease(last),
            "miss_wait" => CacheFetched::Wait(last.max(1)),
            "refresh" => CacheFetched::Found {
                read: read_of(&items),
                refresh: Some(last),
            },
            _ => CacheFetched::Found {
                read: read_of(&items),
                refresh: None,
            },
        })
    }

    /// Stores `entry` as `key` of `ns` in `epoch`, under `lease` when given; evicts the
    /// namespace's oldest entries beyond `max_bytes`. `max_lease_ms`: the longest lease.
    async fn cache_put(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        entry: &CacheEntry<'_>,
        lease: Option<i64>,
        (max_bytes, max_lease_ms): (i64, i64),
    ) -> Result<CacheWrite, StoreError> {
        let mut k: Vec<String> = keys(ns, key).into();
        k.extend(entry.tags.iter().map(|t| tag_key(ns, t)));
        let mut inv = self.scripts.cache_put.key(&k[..]);
        inv.arg(key)
            .arg(epoch)
            .arg(lease.map(|t| t.to_string()).unwrap_or_default())
            .arg(entry.value)
            .arg(i64::from(entry.compressed))
            .arg(entry.raw_len)
            .arg(entry.ttl_ms)
            .arg(entry.stale_ttl_ms)
            .arg(entry.compute_ms)
            .arg(entry.tags.join("\n"))
            .arg(max_bytes)
            .arg(max_lease_ms);
        let items: Vec<Value> = self.eval(&inv).await?;
        Ok(match text(items.first().unwrap_or(&Value::Nil)).as_str() {
            "stored" => CacheWrite::Stored(items.get(1).map(int).unwrap_or(0)),
            _ => CacheWrite::LeaseInvalid,
        })
    }

    /// Deletes entry `key` of `ns` and voids its lease.
    async fn cache_delete(&self, ns: &str, key: &str) -> Result<(), StoreError> {
        let k = keys(ns, key);
        let mut inv = self.scripts.cache_delete.key(&k[..]);
        inv.arg(key).arg(0);
        self.eval::<i64>(&inv).await.map(|_| ())
    }

    /// Invalidates tag `tag` of `ns` (`None`: the whole namespace), in O(1).
    async fn cache_invalidate(
        &self,
        ns: &str,
        tag: Option<&str>,
        max_lease_ms: i64,
    ) -> Result<i64, StoreError> {
        let k = keys(ns, "");
        let mut inv = self.scripts.cache_invalidate.key(&k[..]);
        inv.arg("").arg(0).arg(tag.unwrap_or("")).arg(max_lease_ms);
        self.eval(&inv).await
    }

    /// Forgets up to `batch` expired or invalidated entries of `ns` written after stamp
    /// `from`: how many, and the stamp to go on from (0 when the walk wrapped).
    async fn cache_reclaim(
        &self,
        ns: &str,
        from: i64,
        batch: i64,
    ) -> Result<(i64, i64), StoreError> {
        let k = keys(ns, "");
        let mut inv = self.scripts.cache_reclaim.key(&k[..]);
        inv.arg("").arg(0).arg(batch).arg(from);
        let items: Vec<Value> = self.eval(&inv).await?;
        Ok((
            items.first().map(int).unwrap_or(0),
            items.get(1).map(int).unwrap_or(0),
        ))
    }

    /// The counters of `ns`.
    async fn cache_stats(&self, ns: &str) -> Result<CacheStats, StoreError> {
        let k = keys(ns, "");
        let inv = self.scripts.cache_stats.key(&k[..]);
        let n: Vec<i64> = self.eval(&inv).await?;
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        Ok(CacheStats {
            hits: at(0),
            misses: at(1),
            stale: at(2),
            waits: at(3),
            leases: at(4),
            refreshes: at(5),
            evictions: at(6),
            bytes: at(7),
            entries: at(8),
            raw_bytes: at(9),
            kept_bytes: at(10),
        })
    }
}
