//! The guard's SQL: one write transaction ([`GuardTx`]) per decision, holding the rows it
//! decides on, so an acknowledgement, an escalation step, a guard move and their audit entries
//! and outbox rows commit together or not at all. Rows are locked in one order — incident,
//! guard, outbox, audit head — so concurrent decisions on several instances never deadlock.

use sqlx::Any;

use super::{classify, col, SqlStore};
use crate::audit::Audit;
use crate::store::guard::GuardWrite;
use crate::store::guard::{GuardRow, Incident, NewDelivery, Note, RecoveryAction};
use crate::store::{GuardState, StoreError};

type Tx = sqlx::Transaction<'static, Any>;

/// The incident columns, in [`Incident`] order (a macro so statements stay `&'static str`).
macro_rules! incident_cols {
    () => {
        "id, tenant, dedup_key, state, severity, summary, source, details, correlation_id, \
         traceparent, created_at, updated_at, acked_at, acked_by, resolved_at, resolved_by, \
         attempts, next_notify_at, safe_mode_at, episode, ticket_at, duplicates, escalated_at"
    };
}
pub(super) use incident_cols;

pub(super) fn incident_of(row: &sqlx::any::AnyRow) -> Result<Incident, StoreError> {
    Ok(Incident {
        id: col(row, 0)?,
        tenant: col(row, 1)?,
        dedup_key: col(row, 2)?,
        state: col(row, 3)?,
        severity: col(row, 4)?,
        summary: col(row, 5)?,
        source: col(row, 6)?,
        details: col(row, 7)?,
        correlation_id: col(row, 8)?,
        traceparent: col(row, 9)?,
        created_at: col(row, 10)?,
        updated_at: col(row, 11)?,
        acked_at: col(row, 12)?,
        acked_by: col(row, 13)?,
        resolved_at: col(row, 14)?,
        resolved_by: col(row, 15)?,
        attempts: col(row, 16)?,
        next_notify_at: col(row, 17)?,
        safe_mode_at: col(row, 18)?,
        episode: col(row, 19)?,
        ticket_at: col(row, 20)?,
        duplicates: col(row, 21)?,
        escalated_at: col(row, 22)?,
    })
}

fn guard_of(row: &sqlx::any::AnyRow) -> Result<GuardRow, StoreError> {
    let name: String = col(row, 0)?;
    Ok(GuardRow {
        state: GuardState::parse(&name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown guard state {name:?}")))?,
        episode: col(row, 1)?,
        since: col(row, 2)?,
        reason: col(row, 3)?,
        actor: col(row, 4)?,
        green_since: col(row, 5)?,
        sampled_at: col(row, 6)?,
        sample_green: col::<i64>(row, 7)? != 0,
    })
}

const GUARD_SELECT: &str = "SELECT t.guard, g.episode, g.since, g.reason, g.actor, g.green_since, \
     g.sampled_at, g.sample_green FROM warden_guard g, warden_tier t \
     WHERE g.id = 1 AND t.id = 1";

/// One guard decision in progress: a write transaction (SQLite: `BEGIN IMMEDIATE`, which
/// excludes every other writer; PostgreSQL: the rows read through it are locked until it
/// ends).
pub struct GuardTx {
    tx: Tx,
    sqlite: bool,
}

impl GuardTx {
    pub(super) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub(super) fn locking(&self, sql: &str) -> String {
        if self.sqlite {
            sql.to_owned()
        } else {
            format!("{sql} FOR UPDATE")
        }
    }
}

impl GuardWrite for GuardTx {
    /// The incident `id` (locked).
    async fn incident(&mut self, id: &str) -> Result<Option<Incident>, StoreError> {
        let sql = self.locking(concat!(
            "SELECT ",
            incident_cols!(),
            " FROM warden_incidents WHERE id = $1"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(classify)?;
        row.as_ref().map(incident_of).transpose()
    }

    /// The open incident of `dedup_key` in `tenant`, else its latest (locked).
    async fn incident_by_key(
        &mut self,
        tenant: &str,
        dedup_key: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let sql = self.locking(concat!(
            "SELECT ",
            incident_cols!(),
            " FROM warden_incidents WHERE tenant = $1 AND dedup_key = $2 \
             ORDER BY CASE WHEN state = 'resolved' THEN 1 ELSE 0 END, created_at DESC LIMIT 1"
        ));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(dedup_key)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(classify)?;
        row.as_ref().map(incident_of).transpose()
    }

    /// Writes `i` (inserted when new, else replaced by id).
    async fn put_incident(&mut self, i: &Incident, new: bool) -> Result<(), StoreError> {
        let sql = if new {
            concat!(
                "INSERT INTO warden_incidents (",
                incident_cols!(),
                ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,\
                 $20,$21,$22,$23)"
            )
        } else {
            "UPDATE warden_incidents SET tenant = $2, dedup_key = $3, state = $4, severity = $5, \
             summary = $6, source = $7, details = $8, correlation_id = $9, traceparent = $10, \
             created_at = $11, updated_at = $12, acked_at = $13, acked_by = $14, \
             resolved_at = $15, resolved_by = $16, attempts = $17, next_notify_at = $18, \
             safe_mode_at = $19, episode = $20, ticket_at = $21, duplicates = $22, \
             escalated_at = $23 WHERE id = $1"
        };
        sqlx::query(sql)
            .bind(&i.id)
            .bind(&i.tenant)
            .bind(&i.dedup_key)
            .bind(&i.state)
            .bind(&i.severity)
            .bind(&i.summary)
            .bind(&i.source)
            .bind(&i.details)
            .bind(&i.correlation_id)
            .bind(&i.traceparent)
            .bind(i.created_at)
            .bind(i.updated_at)
            .bind(i.acked_at)
            .bind(&i.acked_by)
            .bind(i.resolved_at)
            .bind(&i.resolved_by)
            .bind(i.attempts)
            .bind(i.next_notify_at)
            .bind(i.safe_mode_at)
            .bind(&i.episode)
            .bind(i.ticket_at)
            .bind(i.duplicates)
            .bind(i.escalated_at)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The guard (its details locked; its state read from the tier row).
    async fn guard(&mut self) -> Result<GuardRow, StoreError> {
        let sql = if self.sqlite {
            GUARD_SELECT.to_owned()
        } else {
            format!("{GUARD_SELECT} FOR UPDATE OF g")
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *self.tx)
            .await
            .map_err(classify)?;
        guard_of(&row)
    }

    /// Writes the guard: its details, and its state on the tier row every instance reads.
    async fn put_guard(&mut self, g: &GuardRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE warden_guard SET episode = $1, since = $2, reason = $3, actor = $4, \
             green_since = $5, sampled_at = $6, sample_green = $7 WHERE id = 1",
        )
        .bind(&g.episode)
        .bind(g.since)
        .bind(&g.reason)
        .bind(&g.actor)
        .bind(g.green_since)
        .bind(g.sampled_at)
        .bind(i64::from(g.sample_green))
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        sqlx::query("UPDATE warden_tier SET guard = $1 WHERE id = 1 AND guard <> $1")
            .bind(g.state.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Incidents of safe-mode episode `episode` still unacknowledged.
    async fn unacked_of_episode(&mut self, episode: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM warden_incidents WHERE episode = $1 AND state = 'triggered' \
             ORDER BY created_at",
        )
        .bind(episode)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(classify)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// How many recovery actions episode `episode` has.
    async fn recoveries_of(&mut self, episode: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM warden_recovery_actions WHERE episode = $1",
        )
        .bind(episode)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(classify)?;
        col(&row, 0)
    }

    /// Records a recovery action.
    async fn put_recovery(&mut self, r: &RecoveryAction) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warden_recovery_actions (id, episode, at, actor, action, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.id)
        .bind(&r.episode)
        .bind(r.at)
        .bind(&r.actor)
        .bind(&r.action)
        .bind(&r.detail)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Records a note.
    async fn put_note(&mut self, n: &Note) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warden_incident_notes (id, incident_id, at, actor, note) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&n.id)
        .bind(&n.incident_id)
        .bind(n.at)
        .bind(&n.actor)
        .bind(&n.note)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Writes deliveries to the outbox, due at `now`; one already written for the same round
    /// and role is left as it is. How many were new.
    async fn enqueue(&mut self, ds: &[NewDelivery], now: i64) -> Result<u64, StoreError> {
        let mut written = 0;
        for d in ds {
            let done = sqlx::query(
                "INSERT INTO warden_outbox (id, subject, type, round, role, failover_of, body, \
                 state, next_try_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', \
                 $8, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&d.id)
            .bind(&d.subject)
            .bind(&d.kind)
            .bind(d.round)
            .bind(&d.role)
            .bind(&d.failover_of)
            .bind(&d.body)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(classify)?;
            written += done.rows_affected();
        }
        Ok(written)
    }

    /// Drops repeats of incident `id` not yet sent: after its acknowledgement or resolution
    /// no repeat goes out.
    async fn drop_repeats(&mut self, id: &str, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE warden_outbox SET state = 'dropped', done_at = $2, \
             last_error = 'incident acknowledged or resolved' \
             WHERE subject = $1 AND type = 'incident.notify' AND state = 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected())
    }

    /// Appends audit entries to the chain.
    async fn audit(&mut self, entries: &[Audit]) -> Result<(), StoreError> {
        super::audit::append(&mut self.tx, self.sqlite, entries).await?;
        metrics::counter!(crate::metrics_names::AUDIT_APPENDED).increment(entries.len() as u64);
        Ok(())
    }

    /// Commits every write of this decision.
    async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(classify)
    }
}

impl SqlStore {
    /// Starts a guard decision.
    pub async fn guard_tx(&self) -> Result<GuardTx, StoreError> {
        Ok(GuardTx {
            tx: self.begin_write().await?,
            sqlite: self.sqlite,
        })
    }

    /// The guard, read without locking.
    pub async fn guard_row(&self) -> Result<GuardRow, StoreError> {
        let row = sqlx::query(GUARD_SELECT)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        guard_of(&row)
    }
}
