//! Hot copies of durable records (KV records, sessions) in Redis. SQL holds every record and
//! decides every write; a copy is served only while it is provably current: written in the
//! active epoch, at the record's version, with no write in flight. A write *holds* the copy
//! before its SQL statement and *seeds* it after, so a write that fails between the two
//! leaves the copy held (bypassed), never stale.

use std::collections::HashMap;
use std::future::Future;

use crate::store::StoreError;

/// The key of a hot copy: a stored key and its concept's suffix, under the key's hash tag (a
/// tree key under its root's), so a copy shares its slot with the key's other records.
pub use super::redis::tagged as copy_key;

/// What a read of a copy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeked {
    /// No copy.
    Absent,
    /// A write is in flight (or failed after its SQL commit): the copy must not be used.
    Held,
    /// A copy: its epoch, its record's version, and the fields asked for.
    Copy {
        /// The epoch it was written in.
        epoch: i64,
        /// The record's version.
        version: i64,
        /// The fields asked for (absent ones left out).
        fields: HashMap<&'static str, String>,
    },
}

/// Who writes a copy, which decides whether writes in flight stop it
/// (`lua/copy_seed.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeder {
    /// A read that found no current copy and read SQL: not while a write is in flight.
    Reader,
    /// The write that held the copy: ends its own hold, then writes if no other is in flight.
    Writer,
    /// A write that could not hold the copy beforehand (an end learned of at commit, such as
    /// a logout everywhere): writes over writes in flight and keeps their holds.
    Ender,
}

impl Seeder {
    /// Its code in `lua/copy_seed.lua`.
    pub fn code(self) -> i64 {
        match self {
            Self::Reader => 0,
            Self::Writer => 1,
            Self::Ender => 2,
        }
    }
}

/// The Redis steps of a hot copy (`lua/copy_hold.lua`, `lua/copy_seed.lua`, one `HMGET`).
pub trait HotCopy: Send + Sync {
    /// Reads `fields` of the copy at `key`.
    fn copy_peek(
        &self,
        key: &str,
        fields: &[&'static str],
    ) -> impl Future<Output = Result<Peeked, StoreError>> + Send;

    /// Before a write: drops the copy's fields and counts a write in flight for `hold_ms`.
    fn copy_hold(
        &self,
        key: &str,
        hold_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes the copy at `epoch` and `version` with `fields` (kept `ttl_ms`), unless the copy
    /// is at this epoch and as new already, or (as [`Seeder`] says) a write is in flight.
    /// Returns whether it was written.
    fn copy_seed(
        &self,
        key: &str,
        epoch: i64,
        version: i64,
        fields: &[(&str, String)],
        by: Seeder,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
