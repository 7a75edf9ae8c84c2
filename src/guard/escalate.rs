//! Escalation: every health tick, each instance advances the unacknowledged incidents whose
//! next step is due — a repeat round to both roles, safe mode, the next-shift ticket — each in
//! a transaction that locks the incident and re-decides on what it holds, so two instances
//! never write the same round and an instance killed mid-way leaves the next round to another.

use crate::audit::Audit;
use crate::store::StoreError;

use super::events;
use super::moves::Written;
use super::rules;
use super::{Guard, WARDEN};
use crate::store::guard::GuardWrite;

impl Guard {
    /// Advances every incident with a step due now.
    pub(super) async fn escalate_due(&self) -> Result<(), StoreError> {
        let now = self.tier.now();
        let earliest = now - self.timers.safe_mode_after.min(self.timers.notify_window);
        let sql = self.tier.durable();
        let due = self
            .tier
            .durably(sql.escalations_due(now, earliest))
            .await?;
        for id in due {
            self.tier.durably(self.escalate(&id)).await?;
        }
        Ok(())
    }

    /// Advances incident `id` by what is due now (nothing if another instance did first).
    async fn escalate(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.tier.durable().guard_tx().await?;
        let Some(mut i) = tx.incident(id).await? else {
            return Ok(());
        };
        let now = self.tier.now();
        let due = rules::due(&i, now, &self.timers);
        if due.is_empty() {
            return Ok(());
        }
        let mut w = Written::default();
        if let Some(round) = due.repeat {
            i.attempts = round;
            i.next_notify_at = rules::next_repeat(&i, i.next_notify_at, &self.timers);
            let ev = self.incident_event(events::NOTIFY, &i, round);
            w.deliveries.extend(ev.deliveries(&self.roles(), now));
            w.audits.push(Audit::new(
                now,
                WARDEN,
                "incident.notify",
                &i.id,
                format!("round {round}: unacknowledged"),
            ));
            super::incident::count("notify");
        }
        if due.safe_mode {
            let reason = format!(
                "critical incident {} ({}) unacknowledged for {} ms",
                i.id, i.dedup_key, self.timers.safe_mode_after
            );
            i.episode = self.enter_in(&mut tx, now, &reason, WARDEN, &mut w).await?;
            i.safe_mode_at = now;
        }
        if due.ticket {
            i.ticket_at = now;
            let mut ev = self.incident_event(events::TICKET, &i, i.attempts);
            ev.message = format!(
                "critical incident {} unacknowledged for {} ms: {}",
                i.dedup_key, self.timers.notify_window, i.summary
            );
            w.deliveries.extend(ev.deliveries(&self.roles(), now));
            w.audits.push(Audit::new(
                now,
                WARDEN,
                "incident.ticket",
                &i.id,
                ev.message.clone(),
            ));
            super::incident::count("ticket");
        }
        i.updated_at = now;
        tx.put_incident(&i, false).await?;
        self.commit(tx, w, now).await
    }
}
