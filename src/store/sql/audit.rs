//! The audit chain as stored: entries are appended inside the transaction of the change they
//! record, after locking the chain's head row, so entries are numbered without gaps and each
//! one's hash covers its predecessor's even when instances append at once.

use sqlx::Any;

use super::{classify, col, SqlStore};
use crate::audit::{seal, Audit, Sealed};
use crate::store::StoreError;

type Tx = sqlx::Transaction<'static, Any>;

const COLS: &str = "seq, prev_hash, hash, id, at, actor, action, subject, detail, correlation_id";

fn sealed_of(row: &sqlx::any::AnyRow) -> Result<Sealed, StoreError> {
    Ok(Sealed {
        seq: col(row, 0)?,
        prev_hash: col(row, 1)?,
        hash: col(row, 2)?,
        entry: Audit {
            id: col(row, 3)?,
            at: col(row, 4)?,
            actor: col(row, 5)?,
            action: col(row, 6)?,
            subject: col(row, 7)?,
            detail: col(row, 8)?,
            correlation_id: col(row, 9)?,
        },
    })
}

/// Appends `entries` to the chain inside `tx` (a write transaction: on SQLite it already
/// excludes other writers; on PostgreSQL the head row is locked until `tx` ends).
pub(crate) async fn append(tx: &mut Tx, sqlite: bool, entries: &[Audit]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = if sqlite {
        "SELECT seq, hash FROM warden_audit_head WHERE id = 1"
    } else {
        "SELECT seq, hash FROM warden_audit_head WHERE id = 1 FOR UPDATE"
    };
    let row = sqlx::query(head)
        .fetch_one(&mut **tx)
        .await
        .map_err(classify)?;
    let (seq, hash): (i64, String) = (col(&row, 0)?, col(&row, 1)?);
    let sealed = seal(seq, &hash, entries);
    for s in &sealed {
        let a = &s.entry;
        sqlx::query(
            "INSERT INTO warden_audit (seq, prev_hash, hash, id, at, actor, action, subject, \
             detail, correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.seq)
        .bind(&s.prev_hash)
        .bind(&s.hash)
        .bind(&a.id)
        .bind(a.at)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.subject)
        .bind(&a.detail)
        .bind(&a.correlation_id)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    }
    let last = sealed.last().expect("entries is not empty");
    sqlx::query("UPDATE warden_audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last.seq)
        .bind(&last.hash)
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(())
}

impl SqlStore {
    /// Appends `entries` in a transaction of their own.
    pub async fn audit(&self, entries: &[Audit]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, self.sqlite, entries).await?;
        tx.commit().await.map_err(classify)
    }

    /// Up to `limit` chained entries after number `after`, in order.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<Sealed>, StoreError> {
        let sql = format!("SELECT {COLS} FROM warden_audit WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(sealed_of).collect()
    }

    /// Entries with `at` in `[from, to]`, in chain order (at most `limit`).
    pub async fn audit_between(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Sealed>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM warden_audit WHERE seq > 0 AND at >= $1 AND at <= $2 \
             ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(sealed_of).collect()
    }

    /// The chain's head: its last number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM warden_audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok((col(&row, 0)?, col(&row, 1)?))
    }

    /// Seals entries written before the chain existed (number 0) into it, oldest first.
    pub async fn seal_unchained_audit(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, detail, correlation_id FROM warden_audit \
             WHERE seq = 0 ORDER BY at, id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            entries.push(Audit {
                id: col(r, 0)?,
                at: col(r, 1)?,
                actor: col(r, 2)?,
                action: col(r, 3)?,
                subject: col(r, 4)?,
                detail: col(r, 5)?,
                correlation_id: col(r, 6)?,
            });
        }
        sqlx::query("DELETE FROM warden_audit WHERE seq = 0")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        append(&mut tx, self.sqlite, &entries).await?;
        tx.commit().await.map_err(classify)?;
        Ok(entries.len() as u64)
    }
}
