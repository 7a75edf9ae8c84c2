//! The evidence pack of one incident (S-PC-05-001 §9.4): everything a triage engineer needs
//! about the episode, from the durable records — the timeline (trigger, every delivery try
//! with its status and latency, acknowledgement, guard moves, recovery, resolution), tier
//! switches in the window, the audit range with the head hash, and what every instance saw and
//! wrote down each tick: its refused side effects with sample correlation ids, and its
//! fallback readings.

use serde::Serialize;

use crate::audit::Sealed;
use crate::runtime::clock::rfc3339;
use crate::store::guard::{Delivery, DeliveryTry, Incident, Note, RecoveryAction};
use crate::store::StoreError;
use crate::tier::Blocked;

use super::Guard;
use crate::store::guard::{ReadingRow, RefusalRow};
use std::collections::BTreeMap;

/// Time taken around an incident for its window: before its creation, after its end.
const BEFORE_MS: i64 = 5 * 60_000;
const AFTER_MS: i64 = 60_000;
/// Most audit entries in one pack.
const MAX_AUDIT: i64 = 5_000;

/// One event of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Moment {
    /// When, RFC 3339.
    pub at: String,
    /// Epoch ms (for ordering).
    pub at_ms: i64,
    /// What (`incident.trigger`, `delivery.try`, `guard.enter`, …).
    pub kind: String,
    /// Who.
    pub actor: String,
    /// Details.
    pub detail: String,
}

/// A delivery with its tries.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryEvidence {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Every try: HTTP status (0: no answer), latency, error.
    pub attempts: Vec<DeliveryTry>,
}

/// Refusals of one operation for one reason over the window, every instance's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Refusals {
    /// The operation.
    pub op: String,
    /// The safe-block reason.
    pub reason: String,
    /// How many.
    pub count: i64,
    /// The first minute with one, RFC 3339.
    pub first_minute: String,
    /// The last minute with one, RFC 3339.
    pub last_minute: String,
    /// The instances that refused.
    pub instances: Vec<String>,
    /// Keys, streams or SKUs of the latest few.
    pub sample_keys: Vec<String>,
    /// Their correlation ids.
    pub sample_correlation_ids: Vec<String>,
}

/// Sums the minute rows of each (operation, reason); the latest samples win.
fn refusals(rows: Vec<RefusalRow>) -> Vec<Refusals> {
    let mut by: BTreeMap<(String, String), Refusals> = BTreeMap::new();
    for r in rows {
        let e = by.entry((r.op.clone(), r.reason.clone())).or_default();
        if e.count == 0 {
            e.op = r.op;
            e.reason = r.reason;
            e.first_minute = rfc3339(r.minute);
        }
        e.count += r.count;
        e.last_minute = rfc3339(r.minute);
        if !e.instances.contains(&r.instance) {
            e.instances.push(r.instance);
        }
        e.sample_keys = r.sample_keys;
        e.sample_correlation_ids = r.sample_correlation_ids;
    }
    by.into_values().collect()
}

/// The evidence pack.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The incident.
    pub incident: Incident,
    /// The window covered, RFC 3339.
    pub window: (String, String),
    /// Everything that happened, in order.
    pub timeline: Vec<Moment>,
    /// Notifications with every try.
    pub deliveries: Vec<DeliveryEvidence>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Recovery actions of its safe-mode episode.
    pub recovery_actions: Vec<RecoveryAction>,
    /// Tier switches and breaker moves in the window (from the audit chain).
    pub tier_switches: Vec<Moment>,
    /// The §10 readings of every instance in the window (one a minute each: fallback share,
    /// lock p95 per mode, §9.4), with the worst of each.
    pub fallback: serde_json::Value,
    /// Side effects refused in the window by every instance, by operation and reason, with
    /// sample keys and correlation ids.
    pub blocked: Vec<Refusals>,
    /// Streams, keys and SKUs named by those refusals.
    pub affected: Vec<String>,
    /// The audit entries of the window: first and last number, and the chain's head hash.
    pub audit: serde_json::Value,
}

fn moment(at: i64, kind: &str, actor: &str, detail: String) -> Moment {
    Moment {
        at: rfc3339(at),
        at_ms: at,
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        detail,
    }
}

impl Guard {
    /// The evidence pack of incident `id` of `tenant` (`None`: no such incident).
    pub async fn evidence(&self, tenant: &str, id: &str) -> Result<Option<Evidence>, Blocked> {
        self.on_sql(self.gather(tenant, id)).await
    }

    async fn gather(&self, tenant: &str, id: &str) -> Result<Option<Evidence>, StoreError> {
        let sql = self.tier.durable();
        let Some(incident) = sql.incident(id).await?.filter(|i| i.tenant == tenant) else {
            return Ok(None);
        };
        let now = self.tier.now();
        let end = if incident.resolved_at > 0 {
            incident.resolved_at
        } else {
            now
        };
        let (from, to) = (incident.created_at - BEFORE_MS, end + AFTER_MS);
        let mut subjects = vec![incident.id.as_str()];
        if !incident.episode.is_empty() {
            subjects.push(&incident.episode);
        }
        let mut deliveries = Vec::new();
        let mut timeline = Vec::new();
        for d in sql.deliveries_of(&subjects).await? {
            let attempts = sql.tries_of(&d.id).await?;
            for t in &attempts {
                let detail = format!(
                    "{} round {} to {} (webhook-id {}) try {}: HTTP {} in {} ms{}",
                    d.kind,
                    d.round,
                    d.role,
                    d.id,
                    t.try_no,
                    t.status,
                    t.latency_ms,
                    if t.error.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", t.error)
                    }
                );
                timeline.push(moment(t.at, "delivery.try", "warden", detail));
            }
            deliveries.push(DeliveryEvidence {
                delivery: d,
                attempts,
            });
        }
        let entries = sql.audit_between(from, to, MAX_AUDIT).await?;
        let mut tier_switches = Vec::new();
        for e in &entries {
            let a = &e.entry;
            let about_us = subjects.contains(&a.subject.as_str());
            if a.action == "tier.switch" {
                tier_switches.push(moment(a.at, &a.action, &a.actor, a.detail.clone()));
            } else if about_us || a.action.starts_with("guard.") {
                timeline.push(moment(a.at, &a.action, &a.actor, a.detail.clone()));
            }
        }
        timeline.sort_by_key(|m| m.at_ms);
        let (head_seq, head_hash) = sql.audit_head().await?;
        let audit = audit_range(&entries, head_seq, &head_hash);
        let minute_from = from - from.rem_euclid(60_000);
        let refusals = refusals(sql.refusals_between(minute_from, to).await?);
        let mut affected: Vec<String> = refusals
            .iter()
            .flat_map(|r| r.sample_keys.iter().cloned())
            .collect();
        affected.sort();
        affected.dedup();
        let readings = sql.readings_between(from, to).await?;
        let worst = |f: fn(&ReadingRow) -> i64| readings.iter().map(f).max().unwrap_or(0);
        let fallback = serde_json::json!({
            "window_ms": self.cfg.rate_window_ms,
            "max_fallback_rate": worst(|r| r.fallback_permille) as f64 / 1000.0,
            "max_fallback_lock_p95_ms": worst(|r| r.fallback_lock_p95_ms),
            "max_primary_lock_p95_ms": worst(|r| r.primary_lock_p95_ms),
            "readings": readings,
        });
        let recovery_actions = if incident.episode.is_empty() {
            Vec::new()
        } else {
            sql.recoveries(&incident.episode).await?
        };
        Ok(Some(Evidence {
            notes: sql.notes_of(&incident.id).await?,
            window: (rfc3339(from), rfc3339(to)),
            incident,
            timeline,
            deliveries,
            recovery_actions,
            tier_switches,
            fallback,
            blocked: refusals,
            affected,
            audit,
        }))
    }
}

fn audit_range(entries: &[Sealed], head_seq: i64, head_hash: &str) -> serde_json::Value {
    serde_json::json!({
        "first_seq": entries.first().map(|e| e.seq),
        "last_seq": entries.last().map(|e| e.seq),
        "entries": entries.len(),
        "head_seq": head_seq,
        "head_hash": head_hash,
    })
}
