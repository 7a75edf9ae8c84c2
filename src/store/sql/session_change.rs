//! Changes of live sessions' data in batches (group commit). The changes apply in memory in
//! the order they were submitted (several of one session apply in turn) to rows read for the
//! batch, and a changed row is written only if its version is still the one read — under a
//! row lock taken in id hash order, so concurrent batches never wait on each other in a cycle.
//!
//! On PostgreSQL a batch is two statements and no transaction: a read, and one conditional
//! update that takes its rows in id hash order; a session changed meanwhile (another batch,
//! a revoke, a rotation: every one moves the version on) is read and applied again, and
//! after a few such rounds the rest goes through a transaction that holds its rows from the
//! read to the write. SQLite (one writer at a time) always takes the transaction.

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;

use super::params::{query, values, Params};
use super::session::{row_of, BY_ID, FROM, ROWS_PER_STATEMENT};
use super::{classify, col, SqlStore};
use crate::store::session::{ChangeJob, Changed, SessionRow, SessionRules, Standing};
use crate::store::StoreError;

/// Rounds of read-and-update before the rest of a batch takes the transaction.
const OPTIMISTIC_ROUNDS: usize = 3;

/// A session's row as read, keyed by (tenant, id hash).
type Rows = HashMap<(String, String), SessionRow>;

/// What applying a batch's changes to rows read gave: each job's answer, and each changed
/// row with the version it was read at.
struct Applied {
    out: Vec<Changed>,
    changed: BTreeMap<(String, String), (SessionRow, i64)>,
}

/// Applies `jobs` in order to `rows`.
fn apply(jobs: &[&ChangeJob], mut rows: Rows, rules: SessionRules) -> Applied {
    let mut out = Vec::with_capacity(jobs.len());
    let mut changed = BTreeMap::new();
    for job in jobs {
        let key = (job.tenant.clone(), job.id_hash.clone());
        let Some(row) = rows.get_mut(&key) else {
            out.push(Changed::Refused(None));
            continue;
        };
        if (rules.standing)(row, job.now) != Standing::Active {
            out.push(Changed::Refused(Some(row.clone())));
            continue;
        }
        let Some((data, bump)) = (job.change)(row) else {
            out.push(Changed::Refused(Some(row.clone())));
            continue;
        };
        let read_at = changed.get(&key).map_or(row.version, |(_, v)| *v);
        if bump {
            row.version += 1;
        }
        row.data = data;
        out.push(Changed::Done(row.clone()));
        changed.insert(key, (row.clone(), read_at));
    }
    Applied { out, changed }
}

/// The distinct id hashes of `jobs`, sorted.
fn ids_of<'a>(jobs: &[&'a ChangeJob]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = jobs.iter().map(|j| j.id_hash.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl SqlStore {
    /// Changes live sessions (group commit): each job's answer, in order.
    pub async fn session_change_batch(
        &self,
        jobs: Vec<ChangeJob>,
        rules: SessionRules,
    ) -> Result<Vec<Changed>, StoreError> {
        let mut answers: Vec<Option<Changed>> = jobs.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..jobs.len()).collect();
        let rounds = if self.sqlite { 0 } else { OPTIMISTIC_ROUNDS };
        for _ in 0..rounds {
            if pending.is_empty() {
                break;
            }
            let batch: Vec<&ChangeJob> = pending.iter().map(|&i| &jobs[i]).collect();
            let mut conn = self.pool.acquire().await.map_err(classify)?;
            let rows = self.read_for_change(&mut conn, &ids_of(&batch), "").await?;
            drop(conn);
            let applied = apply(&batch, rows, rules);
            let written = self.write_if_unchanged(&applied.changed).await?;
            let mut left = Vec::new();
            for (i, answer) in pending.iter().zip(applied.out) {
                let job = &jobs[*i];
                let key = (job.tenant.clone(), job.id_hash.clone());
                if applied.changed.contains_key(&key) && !written.contains(&job.id_hash) {
                    left.push(*i); // changed meanwhile: read and apply again
                } else {
                    answers[*i] = Some(answer);
                }
            }
            pending = left;
        }
        if !pending.is_empty() {
            let batch: Vec<&ChangeJob> = pending.iter().map(|&i| &jobs[i]).collect();
            for (i, answer) in pending.iter().zip(self.change_in_tx(&batch, rules).await?) {
                answers[*i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| StoreError::Lost("a session change went unanswered".into())))
            .collect()
    }

    /// Reads the rows of sessions `ids` through `on`, in id hash order, each statement ending
    /// with `lock`. By id hash alone (the key of the table); a row of another tenant is never
    /// matched, as the map is keyed by both.
    async fn read_for_change(
        &self,
        on: &mut sqlx::AnyConnection,
        ids: &[&str],
        lock: &str,
    ) -> Result<Rows, StoreError> {
        let mut rows = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let wanted: Vec<String> = chunk.iter().map(|id| p.text(id)).collect();
            let sql = format!(
                "{BY_ID}{FROM}WHERE s.id_hash IN ({}) ORDER BY s.id_hash{lock}",
                wanted.join(",")
            );
            let found: Vec<AnyRow> = query(sql, &p.args)
                .fetch_all(&mut *on)
                .await
                .map_err(classify)?;
            for r in &found {
                let row = row_of(r)?;
                rows.insert((row.tenant.clone(), row.id_hash.clone()), row);
            }
        }
        Ok(rows)
    }

    /// Writes each changed row whose version is still the one it was read at, one statement
    /// per chunk that takes the rows in id hash order first: the id hashes written.
    async fn write_if_unchanged(
        &self,
        changed: &BTreeMap<(String, String), (SessionRow, i64)>,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<&(SessionRow, i64)> = changed.values().collect();
        let mut written = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let listed = values(&mut p, chunk.iter(), |p, (r, read_at)| {
                vec![
                    p.text(&r.id_hash),
                    p.text(&r.tenant),
                    p.text(&r.data),
                    p.int(r.version),
                    p.int(*read_at),
                ]
            });
            let sql = format!(
                "WITH v (id_hash, tenant, data, version, read_at) AS (VALUES {listed}), \
                 l AS MATERIALIZED (SELECT id_hash FROM warden_sessions \
                 WHERE id_hash IN (SELECT id_hash FROM v) ORDER BY id_hash FOR UPDATE) \
                 UPDATE warden_sessions s SET data = v.data, version = v.version \
                 FROM v JOIN l ON l.id_hash = v.id_hash \
                 WHERE s.id_hash = v.id_hash AND s.tenant = v.tenant AND s.version = v.read_at \
                 RETURNING s.id_hash"
            );
            for r in query(sql, &p.args)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?
            {
                written.push(col(&r, 0)?);
            }
        }
        Ok(written)
    }

    /// Changes `jobs` in one transaction that takes their rows for update (in id hash order)
    /// from the read to the write.
    async fn change_in_tx(
        &self,
        jobs: &[&ChangeJob],
        rules: SessionRules,
    ) -> Result<Vec<Changed>, StoreError> {
        let mut tx = self.begin_write().await?;
        let lock = if self.sqlite { "" } else { " FOR UPDATE OF s" };
        let rows = self.read_for_change(&mut tx, &ids_of(jobs), lock).await?;
        let applied = apply(jobs, rows, rules);
        // Every changed row exists and is taken: the upsert only updates.
        let changed: Vec<(SessionRow, &str)> = applied
            .changed
            .into_values()
            .map(|(r, _)| (r, ""))
            .collect();
        let conflict = " ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, \
             version = excluded.version";
        self.write_sessions(&mut tx, &changed, conflict).await?;
        tx.commit().await.map_err(classify)?;
        Ok(applied.out)
    }
}
