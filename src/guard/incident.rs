//! Incidents: one open incident per `dedup_key` and tenant; an acknowledgement is idempotent
//! and stops the escalation; a resolution always wins over a late acknowledgement. Each change
//! commits with its audit entry and its notifications.

use crate::audit::Audit;
use crate::runtime::correlation;
use crate::store::guard::Incident;
use crate::store::StoreError;
use crate::tier::Blocked;

use super::events::{self, Event};
use super::outcome::{Found, IncidentEvent, Noted};
use super::rules::{self, state};
use super::Guard;
use crate::store::guard::GuardWrite;

/// A trigger, whatever shape it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The key that folds repeats into one open incident.
    pub dedup_key: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    /// One line for people.
    pub summary: String,
    /// What raised it.
    pub source: String,
    /// The sender's details, as JSON text.
    pub details: String,
}

/// One incident event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentInput {
    /// Open (or fold into the open one).
    Trigger(Trigger),
    /// Acknowledge the open incident of this key.
    Acknowledge(String),
    /// Resolve the open incident of this key.
    Resolve(String),
}

/// Severities, lowest first.
pub const SEVERITIES: [&str; 4] = ["info", "warning", "error", "critical"];

fn rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
}

/// How many times a decision is retried after losing a race to insert the same key.
const RACES: usize = 3;

impl Guard {
    /// Applies one incident event for `tenant`, by `actor`.
    pub async fn event(
        &self,
        tenant: &str,
        input: IncidentInput,
        actor: &str,
    ) -> Result<IncidentEvent, Blocked> {
        self.on_sql(async {
            let mut last = None;
            for _ in 0..RACES {
                match self.event_once(tenant, &input, actor).await {
                    // Another instance opened the same key first: decide again on its row.
                    Err(e) if e.is_unique_violation() => last = Some(e),
                    other => return other,
                }
            }
            Err(last.unwrap_or(StoreError::Lost("incident race".into())))
        })
        .await
    }

    async fn event_once(
        &self,
        tenant: &str,
        input: &IncidentInput,
        actor: &str,
    ) -> Result<IncidentEvent, StoreError> {
        let mut tx = self.tier.durable().guard_tx().await?;
        let out = match input {
            IncidentInput::Trigger(t) => self.trigger(&mut tx, tenant, t, actor).await?,
            IncidentInput::Acknowledge(key) | IncidentInput::Resolve(key) => {
                let Some(i) = tx.incident_by_key(tenant, key).await? else {
                    return Ok(IncidentEvent::Unknown);
                };
                let resolve = matches!(input, IncidentInput::Resolve(_));
                self.settle(&mut tx, i, resolve, actor).await?
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Opens an incident, or folds a trigger into the open one of its key.
    async fn trigger(
        &self,
        tx: &mut impl GuardWrite,
        tenant: &str,
        t: &Trigger,
        actor: &str,
    ) -> Result<IncidentEvent, StoreError> {
        let now = self.tier.now();
        if let Some(mut open) = tx
            .incident_by_key(tenant, &t.dedup_key)
            .await?
            .filter(|i| i.state != state::RESOLVED)
        {
            open.duplicates += 1;
            open.updated_at = now;
            if rank(&t.severity) > rank(&open.severity) {
                self.upgrade(tx, &mut open, t, actor, now).await?;
            }
            tx.put_incident(&open, false).await?;
            count("deduplicated");
            return Ok(IncidentEvent::Deduplicated(open));
        }
        let i = Incident {
            id: format!("inc_{}", uuid::Uuid::new_v4().simple()),
            tenant: tenant.to_owned(),
            dedup_key: t.dedup_key.clone(),
            state: state::TRIGGERED.into(),
            severity: t.severity.clone(),
            summary: t.summary.clone(),
            source: t.source.clone(),
            details: t.details.clone(),
            correlation_id: correlation::current(),
            traceparent: correlation::traceparent(),
            created_at: now,
            updated_at: now,
            acked_at: 0,
            acked_by: String::new(),
            resolved_at: 0,
            resolved_by: String::new(),
            attempts: 1,
            next_notify_at: rules::first_repeat(&t.severity, now, &self.timers),
            safe_mode_at: 0,
            episode: String::new(),
            ticket_at: 0,
            duplicates: 0,
            escalated_at: if rules::escalates(&t.severity) {
                now
            } else {
                0
            },
        };
        tx.put_incident(&i, true).await?;
        let ev = self.incident_event(events::TRIGGERED, &i, 1);
        tx.enqueue(&ev.deliveries(&self.roles(), now), now).await?;
        let detail = format!("{} {}: {}", i.severity, i.dedup_key, i.summary);
        tx.audit(&[Audit::new(now, actor, "incident.trigger", &i.id, detail)])
            .await?;
        tracing::warn!(incident_id = %i.id, dedup_key = %i.dedup_key, severity = %i.severity,
            "incident triggered");
        count("triggered");
        Ok(IncidentEvent::Triggered(i))
    }

    /// Raises open incident `i` to the severity of trigger `t`, with its summary and details
    /// (the newer evidence). One that now escalates and is still unacknowledged starts its
    /// escalation clock here — a notice at the new severity goes to both roles at once, and
    /// safe mode waits the whole no-ACK delay from now, whenever the incident was opened.
    async fn upgrade(
        &self,
        tx: &mut impl GuardWrite,
        i: &mut Incident,
        t: &Trigger,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        i.severity = t.severity.clone();
        i.summary = t.summary.clone();
        i.details = t.details.clone();
        if i.state == state::TRIGGERED && rules::escalates(&i.severity) && i.escalated_at == 0 {
            // A round of its own (the first notice went out at the lower severity), then
            // repeats from here.
            i.escalated_at = now;
            i.attempts += 1;
            i.next_notify_at = rules::first_repeat(&i.severity, now, &self.timers);
            let ev = self.incident_event(events::NOTIFY, i, i.attempts);
            tx.enqueue(&ev.deliveries(&self.roles(), now), now).await?;
        }
        // The outbox before the audit head: the transaction's lock order.
        let detail = format!("{} {}: {}", i.severity, i.dedup_key, i.summary);
        tx.audit(&[Audit::new(now, actor, "incident.upgrade", &i.id, detail)])
            .await?;
        tracing::warn!(incident_id = %i.id, dedup_key = %i.dedup_key, severity = %i.severity,
            "incident upgraded");
        Ok(())
    }

    /// Acknowledges (`resolve` false) or resolves `i`.
    async fn settle(
        &self,
        tx: &mut impl GuardWrite,
        mut i: Incident,
        resolve: bool,
        actor: &str,
    ) -> Result<IncidentEvent, StoreError> {
        match (i.state.as_str(), resolve) {
            (state::RESOLVED, false) => return Ok(IncidentEvent::AlreadyResolved(i)),
            (state::RESOLVED, true) => return Ok(IncidentEvent::Resolved(i)),
            (state::ACKNOWLEDGED, false) => return Ok(IncidentEvent::Acknowledged(i)),
            _ => {}
        }
        let now = self.tier.now();
        let (kind, action) = if resolve {
            i.state = state::RESOLVED.into();
            i.resolved_at = now;
            i.resolved_by = actor.to_owned();
            (events::RESOLVED, "incident.resolve")
        } else {
            i.state = state::ACKNOWLEDGED.into();
            i.acked_at = now;
            i.acked_by = actor.to_owned();
            (events::ACKNOWLEDGED, "incident.ack")
        };
        i.updated_at = now;
        i.next_notify_at = 0;
        tx.put_incident(&i, false).await?;
        let dropped = tx.drop_repeats(&i.id, now).await?;
        let ev = self.incident_event(kind, &i, i.attempts);
        tx.enqueue(&ev.deliveries(&self.roles(), now), now).await?;
        let detail = format!(
            "after {} notice round(s); {dropped} repeat(s) dropped",
            i.attempts
        );
        tx.audit(&[Audit::new(now, actor, action, &i.id, detail)])
            .await?;
        tracing::warn!(incident_id = %i.id, actor, action, "incident settled");
        Ok(if resolve {
            count("resolved");
            IncidentEvent::Resolved(i)
        } else {
            count("acknowledged");
            IncidentEvent::Acknowledged(i)
        })
    }

    /// Acknowledges (`resolve` false) or resolves incident `id` of `tenant`.
    pub async fn settle_by_id(
        &self,
        tenant: &str,
        id: &str,
        resolve: bool,
        actor: &str,
    ) -> Result<IncidentEvent, Blocked> {
        self.on_sql(async {
            let mut tx = self.tier.durable().guard_tx().await?;
            let Some(i) = tx.incident(id).await?.filter(|i| i.tenant == tenant) else {
                return Ok(IncidentEvent::Unknown);
            };
            let out = self.settle(&mut tx, i, resolve, actor).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Records a note on incident `id` of `tenant`.
    pub async fn note(
        &self,
        tenant: &str,
        id: &str,
        text: &str,
        actor: &str,
    ) -> Result<Noted, Blocked> {
        self.on_sql(async {
            let mut tx = self.tier.durable().guard_tx().await?;
            let Some(i) = tx.incident(id).await?.filter(|i| i.tenant == tenant) else {
                return Ok(Noted::Unknown);
            };
            let now = self.tier.now();
            let note = crate::store::guard::Note {
                id: format!("note_{}", uuid::Uuid::new_v4().simple()),
                incident_id: i.id.clone(),
                at: now,
                actor: actor.to_owned(),
                note: text.to_owned(),
            };
            tx.put_note(&note).await?;
            tx.audit(&[Audit::new(
                now,
                actor,
                "incident.note",
                &i.id,
                text.to_owned(),
            )])
            .await?;
            tx.commit().await?;
            Ok(Noted::Noted(Box::new(i)))
        })
        .await
    }

    /// Incident `id` of `tenant`.
    pub async fn incident(&self, tenant: &str, id: &str) -> Result<Found, Blocked> {
        let sql = self.tier.durable();
        let found = self.on_sql(sql.incident(id)).await?;
        Ok(match found.filter(|i| i.tenant == tenant) {
            Some(i) => Found::One(Box::new(i)),
            None => Found::Unknown,
        })
    }

    /// Incidents of `tenant`, in `state` when given, newest first.
    pub async fn incidents(
        &self,
        tenant: &str,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Found, Blocked> {
        let sql = self.tier.durable();
        let list = self
            .on_sql(sql.incidents(Some(tenant), state, limit))
            .await?;
        Ok(Found::Many(list))
    }

    /// An event about incident `i`, round `round`.
    pub(super) fn incident_event<'a>(
        &self,
        kind: &'static str,
        i: &'a Incident,
        round: i64,
    ) -> Event<'a> {
        Event {
            kind,
            incident: Some(i),
            episode: &i.episode,
            round,
            guard_state: self.tier.guard(),
            message: String::new(),
            correlation_id: i.correlation_id.clone(),
        }
    }
}

pub(super) fn count(event: &'static str) {
    metrics::counter!(crate::metrics_names::INCIDENT_EVENTS, "event" => event).increment(1);
}
