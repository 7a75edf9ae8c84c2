//! Key-value records as both tiers store them. SQL holds every record, tombstones included,
//! so versions only grow; Redis holds a hot copy that is served only while it is provably
//! current: written in the active epoch, at the record's version, with no write in flight.

use std::future::Future;

use crate::store::StoreError;

/// A record as SQL keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRecord {
    /// The value as JSON text (`""` in a tombstone).
    pub value: String,
    /// Its version: 1 at creation, +1 on every write or delete.
    pub version: i64,
    /// Expiry, epoch ms; 0 for none.
    pub expires_at: i64,
    /// Whether it was deleted (a tombstone).
    pub deleted: bool,
}

impl KvRecord {
    /// Whether it holds a value at `now`.
    pub fn live(&self, now: i64) -> bool {
        !self.deleted && (self.expires_at == 0 || self.expires_at > now)
    }
}

/// The hot copy of a record, as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvCopied {
    /// The epoch it was written in.
    pub epoch: i64,
    /// The record.
    pub record: KvRecord,
}

/// What a read of the hot copy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvPeek {
    /// No copy.
    Absent,
    /// A write is in flight (or failed after its SQL commit): the copy must not be used.
    Held,
    /// A copy.
    Copy(KvCopied),
}

/// The Redis hot copy of KV records.
pub trait KvCopy: Send + Sync {
    /// Reads the copy of `key` (one `HMGET`).
    fn kv_peek(&self, key: &str) -> impl Future<Output = Result<KvPeek, StoreError>> + Send;

    /// Before a write: drops the copy's value and marks a write in flight for `hold_ms`, so
    /// no reader serves or reseeds it until the write's own seed.
    fn kv_hold(
        &self,
        key: &str,
        hold_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `record` as the copy at `epoch` (kept `ttl_ms` at most), unless a write is in
    /// flight or the copy is at this epoch and as new already. `release`: this is the seed of
    /// a write that held the copy, which ends its hold first. Returns whether it was written.
    fn kv_seed(
        &self,
        key: &str,
        record: &KvRecord,
        epoch: i64,
        release: bool,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
