//! Guard moves: into safe mode (an unacknowledged critical incident, a §10 critical, or an
//! operator), out of it only through `recovering` — every causing incident acknowledged and a
//! recovery action recorded — and then only after a continuously green window that any red
//! health sample restarts. Each move commits with its audit entry and notifications, and the
//! instance that made it rereads the tier row at once; the others follow within one tier
//! lease.

use crate::audit::Audit;
use crate::runtime::correlation;
use crate::store::guard::{GuardRow, NewDelivery, RecoveryAction};
use crate::store::{GuardState, StoreError};
use crate::tier::{Blocked, BreakerState, TierName};

use super::events::{self, Event};
use super::outcome::{GuardMove, GuardView, Recorded};
use super::rules::{self, OnSample};
use super::{Guard, WARDEN};
use crate::store::guard::GuardWrite;

/// The standard contingency message (DESIGN §4.10), sent once per safe-mode episode.
pub const CONTINGENCY_MESSAGE: &str = "Warden is in safe mode: messages, bookings and payments \
     are paused and kept in order; they resume once the failure is acknowledged and recovered. \
     Nothing sent to us is lost.";

/// What a move in a transaction wrote besides the guard row.
#[derive(Default)]
pub(super) struct Written {
    pub(super) deliveries: Vec<NewDelivery>,
    pub(super) audits: Vec<Audit>,
    /// The guard state changed: reread the tier row after the commit.
    pub(super) moved: bool,
}

impl Written {
    pub(super) async fn flush(
        self,
        tx: &mut impl GuardWrite,
        now: i64,
    ) -> Result<bool, StoreError> {
        tx.enqueue(&self.deliveries, now).await?;
        tx.audit(&self.audits).await?;
        Ok(self.moved)
    }
}

impl Guard {
    /// Puts the guard in safe mode inside `tx`, or keeps it there (a recovering guard goes
    /// back to safe mode: the new cause must be dealt with too). The episode it is in.
    pub(super) async fn enter_in(
        &self,
        tx: &mut impl GuardWrite,
        now: i64,
        reason: &str,
        actor: &str,
        w: &mut Written,
    ) -> Result<String, StoreError> {
        let mut g = tx.guard().await?;
        match g.state {
            GuardState::SafeMode => return Ok(g.episode),
            GuardState::Recovering => {
                g.state = GuardState::SafeMode;
                g.green_since = 0;
                w.audits.push(Audit::new(
                    now,
                    actor,
                    "guard.reenter",
                    &g.episode,
                    format!("back to safe mode while recovering: {reason}"),
                ));
            }
            GuardState::Normal | GuardState::Degraded => {
                g = GuardRow {
                    state: GuardState::SafeMode,
                    episode: format!("ep_{}", uuid::Uuid::new_v4().simple()),
                    since: now,
                    reason: reason.to_owned(),
                    actor: actor.to_owned(),
                    green_since: 0,
                    ..g
                };
                for (kind, message) in [
                    (events::SAFE_MODE_ENTERED, reason.to_owned()),
                    (events::CONTINGENCY, CONTINGENCY_MESSAGE.to_owned()),
                ] {
                    let ev = self.guard_event(kind, &g.episode, GuardState::SafeMode, message);
                    w.deliveries.extend(ev.deliveries(&self.roles(), now));
                }
                w.audits.push(Audit::new(
                    now,
                    actor,
                    "guard.enter",
                    &g.episode,
                    reason.to_owned(),
                ));
                metrics::counter!(crate::metrics_names::INCIDENT_EVENTS, "event" => "safe_mode")
                    .increment(1);
            }
        }
        tx.put_guard(&g).await?;
        w.moved = true;
        tracing::error!(episode = %g.episode, actor, reason, "guard: safe mode entered");
        metrics::counter!(crate::metrics_names::GUARD_MOVES, "to" => "safe_mode").increment(1);
        Ok(g.episode)
    }

    /// Commits `tx` and, when the guard moved, rereads the tier row so this instance acts on
    /// the new state at once.
    pub(super) async fn commit(
        &self,
        mut tx: impl GuardWrite,
        w: Written,
        now: i64,
    ) -> Result<(), StoreError> {
        let moved = w.flush(&mut tx, now).await?;
        tx.commit().await?;
        if moved {
            self.tier.refresh().await?;
        }
        Ok(())
    }

    /// The guard with its exit conditions.
    pub async fn view(&self) -> Result<GuardMove, Blocked> {
        Ok(GuardMove::Read(self.on_sql(self.read_view()).await?))
    }

    async fn read_view(&self) -> Result<GuardView, StoreError> {
        let sql = self.tier.durable();
        let row = sql.guard_row().await?;
        let unacked = sql.unacked_in_episode(&row.episode).await?;
        let recoveries = if row.episode.is_empty() {
            Vec::new()
        } else {
            sql.recoveries(&row.episode).await?
        };
        let green_left_ms = (row.state == GuardState::Recovering).then(|| {
            if row.green_since == 0 {
                self.timers.exit_green
            } else {
                (self.timers.exit_green - (self.tier.now() - row.green_since)).max(0)
            }
        });
        Ok(GuardView {
            row,
            unacked,
            recoveries,
            green_left_ms,
        })
    }

    /// Enters safe mode by hand (`POST /v1/guard/enter`, or the start-up setting).
    pub async fn enter(&self, reason: &str, actor: &str) -> Result<GuardMove, Blocked> {
        self.on_sql(async {
            let sql = self.tier.durable();
            let mut tx = sql.guard_tx().await?;
            let now = self.tier.now();
            let mut w = Written::default();
            self.enter_in(&mut tx, now, reason, actor, &mut w).await?;
            self.commit(tx, w, now).await?;
            Ok(GuardMove::SafeMode(self.read_view().await?))
        })
        .await
    }

    /// Records a recovery action in the current episode.
    pub async fn record_recovery(
        &self,
        action: &str,
        detail: &str,
        actor: &str,
    ) -> Result<Recorded, Blocked> {
        self.on_sql(async {
            let mut tx = self.tier.durable().guard_tx().await?;
            let g = tx.guard().await?;
            if !g.state.blocks_effects() {
                return Ok(Recorded::NotInSafeMode);
            }
            let now = self.tier.now();
            let r = RecoveryAction {
                id: format!("rec_{}", uuid::Uuid::new_v4().simple()),
                episode: g.episode.clone(),
                at: now,
                actor: actor.to_owned(),
                action: action.to_owned(),
                detail: detail.to_owned(),
            };
            tx.put_recovery(&r).await?;
            let text = format!("{action}: {detail}");
            tx.audit(&[Audit::new(
                now,
                actor,
                "guard.recovery_action",
                &g.episode,
                text,
            )])
            .await?;
            tx.commit().await?;
            Ok(Recorded::Recorded(r))
        })
        .await
    }

    /// Asks to leave safe mode: refused with what is missing, armed (the green window runs),
    /// or done at once when no window is configured.
    pub async fn exit(&self, actor: &str) -> Result<GuardMove, Blocked> {
        self.on_sql(async {
            let mut tx = self.tier.durable().guard_tx().await?;
            let mut g = tx.guard().await?;
            let now = self.tier.now();
            match g.state {
                GuardState::Normal | GuardState::Degraded => {
                    drop(tx);
                    return Ok(GuardMove::Normal(self.read_view().await?));
                }
                GuardState::Recovering => {
                    drop(tx);
                    return Ok(GuardMove::ExitArmed(self.read_view().await?));
                }
                GuardState::SafeMode => {}
            }
            let unacked = tx.unacked_of_episode(&g.episode).await?;
            let recoveries = tx.recoveries_of(&g.episode).await?;
            if let Err(missing) = rules::exit_check(&unacked, recoveries) {
                drop(tx);
                return Ok(GuardMove::Unmet(self.read_view().await?, missing));
            }
            let mut w = Written::default();
            g.state = GuardState::Recovering;
            g.green_since = if g.sample_green { now } else { 0 };
            w.audits.push(Audit::new(
                now,
                actor,
                "guard.exit_armed",
                &g.episode,
                format!(
                    "{recoveries} recovery action(s); green window of {} ms starts",
                    self.timers.exit_green
                ),
            ));
            let episode = g.episode.clone();
            let done = self.timers.exit_green == 0;
            if done {
                self.leave(&mut g, now, actor, &mut w);
            }
            tx.put_guard(&g).await?;
            w.moved = true;
            self.commit(tx, w, now).await?;
            tracing::warn!(episode = %episode, actor, "guard: exit armed");
            let view = self.read_view().await?;
            Ok(if done {
                GuardMove::Normal(view)
            } else {
                GuardMove::ExitArmed(view)
            })
        })
        .await
    }

    /// Ends the episode of `g`: back to normal, with its audit entry and notifications.
    fn leave(&self, g: &mut GuardRow, now: i64, actor: &str, w: &mut Written) {
        let episode = std::mem::take(&mut g.episode);
        let ev = self.guard_event(
            events::SAFE_MODE_EXITED,
            &episode,
            GuardState::Normal,
            format!("continuously green for {} ms", self.timers.exit_green),
        );
        w.deliveries.extend(ev.deliveries(&self.roles(), now));
        w.audits.push(Audit::new(
            now,
            actor,
            "guard.exit",
            &episode,
            format!("safe mode over since {}", g.since),
        ));
        g.state = GuardState::Normal;
        g.since = now;
        g.reason = "recovered".into();
        g.actor = actor.to_owned();
        g.green_since = 0;
        tracing::warn!(episode = %episode, "guard: safe mode exited");
        metrics::counter!(crate::metrics_names::GUARD_MOVES, "to" => "normal").increment(1);
    }

    /// Whether this instance is healthy now: it holds a valid tier lease and can grant, and
    /// when Redis is configured, Redis is the active tier and its breaker is closed.
    pub fn green(&self) -> bool {
        let s = self.tier.status();
        let redis_ok = !s.redis_configured
            || (s.breaker == BreakerState::Closed && s.tier == Some(TierName::Redis));
        s.ready.is_ok() && redis_ok
    }

    /// Records one health sample: while recovering, a red one restarts the green window and
    /// a full green window ends safe mode. Outside recovery nothing is written.
    pub(super) async fn sample(&self) -> Result<(), StoreError> {
        let green = self.green();
        let result = if green { "green" } else { "red" };
        metrics::counter!(crate::metrics_names::HEALTH_SAMPLES, "result" => result).increment(1);
        if self.tier.guard() != GuardState::Recovering {
            return Ok(());
        }
        let sql = self.tier.durable();
        let mut tx = sql.guard_tx().await?;
        let mut g = tx.guard().await?;
        let now = self.tier.now();
        let mut w = Written::default();
        match rules::on_sample(&g, green, now, &self.timers) {
            OnSample::Record if green && g.green_since == 0 => g.green_since = now,
            OnSample::Record => {}
            OnSample::RestartWindow => {
                if g.green_since != 0 || g.sample_green {
                    w.audits.push(Audit::new(
                        now,
                        WARDEN,
                        "guard.green_window_restarted",
                        &g.episode,
                        format!(
                            "red health sample: {:?}",
                            self.tier.status().ready.err().map(|b| b.reason())
                        ),
                    ));
                    tracing::warn!(episode = %g.episode, "guard: red sample, green window restarted");
                }
                g.green_since = 0;
            }
            OnSample::Exit => {
                self.leave(&mut g, now, WARDEN, &mut w);
                w.moved = true;
            }
        }
        g.sampled_at = now;
        g.sample_green = green;
        tx.put_guard(&g).await?;
        self.commit(tx, w, now).await
    }

    /// A guard event about episode `episode`.
    pub(super) fn guard_event<'a>(
        &self,
        kind: &'static str,
        episode: &'a str,
        guard_state: GuardState,
        message: String,
    ) -> Event<'a> {
        Event {
            kind,
            incident: None,
            episode,
            round: 0,
            guard_state,
            message,
            correlation_id: correlation::current(),
        }
    }
}
