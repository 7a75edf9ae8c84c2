//! Key-value records as SQL stores them, and as their hot copy in Redis carries them. SQL
//! holds every record, tombstones included, so versions only grow.

use std::collections::HashMap;
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

/// The fields of a KV record's hot copy (besides its epoch and version).
pub const COPY_FIELDS: [&str; 3] = ["d", "e", "t"];

impl KvRecord {
    /// Whether it holds a value at `now`.
    pub fn live(&self, now: i64) -> bool {
        !self.deleted && (self.expires_at == 0 || self.expires_at > now)
    }

    /// Its fields in the hot copy.
    pub fn copy_fields(&self) -> [(&'static str, String); 3] {
        [
            ("d", self.value.clone()),
            ("e", self.expires_at.to_string()),
            ("t", i64::from(self.deleted).to_string()),
        ]
    }

    /// The record a copy's fields describe, if they are whole.
    pub fn from_copy(version: i64, fields: &HashMap<&'static str, String>) -> Option<Self> {
        Some(Self {
            value: fields.get("d")?.clone(),
            version,
            expires_at: fields.get("e")?.parse().ok()?,
            deleted: fields.get("t")? == "1",
        })
    }
}

/// Which state a write may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvExpect {
    /// Anything (no `expected_version`).
    Any,
    /// No live record (`expected_version: 0`).
    Absent,
    /// The live record at this version.
    Version(i64),
}

/// The outcome of a conditional write or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvWritten {
    /// Done; the record as it now stands.
    Done(KvRecord),
    /// The expectation did not hold; the live record's version, if any. Nothing written.
    Conflict(Option<i64>),
    /// A delete found no live record (nothing written).
    Nothing,
}

/// One KV write, as the group-commit writer batches them.
#[derive(Debug, Clone)]
pub enum KvJob {
    /// Write `value` (JSON text) to `key` if `expect` holds.
    Put {
        /// Stored key.
        key: String,
        /// JSON text.
        value: String,
        /// Expiry, epoch ms; 0 for none.
        expires_at: i64,
        /// What it may replace.
        expect: KvExpect,
        /// When (database clock).
        now: i64,
        /// The request's correlation id.
        correlation_id: String,
    },
    /// Delete the live record of `key` (leaving a tombstone) if `expected` holds.
    Delete {
        /// Stored key.
        key: String,
        /// The version it may delete.
        expected: Option<i64>,
        /// When (database clock).
        now: i64,
        /// The request's correlation id.
        correlation_id: String,
    },
}

/// The write rule's shape: over a key's stored record (a version-0 tombstone where there is
/// none), what a write or delete does — the record it leaves, a conflict, or nothing.
pub type KvRule = fn(&KvRecord, &KvJob) -> KvWritten;

/// KV records as the durable tier keeps them: a key's row, tombstones included; a batch of writes decided by the rule it is handed, in one transaction; the reaper.
pub trait KvRecords: Send + Sync {
    /// The row of `key`, tombstones and expired records included.
    fn kv_get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<KvRecord>, StoreError>> + Send;
    /// Runs a batch of writes in one transaction (group commit), in three statements
    /// whatever its size: every key gets a row (a version-0 tombstone where it had none),
    /// the rows are taken in key order (so two batches in flight never wait on each other
    /// in a cycle), the writes apply in memory in the order they were submitted (each seeing
    /// the ones before it, so two writes naming the same version still have one winner), and
    /// the changed rows are written back. Each write is decided by `rule` over its key's record
    /// as the writes before it left it (a version-0 tombstone where there was none). The
    /// outcomes come back in the jobs' order.
    fn kv_apply(
        &self,
        jobs: Vec<KvJob>,
        rule: KvRule,
    ) -> impl Future<Output = Result<Vec<KvWritten>, StoreError>> + Send;
    /// Deletes tombstones and expired rows older than `before` (epoch ms), at most `limit`.
    fn kv_reap(
        &self,
        before: i64,
        limit: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
