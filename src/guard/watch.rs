//! Warden's own incidents: every health tick reads the §10 monitor and the tiers. A held
//! reading over a threshold raises `warden:fallback` at its severity, with the reading as
//! evidence, and moves the guard from `normal` to `degraded` — and nothing more: safe mode
//! follows a critical one only through the no-ACK escalation, like any critical incident. A
//! window normal for `normal_after_ms` resolves it and leaves `degraded`. An outage of every
//! tier raises `warden:tiers_down` (critical) as soon as the database answers again.

use std::sync::Mutex;

use crate::audit::Audit;
use crate::metrics_names as m;
use crate::store::{GuardState, StoreError};
use crate::tier::{Blocked, Status};

use super::incident::{IncidentInput, Trigger};
use super::monitor::{Level, Reading};
use super::moves::Written;
use super::rules::state;
use super::{Guard, IncidentEvent, WARDEN};
use crate::store::guard::GuardWrite;

/// The dedup key of the §10 incident.
pub const FALLBACK_KEY: &str = "warden:fallback";
/// The dedup key of an outage of every tier.
pub const TIERS_DOWN_KEY: &str = "warden:tiers_down";
/// The tenant Warden's own incidents belong to.
const OWN_TENANT: &str = crate::access::DEFAULT_TENANT;

/// When this instance first saw every tier down (0: not down).
#[derive(Debug, Default)]
pub(super) struct Outage(Mutex<i64>);

impl Guard {
    /// Reads the monitor and the tiers; raises, upgrades or resolves Warden's own incidents.
    /// The reading, when Redis is configured (without it no rate is judged).
    pub(super) async fn watch_fallback(&self) -> Option<Reading> {
        let now = self.tier.now();
        let status = self.tier.status();
        if let Err(e) = self.watch_outage(&status, now).await {
            tracing::warn!(error = %e, "tier outage not recorded yet");
        }
        if !status.redis_configured {
            // Without Redis every answer is a fallback answer by design: no §10 rate.
            return None;
        }
        let r = self.monitor.read(now);
        metrics::gauge!(m::FALLBACK_RATE).set(r.fallback_rate);
        metrics::gauge!(m::FALLBACK_LOCK_P95).set(r.lock_p95_ms as f64 / 1000.0);
        let result = match self.monitor.hold(&r, now) {
            Some(level) => self.raise(level, &r).await,
            None => self.calm().await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "section 10 guard step failed; retried next tick");
        }
        Some(r)
    }

    async fn raise(&self, level: Level, r: &Reading) -> Result<(), StoreError> {
        let severity = if level == Level::Critical {
            "critical"
        } else {
            "warning"
        };
        let summary = format!(
            "fallback rate {:.1} % over the window, fallback lock p95 {} ms",
            r.fallback_rate * 100.0,
            r.lock_p95_ms
        );
        let c = &self.cfg;
        let trigger = Trigger {
            dedup_key: FALLBACK_KEY.into(),
            severity: severity.into(),
            summary: summary.clone(),
            source: "warden".into(),
            details: serde_json::json!({
                "fallback_rate": r.fallback_rate,
                "fallback_lock_p95_ms": r.lock_p95_ms,
                "primary_lock_p95_ms": r.primary_lock_p95_ms,
                "operations": r.total,
                "fallback_operations": r.fallback,
                "observed_ms": r.observed_ms,
                "window_ms": c.rate_window_ms,
                "thresholds": {
                    "fallback_rate_warning": c.fallback_rate_warning,
                    "fallback_rate_critical": c.fallback_rate_critical,
                    "fallback_p95_warning_ms": c.fallback_p95_warning_ms,
                    "fallback_p95_critical_ms": c.fallback_p95_critical_ms,
                },
            })
            .to_string(),
        };
        let answer = self
            .event(OWN_TENANT, IncidentInput::Trigger(trigger), WARDEN)
            .await
            .map_err(blocked)?;
        let Some(incident) = answer.incident() else {
            return Ok(());
        };
        if incident.state != state::TRIGGERED {
            // Acknowledged: people are on it; the guard stays where they leave it.
            return Ok(());
        }
        if self.tier.guard() == GuardState::Normal {
            self.degrade(&format!("section 10 {severity}: {summary}"))
                .await?;
        }
        Ok(())
    }

    async fn degrade(&self, reason: &str) -> Result<(), StoreError> {
        self.set_calm_state(GuardState::Normal, GuardState::Degraded, reason)
            .await
    }

    /// Resolves the §10 incident and leaves `degraded` once the window stayed normal.
    async fn calm(&self) -> Result<(), StoreError> {
        let sql = self.tier.durable();
        let open = sql.incidents(Some(OWN_TENANT), None, 20).await?;
        for i in open
            .iter()
            .filter(|i| i.dedup_key == FALLBACK_KEY && i.state != state::RESOLVED)
        {
            self.settle_by_id(OWN_TENANT, &i.id, true, WARDEN)
                .await
                .map_err(blocked)?;
        }
        if self.tier.guard() == GuardState::Degraded {
            let reason = "fallback back under the warning thresholds for the whole window";
            self.set_calm_state(GuardState::Degraded, GuardState::Normal, reason)
                .await?;
        }
        Ok(())
    }

    /// Moves the guard `from` → `to` (between `normal` and `degraded` only), audited.
    async fn set_calm_state(
        &self,
        from: GuardState,
        to: GuardState,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.tier.durable().guard_tx().await?;
        let mut g = tx.guard().await?;
        if g.state != from {
            return Ok(());
        }
        let now = self.tier.now();
        g.state = to;
        g.since = now;
        g.reason = reason.to_owned();
        g.actor = WARDEN.into();
        tx.put_guard(&g).await?;
        let mut w = Written {
            moved: true,
            ..Written::default()
        };
        let action = format!("guard.{}", to.as_str());
        w.audits
            .push(Audit::new(now, WARDEN, &action, "guard", reason.to_owned()));
        tracing::warn!(to = to.as_str(), reason, "guard moved");
        metrics::counter!(m::GUARD_MOVES, "to" => to.as_str()).increment(1);
        self.commit(tx, w, now).await
    }

    /// Notes when every tier went down, and raises the incident once the database is back.
    async fn watch_outage(&self, s: &Status, now: i64) -> Result<(), StoreError> {
        let down = matches!(
            s.ready,
            Err(Blocked::BothTiersDown | Blocked::TierLeaseExpired)
        );
        let since = {
            let mut since = self.outage.0.lock().unwrap_or_else(|p| p.into_inner());
            if down {
                if *since == 0 {
                    *since = now;
                    tracing::error!("every tier is down: no side effect can be granted");
                }
                return Ok(());
            }
            std::mem::take(&mut *since)
        };
        if since == 0 {
            return Ok(());
        }
        let trigger = Trigger {
            dedup_key: TIERS_DOWN_KEY.into(),
            severity: "critical".into(),
            summary: format!("every tier was down for {} ms", now - since),
            source: "warden".into(),
            details: serde_json::json!({"down_from": since, "down_until": now}).to_string(),
        };
        match self
            .event(OWN_TENANT, IncidentInput::Trigger(trigger), WARDEN)
            .await
        {
            Ok(IncidentEvent::Triggered(_) | IncidentEvent::Deduplicated(_)) => Ok(()),
            Ok(_) => Ok(()),
            Err(b) => {
                // Still unreachable: try again on the next tick.
                *self.outage.0.lock().unwrap_or_else(|p| p.into_inner()) = since;
                Err(blocked(b))
            }
        }
    }
}

fn blocked(b: Blocked) -> StoreError {
    StoreError::Lost(format!("guard step blocked: {}", b.reason()))
}
