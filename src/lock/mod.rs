//! Fenced locks: every grant carries a fencing token larger than every token answered before
//! it for that key (G1) — the token is `epoch << 32 | per-key counter`, made by the store in
//! the same atomic step as the grant; an owner's retry returns its own live grant.

use std::sync::Arc;
use std::time::Duration;

mod guarded;
mod outcome;
mod rules;
mod watch;

pub use guarded::{LockGuard, WithLockError};
pub use rules::{on_acquire, LostReason, OnAcquire, Touch};
pub use watch::Watched;

use crate::config::LockSettings;
use crate::key::Key;
use crate::runtime::waiters::Waiters;
use crate::store::{AcquireReply, Holder, Lease, LeaseCopy, LockStore, Step, Touched};
use crate::tier::{Blocked, Mode, Tier};
use crate::token::{token_parts, MAX_TOKEN};
use rules::Miss;

/// Longest lock TTL accepted, in milliseconds.
pub const MAX_TTL_MS: i64 = 3_600_000;
/// Longest `wait_ms` accepted.
pub const MAX_WAIT_MS: i64 = 60_000;
/// How many times one attempt follows an epoch change before giving up.
const EPOCH_RETRIES: usize = 3;

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
    },
    /// No tier may grant now (G7).
    Blocked(Blocked),
}

/// The answer to a read of a key's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The live lease.
    Held(Lease),
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
}

/// The lock service.
pub struct Locks {
    tier: Arc<Tier>,
    waiters: Waiters,
    /// How often a waiting acquire retries a lock held through another instance.
    poll: Duration,
}

fn map_done<T>(touch: Touch<Lease>, f: impl FnOnce(Lease) -> T) -> Touch<T> {
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
        }
    }

    /// Acquires a lock, waiting up to `wait_ms` in FIFO order behind other waiters of this
    /// instance.
    pub async fn acquire(&self, req: &AcquireRequest) -> Acquired {
        // A waiting request never overtakes the queue: it tries first only when nobody waits.
        if req.wait_ms <= 0 || !self.waiters.is_queued(req.key.as_str()) {
            let first = self.try_once(req).await;
            if req.wait_ms <= 0 || matches!(first, Acquired::Granted(_)) {
                return first;
            }
            if let Acquired::Blocked(b) = &first {
                if !matches!(b, Blocked::Grace { .. } | Blocked::EpochChanging) {
                    return first;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms as u64);
        let slot = self.waiters.join(req.key.as_str());
        let answer = match tokio::time::timeout_at(deadline, slot.queue.lock()).await {
            Err(_) => self.try_once(req).await,
            Ok(_head) => loop {
                let answer = self.try_once(req).await;
                let wake_at = match &answer {
                    Acquired::Busy { retry_after_ms } => {
                        let poll = (*retry_after_ms).clamp(1, self.poll.as_millis() as i64);
                        tokio::time::Instant::now() + Duration::from_millis(poll as u64)
                    }
                    Acquired::Blocked(Blocked::Grace { retry_after_ms }) => {
                        let left = (*retry_after_ms).max(1) as u64;
                        tokio::time::Instant::now() + Duration::from_millis(left)
                    }
                    Acquired::Blocked(Blocked::EpochChanging) => {
                        tokio::time::Instant::now() + self.poll
                    }
                    _ => break answer,
                };
                if wake_at >= deadline {
                    break answer;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(wake_at) => {}
                    _ = slot.released.notified() => {}
                }
            },
        };
        self.waiters.leave(req.key.as_str(), slot);
        answer
    }

    async fn try_once(&self, req: &AcquireRequest) -> Acquired {
        if let Err(b) = self.tier.effects_allowed() {
            return Acquired::Blocked(b);
        }
        for _ in 0..EPOCH_RETRIES {
            let active = match self.tier.active(true) {
                Ok(a) => a,
                Err(b) => return Acquired::Blocked(b),
            };
            if let Err(e) = self.tier.note_ttl(req.ttl_ms).await {
                return Acquired::Blocked(Blocked::database(&e));
            }
            let mode = active.mode();
            let now = self.tier.now();
            let (key, owner, ttl, epoch) = (&req.key, &req.owner, req.ttl_ms, active.epoch);
            let reply = active.settle(|b| b.acquire(key, owner, ttl, epoch, now));
            let (lease, fresh) = match reply.await {
                Err(b) => return Acquired::Blocked(b),
                Ok(AcquireReply::Granted(l)) => (l, true),
                Ok(AcquireReply::Held(l)) => (l, false),
                Ok(AcquireReply::Busy { expires_at }) => {
                    return Acquired::Busy {
                        retry_after_ms: (expires_at - now).max(1),
                    }
                }
                Ok(AcquireReply::CounterExhausted) => {
                    self.tier.on_counter_exhausted(active.epoch).await;
                    continue;
                }
                Ok(AcquireReply::EpochMismatch { .. }) => {
                    self.tier
                        .on_epoch_mismatch(active.epoch, Some(&req.key))
                        .await;
                    continue;
                }
            };
            if lease.token > MAX_TOKEN {
                tracing::error!(
                    token = lease.token,
                    "fencing token beyond 2^53; refusing grant"
                );
                return Acquired::Blocked(Blocked::TokenSpaceExhausted);
            }
            return Acquired::Granted(Grant {
                owner: lease.owner,
                token: lease.token,
                expires_at: lease.expires_at,
                mode,
                fresh,
            });
        }
        Acquired::Blocked(Blocked::EpochChanging)
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

    /// Runs `step` on the lease `(owner, token)` wherever it is visible: on the active tier,
    /// and — on Redis, for a lease of an earlier epoch that Redis does not hold — on SQL, where
    /// a lease granted before the fail-back lives until arming has copied it (an extend made
    /// there is copied into Redis too). Never answers `not_owner` for a lease that is live on
    /// either tier.
    async fn touch(
        &self,
        step: Step,
        key: &Key,
        owner: &str,
        token: i64,
    ) -> Result<(Touch<Lease>, Mode), Blocked> {
        let holder = Holder { key, owner, token };
        for _ in 0..EPOCH_RETRIES {
            let active = self.tier.active(false)?;
            let mode = active.mode();
            let (epoch, now) = (active.epoch, self.tier.now());
            let current = match active.settle(|b| b.touch(holder, step, epoch, now)).await? {
                Touched::Done(lease) => {
                    if mode == Mode::Primary && token_parts(token).0 < epoch {
                        self.follow_on_sql(step, holder, epoch, now).await;
                    }
                    return Ok((Touch::Done(lease), mode));
                }
                Touched::EpochMismatch => {
                    let _ = self.tier.refresh().await;
                    continue;
                }
                Touched::Missed { current } => current,
            };
            let miss = Miss {
                owner,
                token,
                current: current.as_ref(),
                epoch,
                keeps_records: mode == Mode::Fallback,
            };
            let decided = miss.decide();
            let Some(hot) = active.primary() else {
                return Ok((decided, mode));
            };
            if !miss.older_epoch() || decided == Touch::Lost(LostReason::Superseded) {
                return Ok((decided, mode));
            }
            let sql = self.tier.durable();
            let current = match self
                .tier
                .on_durable(sql.touch(holder, step, epoch, now))
                .await?
            {
                Touched::Done(lease) => {
                    if let Step::Release = step {
                        return Ok((Touch::Done(lease), mode));
                    }
                    let seeded = hot.settle(|r| r.seed_lease(key.as_str(), &lease, now));
                    return Ok(match seeded.await? {
                        true => (Touch::Done(lease), mode),
                        false => (Touch::Lost(LostReason::Superseded), mode),
                    });
                }
                Touched::EpochMismatch => {
                    let _ = self.tier.refresh().await;
                    continue;
                }
                Touched::Missed { current } => current,
            };
            let on_sql = Miss {
                current: current.as_ref(),
                keeps_records: true,
                ..miss
            };
            return Ok((on_sql.decide(), mode));
        }
        Err(Blocked::EpochChanging)
    }

    /// After Redis released a lease of an earlier epoch (a SQL lease arming copied in), ends it
    /// on SQL too, so a later arming cannot copy it back. Best effort: a failure is logged.
    async fn follow_on_sql(&self, step: Step, holder: Holder<'_>, epoch: i64, now: i64) {
        if let Step::Extend { .. } = step {
            return;
        }
        let sql = self.tier.durable();
        if let Err(b) = self
            .tier
            .on_durable(sql.touch(holder, step, epoch, now))
            .await
        {
            tracing::warn!(
                reason = b.reason(),
                "release not copied to sql; the lease lapses there"
            );
        }
    }

    /// The live lease on `key`, if any.
    pub async fn get(&self, key: &Key) -> Result<(Read, Mode), Blocked> {
        let active = self.tier.active(false)?;
        let mode = active.mode();
        let now = self.tier.now();
        let read = active.settle(|b| b.get(key, now)).await?;
        let read = read.map_or(Read::NotHeld, Read::Held);
        Ok((read, mode))
    }
}
