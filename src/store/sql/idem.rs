//! SQL idempotency steps: the durable arbiter. Each write is a conditional statement, so two
//! claims of one key serialize on its row and only one wins; a batch of writes runs as
//! multi-row statements inside one transaction (group commit). A key appears at most once per
//! statement: its later writes in a batch run in later rounds, in submission order.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe};

use super::{classify, col, rows_sql, SqlStore};
use crate::store::idem::{IdemRecord, IdemState, IdemWrite, IdemWritten};
use crate::store::StoreError;

const COLS: &str = "idem_key, state, token, fingerprint, lease_until, expires_at, response";

/// The stored row may be claimed: expired, released, or a lapsed lease whose fingerprint does
/// not conflict. `{now}` is replaced by the statement's clock placeholder.
const FREE: &str = "(warden_idem.expires_at <= {now} OR warden_idem.state = 'released'
    OR (warden_idem.state = 'in_progress' AND warden_idem.lease_until <= {now}
        AND (warden_idem.fingerprint = excluded.fingerprint
             OR warden_idem.fingerprint = '' OR excluded.fingerprint = '')))";

const CLAIM_GIVEN: &str =
    "INSERT INTO warden_idem (idem_key, token, fingerprint, lease_until, expires_at)
VALUES {values}
ON CONFLICT (idem_key) DO UPDATE SET state = 'in_progress', token = excluded.token,
    fingerprint = excluded.fingerprint, lease_until = excluded.lease_until,
    expires_at = excluded.expires_at, response = NULL
WHERE warden_idem.token < excluded.token AND {free}
RETURNING {cols}";

const CLAIM_DRAWN: &str =
    "INSERT INTO warden_idem (idem_key, token, fingerprint, lease_until, expires_at)
VALUES {values}
ON CONFLICT (idem_key) DO UPDATE SET state = 'in_progress',
    token = CASE WHEN warden_idem.token >= excluded.token THEN warden_idem.token + 1
                 ELSE excluded.token END,
    fingerprint = excluded.fingerprint, lease_until = excluded.lease_until,
    expires_at = excluded.expires_at, response = NULL
WHERE {free}
RETURNING {cols}";

const COMPLETE: &str =
    "UPDATE warden_idem SET state = 'completed', response = v.column3, lease_until = 0
FROM (VALUES {values}) AS v
WHERE warden_idem.idem_key = v.column1 AND warden_idem.token = v.column2
  AND warden_idem.state = 'in_progress' AND warden_idem.expires_at > {now}
RETURNING {cols}";

const RELEASE: &str = "UPDATE warden_idem SET state = 'released', lease_until = 0
FROM (VALUES {values}) AS v
WHERE warden_idem.idem_key = v.column1 AND warden_idem.token = v.column2
  AND warden_idem.state = 'in_progress' AND warden_idem.expires_at > {now}
RETURNING {cols}";

const EXTEND: &str = "UPDATE warden_idem SET lease_until = v.column3
FROM (VALUES {values}) AS v
WHERE warden_idem.idem_key = v.column1 AND warden_idem.token = v.column2
  AND warden_idem.state = 'in_progress' AND warden_idem.expires_at > {now}
RETURNING {cols}";

const FLOOR: &str = "SELECT value FROM warden_counters WHERE name = 'idem_floor'";
const REAP_MAX: &str = "SELECT MAX(token) FROM warden_idem WHERE expires_at <= $1";
const RAISE_FLOOR: &str =
    "UPDATE warden_counters SET value = $1 WHERE name = 'idem_floor' AND value < $1";
const REAP: &str = "DELETE FROM warden_idem WHERE idem_key IN (
    SELECT idem_key FROM warden_idem WHERE expires_at <= $1 AND token <= $2 LIMIT $3)";
const GET: &str = "SELECT idem_key, state, token, fingerprint, lease_until, expires_at, response
FROM warden_idem WHERE idem_key = $1";

/// The statement kinds, run in this order within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ClaimGiven,
    ClaimDrawn,
    Complete,
    Release,
    Extend,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::ClaimGiven,
        Kind::ClaimDrawn,
        Kind::Complete,
        Kind::Release,
        Kind::Extend,
    ];

    fn of(w: &IdemWrite) -> Self {
        match w {
            IdemWrite::Claim { token: Some(_), .. } => Kind::ClaimGiven,
            IdemWrite::Claim { token: None, .. } => Kind::ClaimDrawn,
            IdemWrite::Complete { .. } => Kind::Complete,
            IdemWrite::Release { .. } => Kind::Release,
            IdemWrite::Extend { .. } => Kind::Extend,
        }
    }

    fn template(self) -> &'static str {
        match self {
            Kind::ClaimGiven => CLAIM_GIVEN,
            Kind::ClaimDrawn => CLAIM_DRAWN,
            Kind::Complete => COMPLETE,
            Kind::Release => RELEASE,
            Kind::Extend => EXTEND,
        }
    }

    /// Placeholders per row.
    fn width(self) -> usize {
        match self {
            Kind::ClaimGiven | Kind::ClaimDrawn => 5,
            Kind::Complete | Kind::Extend => 3,
            Kind::Release => 2,
        }
    }
}

fn statement(kind: Kind, rows: usize) -> String {
    let now = format!("${}", rows * kind.width() + 1);
    kind.template()
        .replace("{free}", FREE)
        .replace("{values}", &rows_sql(rows, kind.width()))
        .replace("{cols}", COLS)
        .replace("{now}", &now)
}

fn record(row: &AnyRow) -> Result<IdemRecord, StoreError> {
    let state: String = col(row, 1)?;
    Ok(IdemRecord {
        key: col(row, 0)?,
        state: IdemState::parse(&state)
            .ok_or_else(|| StoreError::Unavailable(format!("unknown idempotency state {state}")))?,
        token: col(row, 2)?,
        fingerprint: col(row, 3)?,
        lease_until: col(row, 4)?,
        expires_at: col(row, 5)?,
        response: col(row, 6)?,
    })
}

/// Splits write indices into rounds in which every key appears at most once, keeping each
/// key's writes in submission order.
fn rounds(writes: &[IdemWrite]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let n = seen.entry(w.key()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

impl SqlStore {
    /// Applies a batch of idempotency writes in one transaction; one outcome per write, in
    /// order. Nothing of the batch is durable unless this returns `Ok`.
    pub async fn apply_idem(&self, writes: Vec<IdemWrite>) -> Result<Vec<IdemWritten>, StoreError> {
        let Some(first) = writes.first() else {
            return Ok(Vec::new());
        };
        let kind = Kind::of(first);
        let rounds = rounds(&writes);
        let alone = rounds.len() == 1 && writes.iter().all(|w| Kind::of(w) == kind);
        if alone && kind != Kind::ClaimDrawn {
            // One statement is atomic by itself: no BEGIN/COMMIT round trips (the hot path).
            let batch: Vec<&IdemWrite> = writes.iter().collect();
            let applied = run(&self.pool, kind, &batch, 0).await?;
            return settle(&self.pool, &writes, applied).await;
        }
        let mut tx = self.begin_write().await?;
        let floor: i64 = if writes.iter().any(|w| Kind::of(w) == Kind::ClaimDrawn) {
            sqlx::query_scalar(FLOOR)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?
        } else {
            0
        };
        let mut applied: Vec<Option<IdemRecord>> = vec![None; writes.len()];
        for round in rounds {
            for kind in Kind::ALL {
                let idx: Vec<usize> = round
                    .iter()
                    .copied()
                    .filter(|&i| Kind::of(&writes[i]) == kind)
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                let batch: Vec<&IdemWrite> = idx.iter().map(|&i| &writes[i]).collect();
                let mut changed = run(&mut *tx, kind, &batch, floor).await?;
                for i in idx {
                    applied[i] = changed.remove(writes[i].key());
                }
            }
        }
        let out = settle(&mut *tx, &writes, applied).await?;
        tx.commit().await.map_err(classify)?;
        Ok(out)
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

/// Runs one multi-row statement; returns the rows it changed, by key.
async fn run<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    kind: Kind,
    batch: &[&IdemWrite],
    floor: i64,
) -> Result<HashMap<String, IdemRecord>, StoreError> {
    let sql = statement(kind, batch.len());
    let mut q = sqlx::query(AssertSqlSafe(sql));
    let mut now = 0;
    for w in batch {
        q = match w {
            IdemWrite::Claim {
                key,
                token,
                base,
                fingerprint,
                lease_until,
                expires_at,
                now: at,
            } => {
                now = now.max(*at);
                let token = token.unwrap_or((*base).max(floor) + 1);
                q.bind(key.as_str())
                    .bind(token)
                    .bind(fingerprint.as_str())
                    .bind(*lease_until)
                    .bind(*expires_at)
            }
            IdemWrite::Complete {
                key,
                token,
                response,
                now: at,
            } => {
                now = now.max(*at);
                q.bind(key.as_str()).bind(*token).bind(response.as_str())
            }
            IdemWrite::Release {
                key,
                token,
                now: at,
            } => {
                now = now.max(*at);
                q.bind(key.as_str()).bind(*token)
            }
            IdemWrite::Extend {
                key,
                token,
                lease_until,
                now: at,
            } => {
                now = now.max(*at);
                q.bind(key.as_str()).bind(*token).bind(*lease_until)
            }
        };
    }
    let rows = q.bind(now).fetch_all(db).await.map_err(classify)?;
    rows.iter()
        .map(|row| record(row).map(|r| (r.key.clone(), r)))
        .collect()
}

/// One outcome per write: applied where the statement changed its row (`applied[i]`, or by
/// key when given as a map), otherwise refused with the record as it now stands.
async fn settle<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    writes: &[IdemWrite],
    applied: impl Applied,
) -> Result<Vec<IdemWritten>, StoreError> {
    let mut out: Vec<Option<IdemWritten>> = (0..writes.len())
        .map(|i| applied.get(i, writes[i].key()).map(IdemWritten::Applied))
        .collect();
    let refused: Vec<usize> = (0..writes.len()).filter(|&i| out[i].is_none()).collect();
    if !refused.is_empty() {
        let keys: Vec<&str> = refused.iter().map(|&i| writes[i].key()).collect();
        let current = lookup(db, &keys).await?;
        for i in refused {
            out[i] = Some(IdemWritten::Refused(current.get(writes[i].key()).cloned()));
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Rows a batch changed: by write index, or by key for a single statement.
trait Applied {
    fn get(&self, i: usize, key: &str) -> Option<IdemRecord>;
}

impl Applied for Vec<Option<IdemRecord>> {
    fn get(&self, i: usize, _key: &str) -> Option<IdemRecord> {
        self[i].clone()
    }
}

impl Applied for HashMap<String, IdemRecord> {
    fn get(&self, _i: usize, key: &str) -> Option<IdemRecord> {
        HashMap::get(self, key).cloned()
    }
}

async fn lookup<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    keys: &[&str],
) -> Result<HashMap<String, IdemRecord>, StoreError> {
    let list = (1..=keys.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("SELECT {COLS} FROM warden_idem WHERE idem_key IN ({list})");
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for k in keys {
        q = q.bind(*k);
    }
    let rows = q.fetch_all(db).await.map_err(classify)?;
    rows.iter()
        .map(|row| record(row).map(|r| (r.key.clone(), r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_the_clock() {
        assert_eq!(rows_sql(2, 2), "($1,$2),($3,$4)");
        let sql = statement(Kind::Release, 2);
        assert!(sql.contains("VALUES ($1,$2),($3,$4)"));
        assert!(sql.contains("expires_at > $5"));
    }

    #[test]
    fn rounds_keep_one_write_per_key_in_order() {
        let w = |k: &str, t| IdemWrite::Release {
            key: k.into(),
            token: t,
            now: 0,
        };
        let writes = vec![w("a", 1), w("b", 1), w("a", 2), w("a", 3)];
        assert_eq!(rounds(&writes), vec![vec![0, 1], vec![2], vec![3]]);
    }
}
