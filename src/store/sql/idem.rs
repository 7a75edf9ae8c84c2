//! SQL idempotency steps: the durable arbiter. Each write is a conditional statement, so two
//! claims of one key serialize on its row and only one wins; a batch is atomic (one statement,
//! or a transaction around its statements; see `idem_sql`).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Any;

use super::idem_sql::{plan, statement, Kind, Parts, COLS};
use super::params::{query, Params};
use super::{classify, col, SqlStore};
use crate::runtime::correlation::Correlation;
use crate::store::idem::{IdemRecord, IdemState, IdemWrite, IdemWritten};
use crate::store::StoreError;

const REAP_MAX: &str = "SELECT MAX(token) FROM warden_idem WHERE expires_at <= $1";
const RAISE_FLOOR: &str =
    "UPDATE warden_counters SET value = $1 WHERE name = 'idem_floor' AND value < $1";
const REAP: &str = "DELETE FROM warden_idem WHERE idem_key IN (
    SELECT idem_key FROM warden_idem WHERE expires_at <= $1 AND token <= $2 LIMIT $3)";
const GET: &str = "SELECT idem_key, state, token, fingerprint, lease_until, expires_at, response,
    correlation_id, traceparent FROM warden_idem WHERE idem_key = $1";

fn record(row: &AnyRow) -> Result<IdemRecord, StoreError> {
    let state: String = col(row, 1)?;
    Ok(IdemRecord {
        key: col(row, 0)?,
        state: IdemState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown idempotency state {state}")))?,
        token: col(row, 2)?,
        fingerprint: col(row, 3)?,
        lease_until: col(row, 4)?,
        expires_at: col(row, 5)?,
        response: col(row, 6)?,
        correlation: Correlation {
            id: col(row, 7)?,
            traceparent: col(row, 8)?,
        },
    })
}

impl SqlStore {
    /// Applies a batch of idempotency writes atomically; one outcome per write, in order.
    /// Nothing of the batch is durable unless this returns `Ok`.
    pub async fn apply_idem(&self, writes: Vec<IdemWrite>) -> Result<Vec<IdemWritten>, StoreError> {
        let statements = plan(&writes, !self.sqlite);
        let mut applied: Vec<Option<IdemRecord>> = vec![None; writes.len()];
        if let [only] = statements.as_slice() {
            // One statement is atomic by itself: no BEGIN/COMMIT round trips (the hot path).
            self.run(&self.pool, &writes, only, &mut applied).await?;
            return settle(&self.pool, &writes, applied).await;
        }
        let mut tx = self.begin_write().await?;
        for parts in &statements {
            self.run(&mut *tx, &writes, parts, &mut applied).await?;
        }
        let out = settle(&mut *tx, &writes, applied).await?;
        tx.commit().await.map_err(classify)?;
        Ok(out)
    }

    /// Runs one statement of a batch and notes, per write, the row it changed.
    async fn run<'e>(
        &self,
        db: impl sqlx::Executor<'e, Database = Any>,
        writes: &[IdemWrite],
        parts: &[(Kind, Vec<usize>)],
        applied: &mut [Option<IdemRecord>],
    ) -> Result<(), StoreError> {
        let by_kind: Parts = parts
            .iter()
            .map(|(k, idx)| (*k, idx.iter().map(|&i| &writes[i]).collect()))
            .collect();
        let (sql, p) = statement(&by_kind, !self.sqlite);
        let rows = query(sql, &p.args).fetch_all(db).await.map_err(classify)?;
        let mut changed = HashMap::with_capacity(rows.len());
        for row in &rows {
            let r = record(row)?;
            changed.insert(r.key.clone(), r);
        }
        for &i in parts.iter().flat_map(|(_, idx)| idx) {
            applied[i] = changed.remove(writes[i].key());
        }
        Ok(())
    }

    /// The stored record of `key`, expired or not.
    pub async fn idem_record(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let row = sqlx::query(GET)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(record).transpose()
    }

    /// Deletes up to `limit` records expired at `now`. First raises the durable token floor
    /// above every token it deletes, so a key begun again never repeats a token.
    pub async fn reap_idem(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        let top: Option<i64> = sqlx::query_scalar(REAP_MAX)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let Some(top) = top else { return Ok(0) };
        sqlx::query(RAISE_FLOOR)
            .bind(top)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        let done = sqlx::query(REAP)
            .bind(now)
            .bind(top)
            .bind(limit)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}

/// One outcome per write: applied where a statement changed its row (`applied[i]`), otherwise
/// refused with the record as it now stands.
async fn settle<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    writes: &[IdemWrite],
    applied: Vec<Option<IdemRecord>>,
) -> Result<Vec<IdemWritten>, StoreError> {
    let refused: Vec<&str> = (0..writes.len())
        .filter(|&i| applied[i].is_none())
        .map(|i| writes[i].key())
        .collect();
    let current = if refused.is_empty() {
        HashMap::new()
    } else {
        lookup(db, &refused).await?
    };
    Ok(applied
        .into_iter()
        .zip(writes)
        .map(|(rec, w)| match rec {
            Some(rec) => IdemWritten::Applied(rec),
            None => IdemWritten::Refused(current.get(w.key()).cloned()),
        })
        .collect())
}

async fn lookup<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    keys: &[&str],
) -> Result<HashMap<String, IdemRecord>, StoreError> {
    let mut p = Params::new();
    let list: Vec<String> = keys.iter().map(|k| p.text(k)).collect();
    let sql = format!(
        "SELECT {COLS} FROM warden_idem WHERE idem_key IN ({})",
        list.join(",")
    );
    let rows = query(sql, &p.args).fetch_all(db).await.map_err(classify)?;
    rows.iter()
        .map(|row| record(row).map(|r| (r.key.clone(), r)))
        .collect()
}
