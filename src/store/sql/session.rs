//! Sessions in SQL. Every change is one transaction that takes the row it changes (or, for
//! what concerns a principal's sessions together — the limit, "log out everywhere" — the
//! principal's row) and records its events, numbered from one counter inside the same
//! transaction, so the feed's order is the commit order.

use sqlx::any::AnyRow;

use super::params::{query, values, Params};
use super::{classify, col, SqlStore};
use crate::store::session::{
    state, Changed, CreateJob, CreatedRow, OnCreate, SessionRow, SessionRules,
};
use crate::store::StoreError;

pub(super) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Rows per multi-row statement (bounded, so bind parameters stay far below every limit).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// The columns of [`SessionRow`], in order (a macro so statements stay `&'static str`).
macro_rules! columns {
    () => {
        "s.id_hash, s.tenant, s.principal, s.data, s.version, s.generation, \
         COALESCE(p.generation, 0), s.created_at, s.idle_ttl_ms, s.idle_expires_at, \
         s.absolute_expires_at, s.state, s.ended_at, s.rotated_to, s.touch_written_at"
    };
}

pub(super) const FROM: &str = " FROM warden_sessions s LEFT JOIN warden_session_principals p \
     ON p.tenant = s.tenant AND p.principal = s.principal ";

pub(super) const BY_ID: &str = concat!("SELECT ", columns!());

/// The distinct principals (tenant, principal) of `jobs` that have one, sorted: the order
/// their rows are taken in.
pub(super) fn principals_of(jobs: &[CreateJob]) -> Vec<(&str, &str)> {
    let mut principals: Vec<(&str, &str)> = jobs
        .iter()
        .filter(|j| !j.new.principal.is_empty())
        .map(|j| (j.new.tenant.as_str(), j.new.principal.as_str()))
        .collect();
    principals.sort_unstable();
    principals.dedup();
    principals
}

/// The row `job` creates, for a principal at `generation`: version 1, active, the idle
/// expiry never past the absolute one.
pub(super) fn new_row(job: &CreateJob, generation: i64) -> SessionRow {
    let new = &job.new;
    SessionRow {
        id_hash: new.id_hash.clone(),
        tenant: new.tenant.clone(),
        principal: new.principal.clone(),
        data: new.data.clone(),
        version: 1,
        generation,
        principal_generation: generation,
        created_at: job.now,
        idle_ttl_ms: new.idle_ttl_ms,
        idle_expires_at: job.now + new.idle_ttl_ms.min(new.absolute_ttl_ms),
        absolute_expires_at: job.now + new.absolute_ttl_ms,
        state: state::ACTIVE.into(),
        ended_at: 0,
        rotated_to: String::new(),
        touch_written_at: job.now,
    }
}

pub(super) fn row_of(r: &AnyRow) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id_hash: col(r, 0)?,
        tenant: col(r, 1)?,
        principal: col(r, 2)?,
        data: col(r, 3)?,
        version: col(r, 4)?,
        generation: col(r, 5)?,
        principal_generation: col(r, 6)?,
        created_at: col(r, 7)?,
        idle_ttl_ms: col(r, 8)?,
        idle_expires_at: col(r, 9)?,
        absolute_expires_at: col(r, 10)?,
        state: col(r, 11)?,
        ended_at: col(r, 12)?,
        rotated_to: col(r, 13)?,
        touch_written_at: col(r, 14)?,
    })
}

/// An event to record.
pub(super) struct Event<'a> {
    pub(super) tenant: &'a str,
    pub(super) kind: &'static str,
    pub(super) id_hash: &'a str,
    pub(super) principal: &'a str,
    pub(super) correlation_id: &'a str,
}

impl SqlStore {
    /// Reads session `id_hash` of `tenant` in `tx`, locking its row on PostgreSQL.
    async fn session_in(
        &self,
        tx: &mut Tx,
        tenant: &str,
        id_hash: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        let lock = if self.sqlite { "" } else { " FOR UPDATE OF s" };
        let sql = format!("{BY_ID}{FROM}WHERE s.id_hash = $1 AND s.tenant = $2{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash)
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await
            .map_err(classify)?;
        row.as_ref().map(row_of).transpose()
    }

    /// Session `id_hash` of `tenant`, if it exists (ended ones included).
    pub async fn session(
        &self,
        tenant: &str,
        id_hash: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("{BY_ID}{FROM}WHERE s.id_hash = $1 AND s.tenant = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(row_of).transpose()
    }

    /// Takes the principal's row (creating it at generation 1): its generation.
    async fn lock_principal(
        &self,
        tx: &mut Tx,
        tenant: &str,
        principal: &str,
    ) -> Result<i64, StoreError> {
        let found = self.lock_principals(tx, &[(tenant, principal)]).await?;
        Ok(found.first().map_or(1, |(_, _, g)| *g))
    }

    /// Takes the rows of `principals` (sorted, distinct; created at generation 1 when new), in
    /// that order, one statement for all: their generations. An upsert that meets an existing
    /// row locks it as `FOR UPDATE` would, and it meets the rows in the order given, so
    /// concurrent batches never wait on each other in a cycle.
    async fn lock_principals<'a>(
        &self,
        tx: &mut Tx,
        principals: &[(&'a str, &'a str)],
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut found = Vec::with_capacity(principals.len());
        for chunk in principals.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let rows = values(&mut p, chunk.iter(), |p, (t, pr)| {
                vec![p.text(t), p.text(pr), p.int(1)]
            });
            let sql = format!(
                "INSERT INTO warden_session_principals (tenant, principal, generation) \
                 VALUES {rows} ON CONFLICT (tenant, principal) DO UPDATE \
                 SET generation = warden_session_principals.generation \
                 RETURNING tenant, principal, generation"
            );
            let rows = query(sql, &p.args)
                .fetch_all(&mut **tx)
                .await
                .map_err(classify)?;
            for r in &rows {
                found.push((col(r, 0)?, col(r, 1)?, col(r, 2)?));
            }
        }
        Ok(found)
    }

    /// Records `events` in `tx`, numbered from the feed's counter (one draw per statement:
    /// the counter row is held from the draw to the commit, so it is taken last). On
    /// PostgreSQL the draw and the insert are one statement, so the counter is held for one
    /// round trip less.
    pub(super) async fn add_events(
        &self,
        tx: &mut Tx,
        events: &[Event<'_>],
        at: i64,
    ) -> Result<(), StoreError> {
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let count = p.int(chunk.len() as i64);
            let ordinals: Vec<(i64, &Event)> = (1..).zip(chunk).collect();
            let rows = values(&mut p, ordinals.iter(), |p, (n, e)| {
                vec![
                    p.int(*n),
                    p.text(e.tenant),
                    p.text(e.kind),
                    p.text(e.id_hash),
                    p.text(e.principal),
                    p.int(at),
                    p.text(e.correlation_id),
                ]
            });
            let draw = format!("UPDATE warden_session_seq SET seq = seq + {count} WHERE id = 1");
            let counter = if self.sqlite {
                // No data-modifying WITH on SQLite: the draw goes first, on its own, and the
                // insert reads the counter it moved (the writer is alone on SQLite).
                query(draw, &p.args[..1])
                    .execute(&mut **tx)
                    .await
                    .map_err(classify)?;
                "s AS (SELECT seq FROM warden_session_seq WHERE id = 1)".to_string()
            } else {
                format!("s AS ({draw} RETURNING seq)")
            };
            let sql = format!(
                "WITH {counter}, v (n, tenant, kind, id_hash, principal, at, cid) AS \
                 (VALUES {rows}) INSERT INTO warden_session_events (seq, tenant, kind, id_hash, \
                 principal, at, correlation_id) SELECT s.seq - {count} + v.n, v.tenant, v.kind, \
                 v.id_hash, v.principal, v.at, v.cid FROM s, v ORDER BY v.n"
            );
            query(sql, &p.args)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// Ends the active sessions `id_hashes` of `tenant` as `to` in `tx` (an end moves the
    /// version on, so a hot copy of the live session is older than its end); those it ended,
    /// with their new versions.
    pub(super) async fn end_sessions(
        &self,
        tx: &mut Tx,
        tenant: &str,
        id_hashes: &[String],
        to: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut ended = Vec::new();
        for id in id_hashes {
            let done = sqlx::query(
                "UPDATE warden_sessions SET state = $3, ended_at = $4, version = version + 1 \
                 WHERE id_hash = $1 AND tenant = $2 AND state = 'active' RETURNING version",
            )
            .bind(id)
            .bind(tenant)
            .bind(to)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(classify)?;
            if let Some(row) = done {
                ended.push((id.clone(), col(&row, 0)?));
            }
        }
        Ok(ended)
    }

    /// The live sessions of a principal in `tx` (or the pool), oldest first: id hashes.
    async fn live_of(
        &self,
        tx: &mut Tx,
        tenant: &str,
        principal: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id_hash FROM warden_sessions WHERE tenant = $1 AND principal = $2 \
             AND state = 'active' AND idle_expires_at > $3 AND absolute_expires_at > $3 \
             ORDER BY created_at, id_hash",
        )
        .bind(tenant)
        .bind(principal)
        .bind(now)
        .fetch_all(&mut **tx)
        .await
        .map_err(classify)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// Creates a batch of sessions in one transaction (group commit), in order; for each
    /// with a `limit`, counts its principal's live sessions (earlier creates of the batch
    /// included) and admits, refuses or evicts. Principals' rows are taken first, in sorted
    /// order, so concurrent batches never wait on each other in a cycle.
    pub async fn session_create_batch(
        &self,
        jobs: Vec<CreateJob>,
        rules: SessionRules,
    ) -> Result<Vec<CreatedRow>, StoreError> {
        if self.creates_in_one_statement(&jobs) {
            return self.session_create_unlimited(&jobs).await;
        }
        let mut tx = self.begin_write().await?;
        let principals = principals_of(&jobs);
        let generations: std::collections::HashMap<(String, String), i64> = self
            .lock_principals(&mut tx, &principals)
            .await?
            .into_iter()
            .map(|(t, p, g)| ((t, p), g))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        let mut evictions: Vec<Vec<(String, i64)>> = Vec::with_capacity(jobs.len());
        // Rows not inserted yet: inserted together, or before a limited create counts.
        let mut pending: Vec<(SessionRow, &str)> = Vec::new();
        for job in &jobs {
            let new = &job.new;
            let key = (new.tenant.clone(), new.principal.clone());
            let generation = generations.get(&key).copied().unwrap_or(0);
            let mut evicted = Vec::new();
            if let (Some((max, on_limit)), false) = (job.limit, new.principal.is_empty()) {
                self.insert_sessions(&mut tx, &std::mem::take(&mut pending))
                    .await?;
                let live = self
                    .live_of(&mut tx, &new.tenant, &new.principal, job.now)
                    .await?;
                match (rules.on_create)(live.len(), max, on_limit) {
                    OnCreate::Admit => {}
                    OnCreate::Refuse => {
                        out.push(CreatedRow::LimitReached);
                        evictions.push(Vec::new());
                        continue;
                    }
                    OnCreate::Evict(n) => {
                        let oldest = &live[..n.min(live.len())];
                        evicted = self
                            .end_sessions(&mut tx, &new.tenant, oldest, state::EVICTED, job.now)
                            .await?;
                    }
                }
            }
            let row = new_row(job, generation);
            pending.push((row.clone(), &job.correlation_id));
            evictions.push(evicted.clone());
            out.push(CreatedRow::Created {
                row: Box::new(row),
                evicted,
            });
        }
        self.insert_sessions(&mut tx, &pending).await?;
        let mut events = Vec::new();
        for ((job, created), evicted) in jobs.iter().zip(&out).zip(&evictions) {
            let CreatedRow::Created { row, .. } = created else {
                continue;
            };
            let event = |kind, id_hash| Event {
                tenant: &job.new.tenant,
                kind,
                id_hash,
                principal: &job.new.principal,
                correlation_id: &job.correlation_id,
            };
            events.extend(evicted.iter().map(|(id, _)| event("evicted", id.as_str())));
            events.push(event("created", row.id_hash.as_str()));
        }
        let at = jobs.iter().map(|j| j.now).max().unwrap_or(0);
        self.add_events(&mut tx, &events, at).await?;
        tx.commit().await.map_err(classify)?;
        Ok(out)
    }

    /// Inserts `rows` (each with its request's correlation id), a few statements for all.
    async fn insert_sessions(
        &self,
        tx: &mut Tx,
        rows: &[(SessionRow, &str)],
    ) -> Result<(), StoreError> {
        self.write_sessions(tx, rows, "").await
    }

    /// Writes `rows` (each with its request's correlation id), a few statements for all,
    /// each ending with `conflict` (an `ON CONFLICT` clause, or nothing).
    pub(super) async fn write_sessions(
        &self,
        tx: &mut Tx,
        rows: &[(SessionRow, &str)],
        conflict: &str,
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let rows = values(&mut p, chunk.iter(), |p, (r, cid)| {
                vec![
                    p.text(&r.id_hash),
                    p.text(&r.tenant),
                    p.text(&r.principal),
                    p.text(&r.data),
                    p.int(r.version),
                    p.int(r.generation),
                    p.int(r.created_at),
                    p.int(r.idle_ttl_ms),
                    p.int(r.idle_expires_at),
                    p.int(r.absolute_expires_at),
                    p.text(&r.state),
                    p.int(r.ended_at),
                    p.text(&r.rotated_to),
                    p.int(r.touch_written_at),
                    p.text(cid),
                ]
            });
            let sql = format!(
                "INSERT INTO warden_sessions (id_hash, tenant, principal, data, version, \
                 generation, created_at, idle_ttl_ms, idle_expires_at, absolute_expires_at, \
                 state, ended_at, rotated_to, touch_written_at, correlation_id) VALUES {rows}\
                 {conflict}"
            );
            query(sql, &p.args)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// Slides the idle expiry of the live session `id_hash` to `idle_expires_at` (never past
    /// its absolute expiry); `false` when it is not live.
    pub async fn session_touch(
        &self,
        tenant: &str,
        id_hash: &str,
        idle_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE warden_sessions SET idle_expires_at = CASE WHEN $3 < absolute_expires_at \
             THEN $3 ELSE absolute_expires_at END, touch_written_at = $4 WHERE id_hash = $1 AND tenant = $2 AND state = 'active' \
             AND idle_expires_at > $4 AND absolute_expires_at > $4",
        )
        .bind(id_hash)
        .bind(tenant)
        .bind(idle_expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the live session `id_hash` (its version moves on, to the successor's) and creates
    /// `successor` with its data, principal and expiries, in one transaction.
    pub async fn session_rotate(
        &self,
        tenant: &str,
        id_hash: &str,
        successor: &str,
        now: i64,
        correlation_id: &str,
        rules: SessionRules,
    ) -> Result<Changed, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(old) = self.session_in(&mut tx, tenant, id_hash).await? else {
            return Ok(Changed::Refused(None));
        };
        if (rules.standing)(&old, now) != crate::store::session::Standing::Active {
            return Ok(Changed::Refused(Some(old)));
        }
        sqlx::query(
            "UPDATE warden_sessions SET state = 'rotated', ended_at = $3, rotated_to = $4, \
             version = version + 1 WHERE id_hash = $1 AND tenant = $2",
        )
        .bind(id_hash)
        .bind(tenant)
        .bind(now)
        .bind(successor)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let new = SessionRow {
            id_hash: successor.to_owned(),
            version: old.version + 1,
            created_at: now,
            touch_written_at: now,
            ..old.clone()
        };
        self.insert_sessions(&mut tx, &[(new.clone(), correlation_id)])
            .await?;
        let events = [Event {
            tenant,
            kind: "rotated",
            id_hash,
            principal: &old.principal,
            correlation_id,
        }];
        self.add_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(classify)?;
        Ok(Changed::Done(new))
    }

    /// Revokes session `id_hash`: whether it was live and is revoked now, and its row as it
    /// stands after; `None` when there is no such session.
    pub async fn session_revoke(
        &self,
        tenant: &str,
        id_hash: &str,
        now: i64,
        correlation_id: &str,
    ) -> Result<Option<(bool, SessionRow)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(mut row) = self.session_in(&mut tx, tenant, id_hash).await? else {
            return Ok(None);
        };
        let ids = [id_hash.to_owned()];
        let ended = self
            .end_sessions(&mut tx, tenant, &ids, state::REVOKED, now)
            .await?;
        if let Some((_, version)) = ended.first() {
            row.version = *version;
            row.state = state::REVOKED.into();
            row.ended_at = now;
            let events = [Event {
                tenant,
                kind: "revoked",
                id_hash,
                principal: &row.principal,
                correlation_id,
            }];
            self.add_events(&mut tx, &events, now).await?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Some((!ended.is_empty(), row)))
    }

    /// Logs a principal out everywhere: moves its generation on (so no session of an earlier
    /// generation is live, whatever its row says) and revokes its live sessions. Their id
    /// hashes and new versions.
    pub async fn session_revoke_all(
        &self,
        tenant: &str,
        principal: &str,
        now: i64,
        correlation_id: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_principal(&mut tx, tenant, principal).await?;
        sqlx::query(
            "UPDATE warden_session_principals SET generation = generation + 1 \
             WHERE tenant = $1 AND principal = $2",
        )
        .bind(tenant)
        .bind(principal)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let rows = sqlx::query(
            "SELECT id_hash FROM warden_sessions WHERE tenant = $1 AND principal = $2 \
             AND state = 'active'",
        )
        .bind(tenant)
        .bind(principal)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let ids: Vec<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?;
        let ended = self
            .end_sessions(&mut tx, tenant, &ids, state::REVOKED, now)
            .await?;
        let events: Vec<Event> = ended
            .iter()
            .map(|(id, _)| Event {
                tenant,
                kind: "revoked",
                id_hash: id,
                principal,
                correlation_id,
            })
            .collect();
        self.add_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(classify)?;
        Ok(ended)
    }
}
