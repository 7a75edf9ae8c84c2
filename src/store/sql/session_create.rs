//! Session creates without a limit on PostgreSQL, a batch in one statement that is its own
//! transaction: the principals' rows are created and taken (in sorted order, as every batch
//! takes them), the sessions inserted, the feed counter drawn and the `created` events
//! written, all committed together — one round trip, so the counter row, which orders the
//! feed by commit, is held for no network round trip at all.

use std::collections::HashMap;

use super::params::{query, values, Params};
use super::session::{new_row, principals_of, ROWS_PER_STATEMENT};
use super::{classify, col, SqlStore};
use crate::store::session::{CreateJob, CreatedRow};
use crate::store::StoreError;

impl SqlStore {
    /// Whether `jobs` go in one statement: on PostgreSQL (SQLite has no data-modifying
    /// `WITH`), a batch that fits one statement, with no limit to count.
    pub(super) fn creates_in_one_statement(&self, jobs: &[CreateJob]) -> bool {
        !self.sqlite
            && jobs.len() <= ROWS_PER_STATEMENT
            && jobs
                .iter()
                .all(|j| j.limit.is_none() || j.new.principal.is_empty())
    }

    /// Creates `jobs` (none limited) in one statement, in order: each session at its
    /// principal's generation (0 without a principal), each with its `created` event.
    pub(super) async fn session_create_unlimited(
        &self,
        jobs: &[CreateJob],
    ) -> Result<Vec<CreatedRow>, StoreError> {
        let principals = principals_of(jobs);
        let rows: Vec<_> = jobs.iter().map(|j| new_row(j, 0)).collect();
        let numbered: Vec<(i64, usize)> = (1..).zip(0..jobs.len()).collect();
        let mut p = Params::new();
        let count = p.int(jobs.len() as i64);
        let at = p.int(jobs.iter().map(|j| j.now).max().unwrap_or(0));
        let taken = if principals.is_empty() {
            "p (tenant, principal, generation) AS (SELECT '', '', 0::BIGINT WHERE false)".into()
        } else {
            let listed = values(&mut p, principals.iter(), |p, (t, pr)| {
                vec![p.text(t), p.text(pr), p.int(1)]
            });
            format!(
                "p AS (INSERT INTO warden_session_principals (tenant, principal, generation) \
                 VALUES {listed} ON CONFLICT (tenant, principal) DO UPDATE \
                 SET generation = warden_session_principals.generation \
                 RETURNING tenant, principal, generation)"
            )
        };
        let listed = values(&mut p, numbered.iter(), |p, (n, i)| {
            let (r, cid) = (&rows[*i], jobs[*i].correlation_id.as_str());
            vec![
                p.int(*n),
                p.text(&r.id_hash),
                p.text(&r.tenant),
                p.text(&r.principal),
                p.text(&r.data),
                p.int(r.created_at),
                p.int(r.idle_ttl_ms),
                p.int(r.idle_expires_at),
                p.int(r.absolute_expires_at),
                p.text(cid),
            ]
        });
        let sql = format!(
            "WITH {taken}, \
             v (n, id_hash, tenant, principal, data, created_at, idle_ttl_ms, idle_expires_at, \
             absolute_expires_at, cid) AS (VALUES {listed}), \
             s AS (INSERT INTO warden_sessions (id_hash, tenant, principal, data, version, \
             generation, created_at, idle_ttl_ms, idle_expires_at, absolute_expires_at, state, \
             ended_at, rotated_to, touch_written_at, correlation_id) \
             SELECT v.id_hash, v.tenant, v.principal, v.data, 1, COALESCE(p.generation, 0), \
             v.created_at, v.idle_ttl_ms, v.idle_expires_at, v.absolute_expires_at, 'active', 0, \
             '', v.created_at, v.cid FROM v LEFT JOIN p ON p.tenant = v.tenant \
             AND p.principal = v.principal ORDER BY v.n RETURNING id_hash, generation), \
             c AS (UPDATE warden_session_seq SET seq = seq + {count} WHERE id = 1 RETURNING seq), \
             e AS (INSERT INTO warden_session_events (seq, tenant, kind, id_hash, principal, at, \
             correlation_id) SELECT c.seq - {count} + v.n, v.tenant, 'created', v.id_hash, \
             v.principal, {at}, v.cid FROM c, v ORDER BY v.n) \
             SELECT id_hash, generation FROM s"
        );
        let created = query(sql, &p.args)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let mut generations = HashMap::with_capacity(created.len());
        for r in &created {
            generations.insert(col::<String>(r, 0)?, col::<i64>(r, 1)?);
        }
        rows.into_iter()
            .map(|mut row| {
                let generation = generations.get(&row.id_hash).copied().ok_or_else(|| {
                    StoreError::Lost(format!("session {} not created", row.id_hash))
                })?;
                row.generation = generation;
                row.principal_generation = generation;
                Ok(CreatedRow::Created {
                    row: Box::new(row),
                    evicted: Vec::new(),
                })
            })
            .collect()
    }
}
