//! The hot-copy protocol over the primary tier, shared by KV records and sessions: a copy is
//! served only when written in the active epoch with no write in flight; a write holds the
//! copy before SQL and seeds it after; an end learned of only at commit is written over holds,
//! and when that write fails the epoch moves on, so no copy of the old epoch is trusted again.

use std::collections::HashMap;

use super::{reason, Blocked, Mode, Primary, Tier, TierName};
use crate::store::copy::{HotCopy, Peeked, Seeder};

/// What a read of a hot copy offers.
#[derive(Debug)]
pub enum Looked<R> {
    /// A current copy, parsed.
    Hit(R),
    /// No current copy: read SQL, then seed the copy as a [`Seeder::Reader`].
    Miss,
    /// A write is in flight: read SQL and leave the copy alone.
    Held,
    /// Redis failed: read SQL and leave the copy alone.
    Failed,
}

impl<R> Looked<R> {
    /// The mode of the answer SQL gives after this look (anything but a hit): by design when
    /// the copy was missing or held, a fallback when Redis failed.
    pub fn sql_mode(&self) -> Mode {
        match self {
            Self::Failed => Mode::Fallback,
            _ => Mode::Durable,
        }
    }
}

impl<'a> Primary<'a> {
    /// Reads the copy at `key` written in `epoch`, parsed by `parse` from its version and
    /// `fields` (`None` when they are not whole). Counts the outcome in `metric` by `result`.
    pub async fn look_copy<R>(
        self,
        metric: &'static str,
        key: &str,
        fields: &[&'static str],
        epoch: i64,
        parse: impl FnOnce(i64, &HashMap<&'static str, String>) -> Option<R>,
    ) -> Looked<R> {
        let (looked, result) = match self.call(|s| s.copy_peek(key, fields)).await {
            Ok(Peeked::Copy {
                epoch: e,
                version,
                fields,
            }) if e == epoch => match parse(version, &fields) {
                Some(r) => (Looked::Hit(r), "hit"),
                None => (Looked::Miss, "miss"),
            },
            Ok(Peeked::Held) => (Looked::Held, "held"),
            Ok(_) => (Looked::Miss, "miss"),
            Err(e) => {
                tracing::warn!(error = %e, key, "hot copy not read; answering from SQL");
                (Looked::Failed, "error")
            }
        };
        metrics::counter!(metric, "result" => result).increment(1);
        looked
    }

    /// Before a write: holds the copy at `key` for at most `hold_ms`, so nothing stale can be
    /// served whatever happens next. A write that cannot hold it is refused (Redis is failing;
    /// the breaker will move the tier).
    pub async fn hold_copy(self, key: &str, hold_ms: i64) -> Result<(), Blocked> {
        self.settle(|s| s.copy_hold(key, hold_ms)).await
    }

    /// Writes the copy at `key` (see [`HotCopy::copy_seed`]); a failure is logged and
    /// returned. A writer's failed seed leaves its hold until the hold ends: the copy is
    /// bypassed, never stale.
    pub async fn seed_copy(
        self,
        key: &str,
        epoch: i64,
        version: i64,
        fields: &[(&str, String)],
        by: Seeder,
        ttl_ms: i64,
    ) -> Result<(), crate::store::StoreError> {
        let seeded = self
            .call(|s| s.copy_seed(key, epoch, version, fields, by, ttl_ms))
            .await;
        if let Err(e) = &seeded {
            tracing::warn!(error = %e, key, "hot copy not written");
        }
        seeded.map(|_| ())
    }

    /// Ends a writer's hold with nothing to copy (a record SQL does not have): a copy of
    /// epoch 0, never current, gone within a millisecond.
    pub async fn release_copy(self, key: &str) {
        let _ = self.seed_copy(key, 0, 0, &[], Seeder::Writer, 1).await;
    }

    /// Writes an end SQL committed over the copy at `key` ([`Seeder::Ender`]); if Redis does
    /// not take it, moves the epoch on so the stale copy is never trusted.
    pub async fn end_copy(
        self,
        tier: &Tier,
        key: &str,
        epoch: i64,
        version: i64,
        fields: &[(&str, String)],
        ttl_ms: i64,
    ) {
        if let Err(e) = self
            .seed_copy(key, epoch, version, fields, Seeder::Ender, ttl_ms)
            .await
        {
            tier.distrust_copies(epoch, &e.to_string()).await;
        }
    }
}

impl Tier {
    /// Moves the Redis tier to a new epoch (unless it moved past `epoch` already), because an
    /// end committed in SQL is missing from a hot copy of `epoch`. Instances see the switch
    /// within their tier lease.
    pub async fn distrust_copies(&self, epoch: i64, detail: &str) {
        let _guard = self.switching.lock().await;
        match self.refresh().await {
            Ok(row) if row.epoch == epoch && row.tier == TierName::Redis => {
                let detail = format!("an end not written over a hot copy: {detail}");
                self.switch(&row, TierName::Redis, reason::COPY_UNSETTLED, &detail)
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "hot copies of a past end cannot be distrusted"),
        }
    }
}
