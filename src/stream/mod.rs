//! Causal streams (G5): per stream, effects commit in `commit_sequence` order 1, 2, 3, …, never
//! twice, never skipping, whatever the dispatch priority. Every intake, commit, replay and
//! review decision runs the [`rules`] in one group-committed batch that SQL applies atomically
//! (SQLite: one write transaction; PostgreSQL: one statement guarded by each stream's
//! revision), and is answered only after it is durable: sequences are assigned where they
//! become durable, so neither a Redis loss nor a failed batch can reuse or skip one. Redis
//! keeps a hot copy of each stream's counters (raised when a batch applies a parked commit, off
//! the answer's path, never ahead of SQL) that parked commits on other instances watch for
//! their turn.

mod outcome;
pub mod rules;
mod wait;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use crate::config::{ms, ConfigError, StreamSettings};
use crate::metrics_names as m;
use crate::runtime::group_commit::GroupCommit;
use crate::runtime::waiters::Waiters;
pub use crate::store::stream::{Counters, Intent};
use crate::store::stream::{IntentState, StreamChange, StreamCopy};
pub use crate::store::stream::{ReviewFilter, ReviewItem, ReviewState};
use crate::store::StoreError;
use crate::tier::{Blocked, Mode, Tier};
use rules::{Action, NewIntent, Op, Outcome, Refusal, TtlTable, Write};
use tracing::Instrument;

/// Longest `wait_ms` of a commit.
pub const MAX_WAIT_MS: i64 = 60_000;
/// Most intents in one dispatch claim.
pub const MAX_CLAIM: i64 = 1_000;
/// Longest dispatch lease, ms.
pub const MAX_LEASE_MS: i64 = 3_600_000;
/// Largest absolute dispatch priority.
pub const MAX_PRIORITY: i64 = i32::MAX as i64;
/// Longest `intent_type`, bytes.
pub const MAX_TYPE_BYTES: usize = 128;
/// Most parked commits listed in a stream's state.
pub const WAITING_SHOWN: i64 = 100;
/// Most review items in one page.
pub const MAX_REVIEW_PAGE: i64 = 1_000;

/// Stream settings.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// How long a parked commit waits before it goes to manual review.
    pub causal_wait: Duration,
    /// Replay TTLs by intent type.
    pub ttls: TtlTable,
    /// The rest, as configured.
    pub settings: StreamSettings,
}

impl StreamConfig {
    /// The stream settings of `s`.
    pub fn new(s: &StreamSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            causal_wait: ms(s.causal_wait_timeout_ms),
            ttls: s.ttl_table()?,
            settings: s.clone(),
        })
    }
}

/// A validated commit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// Stream.
    pub stream: String,
    /// Sequence being committed.
    pub seq: i64,
    /// The intent at that sequence.
    pub intent_id: String,
    /// Must equal the stream's version when the commit applies.
    pub expected_version: Option<i64>,
    /// How long to wait for its turn, 0..=[`MAX_WAIT_MS`].
    pub wait_ms: i64,
}

/// The answer to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Applied in order; the stream version it produced.
    Causal {
        /// Version.
        version: i64,
    },
    /// Parked until its predecessor commits (still parked when answered).
    Waiting {
        /// The sequence the stream needs next.
        next_expected: i64,
    },
    /// Refused.
    Blocked {
        /// Why.
        why: Refusal,
        /// The stream's counters.
        counters: Counters,
    },
}

/// The answer to an intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Accepted with its sequence; `created` is false on a repeat of the same intent.
    Accepted {
        /// Its `commit_sequence`.
        seq: i64,
        /// Whether this intake stored it (false: a repeat answered with the same sequence).
        created: bool,
    },
    /// The `intent_id` exists in the stream with another type, priority or payload.
    Conflict {
        /// The existing intent's sequence.
        seq: i64,
    },
}

/// The answer to a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Authorised: the intent, at the stream's version.
    Replayed {
        /// The intent.
        intent: Box<Intent>,
        /// The stream's version.
        version: i64,
    },
    /// The stream is at another version.
    Conflict {
        /// The stream's version.
        version: i64,
    },
    /// Older than its type's TTL: now in manual review.
    Expired {
        /// The review item holding it.
        review_id: String,
    },
    /// No such intent in the stream.
    Unknown,
}

/// The answer to a review resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Resolved by this request; the item as it now stands.
    Resolved(Box<ReviewItem>),
    /// Resolved before (by whom and how: the item).
    AlreadyResolved(Box<ReviewItem>),
    /// The action does not fit the intent's state (its state).
    ActionRefused(IntentState),
    /// No such review item.
    Unknown,
}

/// The answer to a dispatch claim: the intents leased to the worker (maybe none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed(pub Vec<Intent>);

/// A page of the review queue, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPage(pub Vec<ReviewItem>);

/// The answer to a read of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Its counters and parked commits.
    Found(StreamState),
    /// The stream never had an intent.
    Unknown,
}

/// A stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Counters.
    pub counters: Counters,
    /// Parked commits, in sequence order (at most [`WAITING_SHOWN`]).
    pub waiting: Vec<Intent>,
}

/// The stream service.
pub struct Streams {
    tier: Arc<Tier>,
    writer: GroupCommit<Write, Outcome, StoreError>,
    /// Commits waiting for their turn on this instance, by [`parked_key`].
    parked: Arc<Waiters>,
    cfg: StreamConfig,
}

/// The wait-queue key of the commit of `seq` in `stream`.
fn parked_key(stream: &str, seq: i64) -> String {
    format!("{seq}\u{0}{stream}")
}

impl Streams {
    /// Starts the service (and its group-commit writer) over `tier`.
    pub fn start(tier: Arc<Tier>, cfg: StreamConfig) -> Arc<Self> {
        let parked = Arc::new(Waiters::default());
        let ttls = Arc::new(cfg.ttls.clone());
        let (t, p) = (tier.clone(), parked.clone());
        let writer = GroupCommit::start("streams", cfg.settings.writer.into(), move |w| {
            flush(t.clone(), p.clone(), ttls.clone(), w)
        });
        Arc::new(Self {
            tier,
            writer,
            parked,
            cfg,
        })
    }

    fn mode(&self) -> Result<Mode, Blocked> {
        Ok(self.tier.active_durable()?.mode())
    }

    async fn write(&self, op: Op) -> Result<Outcome, Blocked> {
        let w = Write {
            op,
            now: self.tier.now(),
        };
        self.tier.on_durable(self.writer.submit(w)).await
    }

    /// Accepts an intent, with its sequence (the same one on a repeat).
    pub async fn intake(&self, n: NewIntent) -> Result<(Intake, Mode), Blocked> {
        let mode = self.mode()?;
        let intake = match self.write(Op::Intake(n)).await? {
            Outcome::Accepted { seq, created } => Intake::Accepted { seq, created },
            Outcome::IntentConflict { seq } => Intake::Conflict { seq },
            other => {
                tracing::error!(answer = ?other, "an intake answered out of its kind");
                return Err(Blocked::DatabaseUnavailable);
            }
        };
        Ok((intake, mode))
    }

    /// Commits an intent in causal order, waiting up to `wait_ms` for its turn.
    pub async fn commit(&self, req: &CommitRequest) -> Result<(Committed, Mode), Blocked> {
        self.tier.effects_allowed()?;
        let mode = self.mode()?;
        let key = parked_key(&req.stream, req.seq);
        let slot = self.parked.join(&key);
        let answer = wait::commit(self, req, &slot, mode).await;
        self.parked.leave(&key, slot);
        answer.map(|a| (a, mode))
    }

    /// Authorises a replay: TTL of its type first, then `as_of_version`, both before any
    /// effect.
    pub async fn replay(
        &self,
        stream: &str,
        intent_id: &str,
        as_of_version: i64,
    ) -> Result<(Replay, Mode), Blocked> {
        self.tier.effects_allowed()?;
        let mode = self.mode()?;
        let op = Op::Replay {
            stream: stream.to_owned(),
            intent_id: intent_id.to_owned(),
            as_of_version,
        };
        let replay = match self.write(op).await? {
            Outcome::Replayed { intent, version } => Replay::Replayed { intent, version },
            Outcome::ReplayConflict { version } => Replay::Conflict { version },
            Outcome::Expired { review_id } => Replay::Expired { review_id },
            _ => Replay::Unknown,
        };
        Ok((replay, mode))
    }

    /// Leases up to `limit` ready intents to `worker` for `lease_ms`, by priority (highest
    /// first), then arrival. An expired lease returns its intent to the queue. In safe mode
    /// nothing is leased (G10): the queue keeps every intent, in order, for after it.
    pub async fn claim(
        &self,
        worker: &str,
        limit: i64,
        lease_ms: i64,
        tenant_prefix: &str,
    ) -> Result<(Claimed, Mode), Blocked> {
        let mode = self.mode()?;
        if self.tier.effects_allowed().is_err() {
            metrics::counter!(m::GUARD_HELD, "op" => "dispatch").increment(1);
            return Ok((Claimed(Vec::new()), mode));
        }
        let now = self.tier.now();
        let sql = self.tier.durable();
        let leased = self
            .tier
            .on_durable(sql.claim_intents(worker, limit, now + lease_ms, now, tenant_prefix))
            .await?;
        metrics::counter!(m::DISPATCHED).increment(leased.len() as u64);
        Ok((Claimed(leased), mode))
    }

    /// The counters and parked commits of `stream`.
    pub async fn state(&self, stream: &str) -> Result<(Read, Mode), Blocked> {
        let mode = self.mode()?;
        let sql = self.tier.durable();
        let Some(counters) = self.tier.on_durable(sql.stream_counters(stream)).await? else {
            return Ok((Read::Unknown, mode));
        };
        if counters.assigned == 0 {
            return Ok((Read::Unknown, mode));
        }
        let waiting = self
            .tier
            .on_durable(sql.waiting_commits(stream, WAITING_SHOWN))
            .await?;
        Ok((Read::Found(StreamState { counters, waiting }), mode))
    }

    /// A page of the review queue, oldest first.
    pub async fn reviews(
        &self,
        filter: ReviewFilter,
        limit: i64,
        tenant_prefix: &str,
    ) -> Result<(ReviewPage, Mode), Blocked> {
        let mode = self.mode()?;
        let items = self
            .tier
            .on_durable(
                self.tier
                    .durable()
                    .review_items(filter, limit, tenant_prefix),
            )
            .await?;
        Ok((ReviewPage(items), mode))
    }

    /// Resolves review item `id` of the tenant whose prefix is `tenant_prefix` with `action`
    /// by `actor` (audited in the same transaction). Another tenant's item is unknown here.
    pub async fn resolve(
        &self,
        id: &str,
        action: Action,
        actor: &str,
        note: &str,
        tenant_prefix: &str,
    ) -> Result<(Resolution, Mode), Blocked> {
        let mode = self.mode()?;
        let Some(item) = self
            .tier
            .on_durable(self.tier.durable().review_item(id))
            .await?
            .filter(|i| crate::key::prefix_of(&i.stream) == tenant_prefix)
        else {
            return Ok((Resolution::Unknown, mode));
        };
        let op = Op::Resolve {
            id: id.to_owned(),
            stream: item.stream,
            seq: item.seq,
            action,
            actor: actor.to_owned(),
            note: note.to_owned(),
        };
        let resolution = match self.write(op).await? {
            Outcome::Resolved { item, fresh: true } => {
                tracing::warn!(review_id = %item.id, action = %item.action, actor = %item.actor,
                    stream = %item.stream, intent_id = %item.intent_id, "review item resolved");
                Resolution::Resolved(item)
            }
            Outcome::Resolved { item, .. } => Resolution::AlreadyResolved(item),
            Outcome::ActionRefused { state } => Resolution::ActionRefused(state),
            _ => Resolution::Unknown,
        };
        Ok((resolution, mode))
    }

    /// Sends every commit parked longer than the causal wait timeout to manual review; how
    /// many.
    pub async fn sweep(&self) -> Result<u64, Blocked> {
        let older_than = self.tier.now() - self.cfg.causal_wait.as_millis() as i64;
        let sql = self.tier.durable();
        let due = self
            .tier
            .on_durable(sql.overdue_commits(older_than, self.cfg.settings.sweep_batch))
            .await?;
        let ops = due.into_iter().map(|(stream, seq)| {
            self.write(Op::Timeout {
                stream,
                seq,
                older_than,
            })
        });
        let mut n = 0;
        for out in join_all(ops).await {
            if let Outcome::TimedOut(_) = out? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn gauges(&self) -> Result<(), StoreError> {
        let sql = self.tier.durable();
        let now = self.tier.now();
        let g = self.tier.durably(sql.stream_gauges(now)).await?;
        let age = |since: i64| {
            if since > 0 {
                (now - since).max(0) as f64 / 1000.0
            } else {
                0.0
            }
        };
        metrics::gauge!(m::STREAM_WAITING).set(g.waiting as f64);
        metrics::gauge!(m::REVIEW_OPEN).set(g.review_open as f64);
        metrics::gauge!(m::DISPATCH_BACKLOG).set(g.backlog as f64);
        metrics::gauge!(m::OLDEST_UNCLAIMED).set(age(g.oldest_ready_at));
        metrics::gauge!(m::TAKEOVER_PENDING).set(age(g.oldest_expired_lease));
        metrics::gauge!(m::REPLAY_BACKLOG).set(g.replays_in_review as f64);
        Ok(())
    }
}

/// Writes one batch; then wakes this instance's commits that settled and raises the hot copies
/// of the streams that changed.
async fn flush(
    tier: Arc<Tier>,
    parked: Arc<Waiters>,
    ttls: Arc<TtlTable>,
    writes: Vec<Write>,
) -> Result<Vec<Outcome>, StoreError> {
    let wanted = rules::wanted(&writes);
    let sql = tier.durable().clone();
    let (outcomes, changes) = sql
        .stream_batch(&wanted, |book| {
            // Decided again from fresh rows if the batch loses a race (PostgreSQL).
            let apply = |w: &Write| rules::apply(book, w.clone(), &ttls);
            writes.iter().map(apply).collect::<Vec<_>>()
        })
        .await?;
    for i in &changes.intents {
        if matches!(i.state, IntentState::Committed | IntentState::Review) {
            parked.wake_all(&parked_key(&i.stream, i.seq));
        }
    }
    for r in &changes.new_reviews {
        metrics::counter!(m::REVIEW_CREATED, "reason" => r.reason.clone()).increment(1);
        tracing::warn!(review_id = %r.id, reason = %r.reason, stream = %r.stream,
            intent_id = %r.intent_id, commit_sequence = r.seq, detail = %r.detail,
            "intent sent to manual review");
    }
    // The copy is read only by parked commits waiting for their own sequence, and a parked
    // commit applies only in a cascade: raise the streams where this batch applied one.
    let cascaded: BTreeSet<&str> = changes
        .intents
        .iter()
        .zip(&changes.before)
        .filter(|(now, before)| {
            before.state == IntentState::Waiting && now.state == IntentState::Committed
        })
        .map(|(now, _)| now.stream.as_str())
        .collect();
    let moved: Vec<StreamChange> = changes
        .streams
        .iter()
        .filter(|s| cascaded.contains(s.stream.as_str()))
        .cloned()
        .collect();
    raise_copies(tier, moved);
    Ok(outcomes)
}

/// Raises the Redis copies of `streams`, off the answer's path (a copy that misses a raise
/// only lags).
fn raise_copies(tier: Arc<Tier>, streams: Vec<StreamChange>) {
    if streams.is_empty() {
        return;
    }
    let raise = async move {
        let Ok(active) = tier.active_durable() else {
            return;
        };
        let Some(hot) = active.primary() else {
            return;
        };
        let raises = streams
            .iter()
            .map(|s| hot.call(|r| r.stream_raise(&s.stream, s.counters)));
        join_all(raises).await;
    };
    tokio::spawn(raise.in_current_span());
}

impl crate::runtime::tasks::Scheduled for Arc<Streams> {
    /// `stream_sweep`: parked commits past the causal wait into manual review, and the
    /// stream gauges, every quarter of the causal wait (within 20 ms and `streams.tick_ms`).
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let period = (self.cfg.causal_wait / 4)
            .clamp(Duration::from_millis(20), ms(self.cfg.settings.tick_ms));
        let streams = self.clone();
        s.every("stream_sweep", period, move || {
            let streams = streams.clone();
            async move {
                match streams.sweep().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(moved = n, "parked commits timed out into manual review")
                    }
                    Err(b) => tracing::warn!(reason = %b.reason(), "causal timeout sweep failed"),
                }
                if let Err(e) = streams.gauges().await {
                    tracing::warn!(error = %e, "stream gauges not refreshed");
                }
            }
        });
    }
}
