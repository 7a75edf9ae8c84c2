//! The evidence pack of one incident (S-PC-05-001 §9.4): everything a triage engineer needs
//! about the episode, from the durable records — the timeline (trigger, every delivery try
//! with its status and latency, acknowledgement, guard moves, recovery, resolution), tier
//! switches in the window, the audit range with the head hash — plus what this instance saw:
//! the fallback reading and the refused side effects with sample correlation ids.

use serde::Serialize;

use crate::audit::Sealed;
use crate::runtime::clock::rfc3339;
use crate::store::guard::{Delivery, DeliveryTry, Incident, Note, RecoveryAction};
use crate::store::StoreError;
use crate::tier::Blocked;

use super::monitor::BlockedOps;
use super::Guard;

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

/// Refusals of one operation.
#[derive(Debug, Clone, Serialize)]
pub struct Refusals {
    /// The operation.
    pub op: &'static str,
    /// The safe-block reason.
    pub reason: &'static str,
    /// Counts and samples.
    #[serde(flatten)]
    pub ops: BlockedOps,
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
    /// This instance's §10 reading now: fallback share, and lock p95 per mode (§9.4).
    pub fallback: serde_json::Value,
    /// Side effects this instance refused in the window, by operation, with samples.
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
        let refusals: Vec<Refusals> = self
            .monitor
            .refusals_since(from)
            .into_iter()
            .map(|(op, reason, ops)| Refusals { op, reason, ops })
            .collect();
        let mut affected: Vec<String> = refusals
            .iter()
            .flat_map(|r| r.ops.sample_keys.iter().cloned())
            .collect();
        affected.sort();
        affected.dedup();
        let r = self.monitor.read(now);
        let fallback = serde_json::json!({
            "instance_window_ms": self.cfg.rate_window_ms,
            "operations": r.total,
            "fallback_rate": r.fallback_rate,
            "fallback_lock_p95_ms": r.lock_p95_ms,
            "primary_lock_p95_ms": r.primary_lock_p95_ms,
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
