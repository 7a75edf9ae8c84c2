//! KV records in SQL: every write and delete applies to its key's row taken for update, in
//! the order submitted, so two writers naming the same version never both win, and a
//! tombstone keeps the version growing.

use std::collections::HashMap;

use super::params::{query, values, Params};
use super::session::ROWS_PER_STATEMENT;
use super::{classify, col, SqlStore};
use crate::store::kv::KvRecord;
pub use crate::store::kv::{KvExpect, KvJob, KvRecords, KvRule, KvWritten};
use crate::store::StoreError;

impl KvJob {
    /// The key it writes.
    fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// When it was asked (database clock).
    fn now(&self) -> i64 {
        match self {
            Self::Put { now, .. } | Self::Delete { now, .. } => *now,
        }
    }

    /// The correlation id of the request that asked it.
    fn correlation_id(&self) -> &str {
        match self {
            Self::Put { correlation_id, .. } | Self::Delete { correlation_id, .. } => {
                correlation_id
            }
        }
    }
}

fn record_of(r: &sqlx::any::AnyRow) -> Result<KvRecord, StoreError> {
    Ok(KvRecord {
        value: col(r, 0)?,
        version: col(r, 1)?,
        expires_at: col(r, 2)?,
        deleted: col::<i64>(r, 3)? != 0,
    })
}

const GET: &str = "SELECT value, version, expires_at, deleted_at FROM warden_kv WHERE k = $1";

impl KvRecords for SqlStore {
    /// The row of `key`, tombstones and expired records included.
    async fn kv_get(&self, key: &str) -> Result<Option<KvRecord>, StoreError> {
        let row = sqlx::query(GET)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(record_of).transpose()
    }

    /// Runs a batch of writes in one transaction (group commit), in three statements
    /// whatever its size: every key gets a row (a version-0 tombstone where it had none),
    /// the rows are taken in key order (so two batches in flight never wait on each other
    /// in a cycle), the writes apply in memory in the order they were submitted (each seeing
    /// the ones before it, so two writes naming the same version still have one winner), and
    /// the changed rows are written back. Each write is decided by `rule` over its key's record
    /// as the writes before it left it (a version-0 tombstone where there was none). The
    /// outcomes come back in the jobs' order.
    async fn kv_apply(&self, jobs: Vec<KvJob>, rule: KvRule) -> Result<Vec<KvWritten>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut keys: Vec<&str> = jobs.iter().map(KvJob::key).collect();
        keys.sort_unstable();
        keys.dedup();
        let at = jobs.iter().map(KvJob::now).max().unwrap_or(1).max(1);
        let mut rows = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let at = p.int(at);
            let absent = values(&mut p, chunk.iter(), |p, k| vec![p.text(k)]);
            let sql = format!(
                "INSERT INTO warden_kv (k, value, version, expires_at, deleted_at, updated_at, \
                 correlation_id) SELECT column1, '', 0, 0, {at}, {at}, '' FROM (VALUES {absent}) \
                 AS absent WHERE true ON CONFLICT (k) DO NOTHING"
            );
            query(sql, &p.args)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            let mut p = Params::new();
            let wanted: Vec<String> = chunk.iter().map(|k| p.text(k)).collect();
            let lock = if self.sqlite { "" } else { " FOR UPDATE" };
            let sql = format!(
                "SELECT k, value, version, expires_at, deleted_at FROM warden_kv \
                 WHERE k IN ({}) ORDER BY k{lock}",
                wanted.join(",")
            );
            for r in query(sql, &p.args)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?
            {
                rows.insert(col::<String>(&r, 0)?, Row::of(&r)?);
            }
        }
        let out: Vec<KvWritten> = jobs
            .iter()
            .map(|job| match rows.get_mut(job.key()) {
                Some(row) => row.apply(job, rule),
                None => KvWritten::Conflict(None),
            })
            .collect();
        let changed: Vec<(&String, &Row)> = rows.iter().filter(|(_, r)| r.changed).collect();
        for chunk in changed.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let rows = values(&mut p, chunk.iter(), |p, (k, r)| {
                vec![
                    p.text(k),
                    p.text(&r.record.value),
                    p.int(r.record.version),
                    p.int(r.record.expires_at),
                    p.int(r.deleted_at),
                    p.int(r.updated_at),
                    p.text(&r.correlation_id),
                ]
            });
            let sql = format!(
                "INSERT INTO warden_kv (k, value, version, expires_at, deleted_at, updated_at, \
                 correlation_id) VALUES {rows} ON CONFLICT (k) DO UPDATE SET \
                 value = excluded.value, version = excluded.version, \
                 expires_at = excluded.expires_at, deleted_at = excluded.deleted_at, \
                 updated_at = excluded.updated_at, correlation_id = excluded.correlation_id"
            );
            query(sql, &p.args)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(out)
    }

    /// Deletes tombstones and expired rows older than `before` (epoch ms), at most `limit`.
    async fn kv_reap(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM warden_kv WHERE k IN (SELECT k FROM warden_kv WHERE \
             (deleted_at <> 0 AND deleted_at < $1) OR (expires_at <> 0 AND expires_at < $1) \
             LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected())
    }
}

/// A key's row while a batch applies to it.
struct Row {
    record: KvRecord,
    deleted_at: i64,
    updated_at: i64,
    correlation_id: String,
    /// Whether a write of the batch changed it.
    changed: bool,
}

impl Row {
    fn of(r: &sqlx::any::AnyRow) -> Result<Self, StoreError> {
        let deleted_at: i64 = col(r, 4)?;
        Ok(Self {
            record: KvRecord {
                value: col(r, 1)?,
                version: col(r, 2)?,
                expires_at: col(r, 3)?,
                deleted: deleted_at != 0,
            },
            deleted_at,
            updated_at: 0,
            correlation_id: String::new(),
            changed: false,
        })
    }

    /// Applies `job` as `rule` decides over the row's record: when it writes, the row becomes
    /// the record it leaves.
    fn apply(&mut self, job: &KvJob, rule: KvRule) -> KvWritten {
        let written = rule(&self.record, job);
        if let KvWritten::Done(record) = &written {
            let now = job.now();
            self.deleted_at = if record.deleted { now.max(1) } else { 0 };
            self.updated_at = now;
            self.correlation_id = job.correlation_id().to_owned();
            self.record = record.clone();
            self.changed = true;
        }
        written
    }
}
