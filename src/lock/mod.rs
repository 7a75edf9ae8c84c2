//! Fenced locks: every grant carries a fencing token larger than every token answered before
//! it for that key (G1) — the token is `epoch << 32 | per-key counter`, made by the store in
//! the same atomic step as the grant; an owner's retry returns its own live grant.

use std::sync::Arc;
use std::time::Duration;

mod deadlock;
mod group;
mod guarded;
mod outcome;
mod rules;
pub(crate) mod touch;
mod watch;

pub use deadlock::{cycle_through, victim, CycleStep};
pub use group::{
    new_group_id, GroupAcquired, GroupRequest, Held as GroupMember, Member, MAX_GROUP_KEYS,
};
pub use guarded::{LockGuard, WithLockError};
pub use rules::{on_acquire, LostReason, OnAcquire, Touch};
pub use watch::Watched;

use crate::config::LockSettings;
use crate::key::Key;
use crate::runtime::waiters::Waiters;
use crate::store::{AcquireReply, GroupReply, Holder, Lease, LeaseAsk, LockStore, Step};
use crate::tier::{Backend, Blocked, GrantReply, GrantStep, Mode, Tier, Verdict};

/// Longest lock TTL accepted, in milliseconds.
pub const MAX_TTL_MS: i64 = 3_600_000;
/// Longest `wait_ms` accepted.
pub const MAX_WAIT_MS: i64 = 60_000;
/// Longest `max_hold_ms` accepted: a day.
pub const MAX_HOLD_MS: i64 = 86_400_000;

/// A lock grant as answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Holder.
    pub owner: String,
    /// Fencing token.
    pub token: i64,
    /// Expiry, epoch milliseconds.
    pub expires_at: i64,
    /// Tier that granted it.
    pub mode: Mode,
    /// `false` when this is the caller's existing grant, returned on a retry.
    pub fresh: bool,
    /// Whether it is a shared lease.
    pub shared: bool,
}

/// The answer to an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Granted (or the caller's own live grant, returned again).
    Granted(Grant),
    /// Held by another owner.
    Busy {
        /// How long until the current lease runs out, at most.
        retry_after_ms: i64,
        /// The owner holding it (or, for a shared ask, the writer waiting ahead of it).
        blocked_by: String,
        /// For a tree key: where that lease is (an ancestor, the key, or a key below it).
        blocked_at: Option<String>,
    },
    /// No tier may grant now (G7).
    Blocked(Blocked),
    /// The caller's wait closed a cycle of waiting owners and it was chosen as the victim;
    /// the locks it holds stay held.
    Deadlock {
        /// The cycle: each owner waiting for a key the next one holds.
        cycle: Vec<CycleStep>,
    },
}

/// The answer to a read of a key's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The live leases: the exclusive one, or every shared one.
    Held(Vec<Lease>),
    /// No live lease.
    NotHeld,
}

/// A validated acquire request.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    /// Lock key.
    pub key: Key,
    /// Holder identity.
    pub owner: String,
    /// Lease length, 1..=[`MAX_TTL_MS`].
    pub ttl_ms: i64,
    /// How long to wait in line for the key, 0..=[`MAX_WAIT_MS`].
    pub wait_ms: i64,
    /// The longest the lease may be held through extends, from the grant: `ttl_ms..=`
    /// [`MAX_HOLD_MS`], or `None` for no cap (exclusive leases only).
    pub max_hold_ms: Option<i64>,
    /// A shared lease: held with other shared holders, never with an exclusive one.
    pub shared: bool,
    /// Rank when a deadlock needs a victim: the lowest loses (default 0).
    pub deadlock_priority: i64,
}

/// The lock service.
pub struct Locks {
    tier: Arc<Tier>,
    waiters: Waiters,
    /// How often a waiting acquire retries a lock held through another instance.
    poll: Duration,
    /// How long a waiting writer's mark keeps new shared holders out after its last try.
    writer_mark_ms: i64,
    /// How often this instance looks for wait cycles.
    deadlock_check: Duration,
}

/// How long a waiter sleeps before retrying a busy key: until it may be free
/// (`retry_after_ms`), but no longer than `poll`, since holders elsewhere are seen by polling.
pub(crate) fn wait_for(retry_after_ms: i64, poll: Duration) -> Duration {
    Duration::from_millis(retry_after_ms.clamp(1, poll.as_millis() as i64) as u64)
}

/// A grant step for [`Locks::at_epoch`]: one lease, or a group's in one atomic step.
#[derive(Clone, Copy)]
pub(crate) enum Ask<'r> {
    /// One lease.
    One(&'r LeaseAsk<'r>),
    /// A group's members, where the store can take them in one step.
    Group(&'r [LeaseAsk<'r>]),
}

/// What a grant step answered.
pub(crate) enum Said {
    /// To [`Ask::One`].
    One(AcquireReply),
    /// To [`Ask::Group`]: `None` when the store cannot take the group in one step.
    Group(Option<GroupReply>),
}

impl GrantStep for Ask<'_> {
    type Reply = Said;

    async fn run<'a>(
        &'a self,
        b: Backend<'a>,
        epoch: i64,
        now: i64,
    ) -> Result<Said, crate::store::StoreError> {
        match *self {
            Ask::One(a) => b.acquire(a, epoch, now).await.map(Said::One),
            Ask::Group(a) => b.acquire_group(a, epoch, now).await.map(Said::Group),
        }
    }
}

impl GrantReply for Said {
    /// A whole step refused for the tier's sake (one lease's, or a group's first member's).
    fn verdict(&self) -> Verdict {
        match self {
            Said::One(r) | Said::Group(Some(GroupReply::Refused { reply: r, .. })) => match r {
                AcquireReply::CounterExhausted => Verdict::CounterExhausted,
                AcquireReply::EpochMismatch { .. } => Verdict::EpochMismatch,
                _ => Verdict::Answer,
            },
            Said::Group(_) => Verdict::Answer,
        }
    }

    fn token(&self) -> Option<i64> {
        let granted = |r: &AcquireReply| match r {
            AcquireReply::Granted(l) | AcquireReply::Held(l) => Some(l.token),
            _ => None,
        };
        match self {
            Said::One(r) => granted(r),
            Said::Group(Some(GroupReply::Taken(rs))) => rs.iter().filter_map(granted).max(),
            Said::Group(_) => None,
        }
    }
}

/// The answer a store's grant reply (made at `now` on the `mode` tier) gives the client:
/// `Granted`/`Held` as a grant, `Busy` as a wait hint (the grant loop refused a token beyond
/// 2^53 before).
pub(crate) fn acquired(reply: AcquireReply, now: i64, mode: Mode) -> Acquired {
    let (lease, fresh) = match reply {
        AcquireReply::Granted(l) => (l, true),
        AcquireReply::Held(l) => (l, false),
        AcquireReply::Busy {
            expires_at,
            blocked_by,
            blocked_at,
        } => {
            return Acquired::Busy {
                retry_after_ms: (expires_at - now).max(1),
                blocked_by,
                blocked_at,
            }
        }
        AcquireReply::CounterExhausted | AcquireReply::EpochMismatch { .. } => {
            return Acquired::Blocked(Blocked::EpochChanging)
        }
    };
    Acquired::Granted(Grant {
        owner: lease.owner,
        token: lease.token,
        expires_at: lease.expires_at,
        mode,
        fresh,
        shared: lease.shared,
    })
}

pub(crate) fn map_done<T>(touch: Touch<Lease>, f: impl FnOnce(Lease) -> T) -> Touch<T> {
    match touch {
        Touch::Done(lease) => Touch::Done(f(lease)),
        Touch::NotOwner => Touch::NotOwner,
        Touch::Lost(why) => Touch::Lost(why),
    }
}

impl Locks {
    /// Locks over `tier`.
    pub fn new(tier: Arc<Tier>, cfg: &LockSettings) -> Self {
        Self {
            tier,
            waiters: Waiters::default(),
            poll: crate::config::ms(cfg.wait_poll_ms),
            // Several polls, so the mark outlives the gaps between a waiting writer's tries.
            writer_mark_ms: (cfg.wait_poll_ms as i64 * 10).clamp(100, 1_000),
            deadlock_check: crate::config::ms(cfg.deadlock_check_ms),
        }
    }

    /// Acquires a lock, waiting up to `wait_ms` in FIFO order behind other waiters of this
    /// instance.
    pub async fn acquire(&self, req: &AcquireRequest) -> Acquired {
        let poll = self.poll;
        let retry_in = |answer: &Acquired| match answer {
            Acquired::Busy { retry_after_ms, .. } => Some(wait_for(*retry_after_ms, poll)),
            Acquired::Blocked(b) => b.wait_out(poll),
            Acquired::Granted(_) | Acquired::Deadlock { .. } => None,
        };
        let waiting = deadlock::Waiting::new(self.tier.now());
        let attempt = || self.try_waiting(req, &waiting);
        let queued = || self.while_queued(req, &waiting);
        let key = req.key.as_str();
        let answer = self
            .waiters
            .in_line_watched(key, req.wait_ms, attempt, retry_in, queued)
            .await;
        self.end_wait(req.into(), &waiting).await;
        answer
    }

    /// One try; for a caller that waits and finds the key held, its place in the wait-for
    /// graph is recorded and checked for a deadlock.
    async fn try_waiting(&self, req: &AcquireRequest, waiting: &deadlock::Waiting) -> Acquired {
        let answer = self.try_once(req).await;
        if req.wait_ms <= 0 {
            return answer;
        }
        let Acquired::Busy { blocked_by, .. } = &answer else {
            return answer;
        };
        match self.on_busy(req.into(), blocked_by, waiting).await {
            Some(cycle) => Acquired::Deadlock { cycle },
            None => answer,
        }
    }

    /// Runs grant step `ask` (a lease of `ttl_ms`, or a group's first `key`) through the
    /// tier's grant loop.
    pub(crate) async fn at_epoch(
        &self,
        ttl_ms: i64,
        key: &Key,
        ask: Ask<'_>,
    ) -> Result<(Said, i64, Mode), Blocked> {
        self.tier.grant(ttl_ms, key, &ask).await
    }

    async fn try_once(&self, req: &AcquireRequest) -> Acquired {
        let ask = LeaseAsk {
            key: &req.key,
            owner: &req.owner,
            ttl_ms: req.ttl_ms,
            max_hold_ms: req.max_hold_ms,
            shared: req.shared,
            writer_mark_ms: if req.wait_ms > 0 && !req.shared {
                self.writer_mark_ms
            } else {
                0
            },
        };
        match self.at_epoch(req.ttl_ms, &req.key, Ask::One(&ask)).await {
            Ok((Said::One(reply), now, mode)) => acquired(reply, now, mode),
            Ok((Said::Group(_), ..)) => Acquired::Blocked(Blocked::EpochChanging),
            Err(b) => Acquired::Blocked(b),
        }
    }

    /// Extends the caller's live lease to `ttl_ms` from now; answers its new expiry.
    pub async fn extend(
        &self,
        key: &Key,
        owner: &str,
        token: i64,
        ttl_ms: i64,
    ) -> Result<(Touch<i64>, Mode), Blocked> {
        self.tier.effects_allowed()?;
        if let Err(e) = self.tier.note_ttl(ttl_ms).await {
            return Err(Blocked::database(&e));
        }
        let (touch, mode) = self
            .touch(Step::Extend { ttl_ms }, key, owner, token)
            .await?;
        Ok((map_done(touch, |l| l.expires_at), mode))
    }

    /// Releases the caller's live lease.
    pub async fn release(
        &self,
        key: &Key,
        owner: &str,
        token: i64,
    ) -> Result<(Touch<()>, Mode), Blocked> {
        let (touch, mode) = self.touch(Step::Release, key, owner, token).await?;
        if let Touch::Done(_) = touch {
            self.waiters.released(key.as_str());
        }
        Ok((map_done(touch, drop), mode))
    }

    async fn touch(
        &self,
        step: Step,
        key: &Key,
        owner: &str,
        token: i64,
    ) -> Result<(Touch<Lease>, Mode), Blocked> {
        let holder = Holder { key, owner, token };
        touch::anywhere(&self.tier, &touch::LockGrants, step, holder).await
    }

    /// The live lease on `key`, if any.
    pub async fn get(&self, key: &Key) -> Result<(Read, Mode), Blocked> {
        let active = self.tier.active(false)?;
        let mode = active.mode();
        let now = self.tier.now();
        let read = active.settle(|b| b.get(key, now)).await?;
        let read = if read.is_empty() {
            Read::NotHeld
        } else {
            Read::Held(read)
        };
        Ok((read, mode))
    }
}

impl crate::runtime::tasks::Scheduled for Arc<Locks> {
    /// `deadlock_sweep`: wait cycles broken (and dead waiters' edges reaped), every
    /// `locks.deadlock_check_ms`.
    fn schedule(&self, s: &mut crate::runtime::tasks::Scheduler) {
        let locks = self.clone();
        s.every("deadlock_sweep", self.deadlock_check, move || {
            let locks = locks.clone();
            async move { locks.sweep_deadlocks().await }
        });
    }
}
