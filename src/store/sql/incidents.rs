//! Incident reads: lists, one incident with its notes, what is due for escalation, and the
//! recovery actions of an episode.

use super::guard::{incident_cols, incident_of};
use super::{classify, col, SqlStore};
use crate::store::guard::{Incident, Note, RecoveryAction};
use crate::store::StoreError;

impl SqlStore {
    /// Incident `id`, if any.
    pub async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            incident_cols!(),
            " FROM warden_incidents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(incident_of).transpose()
    }

    /// Up to `limit` incidents of `tenant` (every tenant when `None`), in `state` when given,
    /// newest first.
    pub async fn incidents(
        &self,
        tenant: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Incident>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            incident_cols!(),
            " FROM warden_incidents WHERE ($1 = '*' OR tenant = $1) AND ($2 = '' OR state = $2) \
             ORDER BY created_at DESC, id LIMIT $3"
        ))
        .bind(tenant.unwrap_or("*"))
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(incident_of).collect()
    }

    /// Ids of unacknowledged incidents with an escalation step that may be due at `now`: a
    /// notification round, the safe-mode delay, or the next-shift ticket (`critical_due` is
    /// the latest escalation time whose safe mode or ticket may be due).
    pub async fn escalations_due(
        &self,
        now: i64,
        critical_due: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM warden_incidents WHERE state = 'triggered' AND \
             ((next_notify_at > 0 AND next_notify_at <= $1) OR \
              (severity = 'critical' AND escalated_at <= $2 AND (safe_mode_at = 0 OR ticket_at = 0))) \
             ORDER BY created_at LIMIT 100",
        )
        .bind(now)
        .bind(critical_due)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// Unacknowledged incidents by severity, and the creation time of the oldest critical
    /// one (0 when none).
    pub async fn unacked_summary(&self) -> Result<(Vec<(String, i64)>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT severity, CAST(COUNT(*) AS BIGINT), CAST(MIN(created_at) AS BIGINT) \
             FROM warden_incidents WHERE state = 'triggered' GROUP BY severity",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut counts = Vec::new();
        let mut oldest_critical = 0;
        for r in &rows {
            let severity: String = col(r, 0)?;
            if severity == "critical" {
                oldest_critical = col(r, 2)?;
            }
            counts.push((severity, col(r, 1)?));
        }
        Ok((counts, oldest_critical))
    }

    /// Incidents of safe-mode episode `episode` still unacknowledged.
    pub async fn unacked_in_episode(&self, episode: &str) -> Result<Vec<String>, StoreError> {
        if episode.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id FROM warden_incidents WHERE episode = $1 AND state = 'triggered' \
             ORDER BY created_at",
        )
        .bind(episode)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// The notes on incident `id`, oldest first.
    pub async fn notes_of(&self, id: &str) -> Result<Vec<Note>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, incident_id, at, actor, note FROM warden_incident_notes \
             WHERE incident_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(Note {
                    id: col(r, 0)?,
                    incident_id: col(r, 1)?,
                    at: col(r, 2)?,
                    actor: col(r, 3)?,
                    note: col(r, 4)?,
                })
            })
            .collect()
    }

    /// The recovery actions of episode `episode`, oldest first.
    pub async fn recoveries(&self, episode: &str) -> Result<Vec<RecoveryAction>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, episode, at, actor, action, detail FROM warden_recovery_actions \
             WHERE episode = $1 ORDER BY at, id",
        )
        .bind(episode)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(RecoveryAction {
                    id: col(r, 0)?,
                    episode: col(r, 1)?,
                    at: col(r, 2)?,
                    actor: col(r, 3)?,
                    action: col(r, 4)?,
                    detail: col(r, 5)?,
                })
            })
            .collect()
    }
}
