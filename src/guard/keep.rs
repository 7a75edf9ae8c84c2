//! What each instance saw, written for the evidence pack: every health tick, the refusals since
//! the last one (per minute, with samples); the §10 reading once a minute, and every tick
//! while it is over a threshold; once an hour, rows past `guard.retention_ms` are deleted.

use std::sync::Mutex;

use crate::runtime::correlation::instance_id;
use crate::store::guard::{ReadingRow, RefusalRow};
use crate::store::StoreError;

use super::monitor::{BlockedOps, Level, Reading};
use super::Guard;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// When this instance last wrote a reading and last reaped.
#[derive(Debug, Default)]
pub(super) struct Kept(Mutex<(i64, i64)>);

impl Guard {
    pub(super) async fn keep_evidence(&self, reading: Option<Reading>) -> Result<(), StoreError> {
        let sql = self.tier.durable();
        let now = self.tier.now();
        let minute = now - now.rem_euclid(MINUTE);
        let drained = self.monitor.drain_refusals();
        let rows: Vec<RefusalRow> = drained
            .iter()
            .map(|(op, reason, b)| row(minute, op, reason, b))
            .collect();
        if let Err(e) = self.tier.durably(sql.record_refusals(&rows)).await {
            // Not lost: they go back into the monitor for the next tick.
            for (op, reason, b) in drained {
                self.monitor.restore(op, reason, b);
            }
            return Err(e);
        }
        let (last_reading, last_reap) = *self.kept.0.lock().unwrap_or_else(|p| p.into_inner());
        let due = |r: &Reading| minute > last_reading || r.level > Level::Normal;
        if let Some(r) = reading.filter(due) {
            let row = ReadingRow {
                at: now,
                instance: instance_id().to_owned(),
                operations: r.total as i64,
                fallback_permille: (r.fallback_rate * 1000.0).round() as i64,
                fallback_lock_p95_ms: r.lock_p95_ms.min(i64::MAX as u64) as i64,
                primary_lock_p95_ms: r.primary_lock_p95_ms.min(i64::MAX as u64) as i64,
            };
            self.tier.durably(sql.record_reading(&row)).await?;
            self.kept.0.lock().unwrap_or_else(|p| p.into_inner()).0 = minute;
        }
        if now - last_reap >= HOUR {
            let before = now - self.cfg.retention_ms as i64;
            let n = self.tier.durably(sql.reap_guard(before)).await?;
            if n > 0 {
                tracing::info!(
                    rows = n,
                    "guard evidence and finished deliveries past retention deleted"
                );
            }
            self.kept.0.lock().unwrap_or_else(|p| p.into_inner()).1 = now;
        }
        Ok(())
    }
}

fn row(minute: i64, op: &str, reason: &str, b: &BlockedOps) -> RefusalRow {
    RefusalRow {
        minute,
        instance: instance_id().to_owned(),
        op: op.to_owned(),
        reason: reason.to_owned(),
        count: b.count as i64,
        sample_keys: b.sample_keys.iter().cloned().collect(),
        sample_correlation_ids: b.sample_correlation_ids.iter().cloned().collect(),
    }
}
