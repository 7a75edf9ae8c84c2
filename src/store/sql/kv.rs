//! KV records in SQL: every write and delete is one conditional statement, so two writers
//! naming the same version never both win, and a tombstone keeps the version growing.

use super::{classify, col, SqlStore};
use crate::store::kv::KvRecord;
use crate::store::StoreError;

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

const UPSERT: &str = "INSERT INTO warden_kv (k, value, version, expires_at, deleted_at, \
     updated_at, correlation_id) VALUES ($1, $2, 1, $3, 0, $4, $5) \
     ON CONFLICT (k) DO UPDATE SET value = excluded.value, version = warden_kv.version + 1, \
     expires_at = excluded.expires_at, deleted_at = 0, updated_at = excluded.updated_at, \
     correlation_id = excluded.correlation_id";
const NOT_LIVE: &str = " WHERE warden_kv.deleted_at <> 0 OR \
     (warden_kv.expires_at <> 0 AND warden_kv.expires_at <= excluded.updated_at)";
const UPDATE_AT: &str = "UPDATE warden_kv SET value = $2, version = version + 1, \
     expires_at = $3, updated_at = $4, correlation_id = $5 WHERE k = $1 AND version = $6 \
     AND deleted_at = 0 AND (expires_at = 0 OR expires_at > $4) RETURNING version";
const DELETE: &str = "UPDATE warden_kv SET value = '', version = version + 1, deleted_at = $2, \
     updated_at = $2, correlation_id = $3 WHERE k = $1 AND deleted_at = 0 \
     AND (expires_at = 0 OR expires_at > $2)";

type Tx = sqlx::Transaction<'static, sqlx::Any>;

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

impl KvJob {
    /// The key it writes.
    fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
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

impl SqlStore {
    /// The row of `key`, tombstones and expired records included.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvRecord>, StoreError> {
        let row = sqlx::query(GET)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(record_of).transpose()
    }

    /// Runs a batch of writes in one transaction (group commit). Rows are taken in key
    /// order, so two batches in flight never wait on each other in a cycle; writes to one key
    /// keep their order (a stable sort), each seeing the ones before it, so two writes naming
    /// the same version still have one winner. The outcomes come back in the jobs' order.
    pub async fn kv_apply(&self, jobs: Vec<KvJob>) -> Result<Vec<KvWritten>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by(|a, b| jobs[*a].key().cmp(jobs[*b].key()));
        let mut out: Vec<Option<KvWritten>> = vec![None; jobs.len()];
        for i in order {
            out[i] = Some(match &jobs[i] {
                KvJob::Put {
                    key,
                    value,
                    expires_at,
                    expect,
                    now,
                    correlation_id,
                } => {
                    let put = (key.as_str(), value.as_str(), *expires_at, *expect);
                    put_in(&mut tx, put, *now, correlation_id).await?
                }
                KvJob::Delete {
                    key,
                    expected,
                    now,
                    correlation_id,
                } => delete_in(&mut tx, key, *expected, *now, correlation_id).await?,
            });
        }
        tx.commit().await.map_err(classify)?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Deletes tombstones and expired rows older than `before` (epoch ms), at most `limit`.
    pub async fn kv_reap(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
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

/// A write of `(key, value, expires_at, expect)` in `tx`.
async fn put_in(
    tx: &mut Tx,
    (key, value, expires_at, expect): (&str, &str, i64, KvExpect),
    now: i64,
    correlation_id: &str,
) -> Result<KvWritten, StoreError> {
    let sql = match expect {
        KvExpect::Any => format!("{UPSERT} RETURNING version"),
        KvExpect::Absent => format!("{UPSERT}{NOT_LIVE} RETURNING version"),
        KvExpect::Version(_) => UPDATE_AT.to_owned(),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .bind(now)
        .bind(correlation_id);
    if let KvExpect::Version(v) = expect {
        q = q.bind(v);
    }
    let row = q.fetch_optional(&mut **tx).await.map_err(classify)?;
    match row {
        Some(r) => Ok(KvWritten::Done(KvRecord {
            value: value.to_owned(),
            version: col(&r, 0)?,
            expires_at,
            deleted: false,
        })),
        None => conflict_in(tx, key, now).await,
    }
}

/// A delete of `key`'s live record in `tx`, if `expected` (a version) holds.
async fn delete_in(
    tx: &mut Tx,
    key: &str,
    expected: Option<i64>,
    now: i64,
    correlation_id: &str,
) -> Result<KvWritten, StoreError> {
    let sql = match expected {
        None => format!("{DELETE} RETURNING version"),
        Some(_) => format!("{DELETE} AND version = $4 RETURNING version"),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .bind(now)
        .bind(correlation_id);
    if let Some(v) = expected {
        q = q.bind(v);
    }
    let row = q.fetch_optional(&mut **tx).await.map_err(classify)?;
    match (row, expected) {
        (Some(r), _) => Ok(KvWritten::Done(KvRecord {
            value: String::new(),
            version: col(&r, 0)?,
            expires_at: 0,
            deleted: true,
        })),
        (None, None) => Ok(KvWritten::Nothing),
        (None, Some(_)) => conflict_in(tx, key, now).await,
    }
}

/// A refused write's answer: the live version now, if any.
async fn conflict_in(tx: &mut Tx, key: &str, now: i64) -> Result<KvWritten, StoreError> {
    let row = sqlx::query(GET)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
    let current = row.as_ref().map(record_of).transpose()?;
    Ok(KvWritten::Conflict(
        current.filter(|r| r.live(now)).map(|r| r.version),
    ))
}
