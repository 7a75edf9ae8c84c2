//! A commit that arrived before its turn is parked durably and its request waits up to
//! `wait_ms`: woken at once when a batch of this instance applies it (or sends it to review),
//! and rechecking for batches of other instances — on the Redis copy every 20 ms (SQL every
//! tenth tick), or on SQL every 50 ms without Redis. It stays parked when the wait ends. Only
//! the request that parked a commit waits for it: `committed_causal` is answered at most once
//! per sequence, so two workers never both believe they committed one intent.

use std::time::Duration;

use tokio::time::Instant;

use super::rules::{Op, Outcome, Refusal};
use super::{CommitRequest, Committed, Streams};
use crate::config::ms;
use crate::runtime::waiters::KeySlot;
use crate::store::stream::{IntentState, StreamCopy};
use crate::tier::{Blocked, Mode};

/// With a copy, SQL is read every this many ticks anyway (a copy may lag).
const SQL_EVERY: u32 = 10;

/// Runs the commit `req`; waits for its turn if it parks.
pub(super) async fn commit(
    s: &Streams,
    req: &CommitRequest,
    slot: &KeySlot,
    mode: Mode,
) -> Result<Committed, Blocked> {
    // Armed before the write, so a wake between the write and the wait is not lost.
    let mut woken = Box::pin(slot.released.notified());
    woken.as_mut().enable();
    let op = Op::Commit {
        stream: req.stream.clone(),
        seq: req.seq,
        intent_id: req.intent_id.clone(),
        expected_version: req.expected_version,
        hold_sensitive: s.tier.guard() == crate::store::GuardState::Degraded,
    };
    let next_expected = match s.write(op).await? {
        Outcome::Committed { version } => return Ok(Committed::Causal { version }),
        Outcome::Refused { why, counters } => return Ok(Committed::Blocked { why, counters }),
        Outcome::Waiting {
            next_expected,
            repeat: false,
        } => next_expected,
        Outcome::Waiting { next_expected, .. } => return Ok(Committed::Waiting { next_expected }),
        other => {
            tracing::error!(answer = ?other, "a commit answered out of its kind");
            return Err(Blocked::DatabaseUnavailable);
        }
    };
    if req.wait_ms <= 0 {
        return Ok(Committed::Waiting { next_expected });
    }
    let deadline = Instant::now() + Duration::from_millis(req.wait_ms as u64);
    let primary = mode == Mode::Primary;
    let settings = &s.cfg.settings;
    let poll = ms(if primary {
        settings.wait_poll_copy_ms
    } else {
        settings.wait_poll_sql_ms
    });
    let mut tick = 0u32;
    while Instant::now() < deadline {
        let wake_at = (Instant::now() + poll).min(deadline);
        let notified = tokio::select! {
            _ = &mut woken => true,
            _ = tokio::time::sleep_until(wake_at) => false,
        };
        woken.set(slot.released.notified());
        woken.as_mut().enable();
        tick += 1;
        let look =
            notified || !primary || tick.is_multiple_of(SQL_EVERY) || s.copy_reached(req).await;
        if look {
            if let Some(done) = s.settled(req).await? {
                return Ok(done);
            }
        }
    }
    let sql = s.tier.durable();
    let c = s
        .tier
        .on_durable(sql.stream_counters(&req.stream))
        .await?
        .unwrap_or_default();
    Ok(Committed::Waiting {
        next_expected: c.last_committed + 1,
    })
}

impl Streams {
    /// Whether the Redis copy shows the stream at or past `req.seq`.
    async fn copy_reached(&self, req: &CommitRequest) -> bool {
        let Ok(active) = self.tier.active_durable() else {
            return false;
        };
        let Some(hot) = active.primary() else {
            return false;
        };
        let copy = hot.call(|r| r.stream_copy(&req.stream)).await;
        matches!(copy, Ok(Some(c)) if c.last_committed >= req.seq)
    }

    /// The final answer of a parked commit, if it has one: applied, or sent to review.
    async fn settled(&self, req: &CommitRequest) -> Result<Option<Committed>, Blocked> {
        let sql = self.tier.durable();
        let intent = self
            .tier
            .on_durable(sql.intent_at(&req.stream, req.seq))
            .await?;
        Ok(match intent.map(|i| (i.state, i.committed_version)) {
            Some((IntentState::Committed, version)) => Some(Committed::Causal { version }),
            Some((IntentState::Review, _)) => {
                let counters = self
                    .tier
                    .on_durable(sql.stream_counters(&req.stream))
                    .await?
                    .unwrap_or_default();
                Some(Committed::Blocked {
                    why: Refusal::InReview,
                    counters,
                })
            }
            _ => None,
        })
    }
}
