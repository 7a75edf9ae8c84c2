//! Key-value records as SQL stores them, and as their hot copy in Redis carries them. SQL
//! holds every record, tombstones included, so versions only grow.

use std::collections::HashMap;

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
