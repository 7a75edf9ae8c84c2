//! The guard's rules, pure: what an unacknowledged incident is due at a given instant, whether
//! safe mode may be left, and how a health sample moves the green window. The SQL
//! transactions in `guard` apply these to the rows they lock, so every instance decides alike.

use crate::config::GuardSettings;
use crate::store::guard::{GuardRow, Incident};
use crate::store::GuardState;

/// The escalation timers, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Repeat interval while unacknowledged.
    pub notify_interval: i64,
    /// How long repeats go on; then the next-shift ticket.
    pub notify_window: i64,
    /// Critical and unacknowledged this long: safe mode.
    pub safe_mode_after: i64,
    /// Continuous green needed to leave safe mode.
    pub exit_green: i64,
}

impl From<&GuardSettings> for Timers {
    fn from(g: &GuardSettings) -> Self {
        Self {
            notify_interval: g.notify_interval_ms as i64,
            notify_window: g.notify_window_ms as i64,
            safe_mode_after: g.safe_mode_after_ms as i64,
            exit_green: g.exit_green_ms as i64,
        }
    }
}

/// Incident states.
pub mod state {
    /// Open, nobody acknowledged it.
    pub const TRIGGERED: &str = "triggered";
    /// Someone acknowledged it; escalation stopped.
    pub const ACKNOWLEDGED: &str = "acknowledged";
    /// Over.
    pub const RESOLVED: &str = "resolved";
}

/// Whether incidents of `severity` escalate (repeats, safe mode, ticket).
pub fn escalates(severity: &str) -> bool {
    severity == "critical"
}

/// When the first repeat of an incident raised at `now` is due (0: none).
pub fn first_repeat(severity: &str, now: i64, t: &Timers) -> i64 {
    if escalates(severity) && t.notify_interval < t.notify_window {
        now + t.notify_interval
    } else {
        0
    }
}

/// The escalation steps due for one incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// A repeat round, numbered from 2 (round 1 is the first notice).
    pub repeat: Option<i64>,
    /// Safe mode, now.
    pub safe_mode: bool,
    /// The next-shift ticket, now.
    pub ticket: bool,
}

impl Due {
    /// Whether nothing is due.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What is due for `i` at `now`. Only unacknowledged incidents escalate. A repeat is one
/// round at a time, numbered after the last one written, so an instance taking over never
/// repeats or skips a number; repeats stop at the end of the window, where the ticket is due.
pub fn due(i: &Incident, now: i64, t: &Timers) -> Due {
    if i.state != state::TRIGGERED {
        return Due::default();
    }
    let window_end = i.escalated_at + t.notify_window;
    let repeat = (i.next_notify_at > 0 && now >= i.next_notify_at && i.next_notify_at < window_end)
        .then_some(i.attempts + 1);
    let critical = escalates(&i.severity);
    Due {
        repeat,
        safe_mode: critical && i.safe_mode_at == 0 && now >= i.escalated_at + t.safe_mode_after,
        ticket: critical && i.ticket_at == 0 && now >= window_end,
    }
}

/// The next repeat after round `due_at`, or 0 past the window.
pub fn next_repeat(i: &Incident, due_at: i64, t: &Timers) -> i64 {
    let next = due_at + t.notify_interval;
    if next < i.escalated_at + t.notify_window {
        next
    } else {
        0
    }
}

/// A condition of leaving safe mode not met yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// `acknowledgement`, `recovery_action` or `green_window`.
    pub condition: &'static str,
    /// Details: the incidents still unacknowledged, or how much green is left.
    pub detail: String,
}

/// What an exit request finds: every causing incident acknowledged and a recovery action
/// recorded, or what is missing.
pub fn exit_check(unacked: &[String], recoveries: i64) -> Result<(), Vec<Missing>> {
    let mut missing = Vec::new();
    if !unacked.is_empty() {
        missing.push(Missing {
            condition: "acknowledgement",
            detail: format!("unacknowledged: {}", unacked.join(", ")),
        });
    }
    if recoveries == 0 {
        missing.push(Missing {
            condition: "recovery_action",
            detail: "no recovery action recorded in this episode".into(),
        });
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// How one health sample moves the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSample {
    /// Nothing to do but record it.
    Record,
    /// Recovering and red: the green window starts again.
    RestartWindow,
    /// Recovering and green for the whole window: back to normal.
    Exit,
}

/// The move a sample (`green` at `now`) makes on `g`.
pub fn on_sample(g: &GuardRow, green: bool, now: i64, t: &Timers) -> OnSample {
    if g.state != GuardState::Recovering {
        return OnSample::Record;
    }
    if !green {
        return OnSample::RestartWindow;
    }
    if g.green_since > 0 && now - g.green_since >= t.exit_green {
        OnSample::Exit
    } else {
        OnSample::Record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timers = Timers {
        notify_interval: 100,
        notify_window: 500,
        safe_mode_after: 250,
        exit_green: 1_000,
    };

    fn incident(created_at: i64) -> Incident {
        Incident {
            id: "inc".into(),
            tenant: String::new(),
            dedup_key: "k".into(),
            state: state::TRIGGERED.into(),
            severity: "critical".into(),
            summary: String::new(),
            source: String::new(),
            details: String::new(),
            correlation_id: String::new(),
            traceparent: String::new(),
            created_at,
            updated_at: created_at,
            acked_at: 0,
            acked_by: String::new(),
            resolved_at: 0,
            resolved_by: String::new(),
            attempts: 1,
            next_notify_at: first_repeat("critical", created_at, &T),
            safe_mode_at: 0,
            episode: String::new(),
            ticket_at: 0,
            duplicates: 0,
            escalated_at: created_at,
        }
    }

    /// Replays the escalation of one unacknowledged incident tick by tick.
    fn run(until: i64) -> (Vec<i64>, Option<i64>, Option<i64>) {
        let mut i = incident(0);
        let (mut rounds, mut safe, mut ticket) = (vec![1], None, None);
        for now in (0..=until).step_by(10) {
            let d = due(&i, now, &T);
            if let Some(r) = d.repeat {
                rounds.push(r);
                i.attempts = r;
                i.next_notify_at = next_repeat(&i, i.next_notify_at, &T);
            }
            if d.safe_mode {
                safe = Some(now);
                i.safe_mode_at = now;
            }
            if d.ticket {
                ticket = Some(now);
                i.ticket_at = now;
            }
        }
        (rounds, safe, ticket)
    }

    #[test]
    fn an_unacknowledged_critical_incident_repeats_for_the_window_then_files_one_ticket() {
        let (rounds, safe, ticket) = run(2_000);
        assert_eq!(rounds, vec![1, 2, 3, 4, 5]);
        assert_eq!(safe, Some(250));
        assert_eq!(ticket, Some(500));
    }

    #[test]
    fn a_warning_raised_to_critical_later_gets_the_whole_delay_from_then() {
        // Opened as a warning at 0, critical from 1 000: safe mode at 1 250, not at once.
        let mut i = incident(0);
        i.escalated_at = 1_000;
        i.next_notify_at = first_repeat("critical", 1_000, &T);
        assert!(!due(&i, 1_249, &T).safe_mode);
        assert!(due(&i, 1_250, &T).safe_mode);
        assert!(!due(&i, 1_250, &T).ticket);
        assert!(due(&i, 1_500, &T).ticket);
    }

    #[test]
    fn acknowledged_incidents_and_warnings_do_not_escalate() {
        let mut i = incident(0);
        i.state = state::ACKNOWLEDGED.into();
        assert!(due(&i, 10_000, &T).is_empty());
        let mut w = incident(0);
        w.severity = "warning".into();
        w.next_notify_at = first_repeat("warning", 0, &T);
        assert!(due(&w, 10_000, &T).is_empty());
    }

    #[test]
    fn exit_lists_every_missing_condition() {
        let missing = exit_check(&["inc_1".into()], 0).unwrap_err();
        let names: Vec<_> = missing.iter().map(|m| m.condition).collect();
        assert_eq!(names, ["acknowledgement", "recovery_action"]);
        assert!(exit_check(&[], 1).is_ok());
    }

    #[test]
    fn a_red_sample_restarts_the_window_and_a_full_green_window_exits() {
        let g = GuardRow {
            state: GuardState::Recovering,
            episode: "ep".into(),
            since: 0,
            reason: String::new(),
            actor: String::new(),
            green_since: 100,
            sampled_at: 0,
            sample_green: true,
        };
        assert_eq!(on_sample(&g, false, 500, &T), OnSample::RestartWindow);
        assert_eq!(on_sample(&g, true, 500, &T), OnSample::Record);
        assert_eq!(on_sample(&g, true, 1_100, &T), OnSample::Exit);
    }
}
