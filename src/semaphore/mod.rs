//! Semaphores: at most `limit` permits live at once, counted from the live permit records on
//! the store's clock (never a counter that can drift), every grant fenced by a token from the
//! same per-slot counter as locks (G1), and never over-granted through failover — a new epoch
//! grants only after the longest permit TTL noted has run out, and fail-back copies every live
//! SQL permit into Redis before Redis grants.

use std::sync::Arc;
use std::time::Duration;

mod outcome;
pub mod rules;

pub use outcome::{PermitAcquired, PermitGrant, SemaphoreRead};

use crate::config::LockSettings;
use crate::key::Key;
use crate::lock::touch::{anywhere, PermitGrants};
use crate::lock::{map_done, wait_for, Touch};
use crate::runtime::waiters::Waiters;
use crate::store::semaphore::{PermitAsk, PermitReply, PermitStore};
use crate::store::{Holder, Step};
use crate::tier::{Backend, Blocked, GrantReply, GrantStep, Mode, Tier, Verdict};

pub use crate::store::semaphore::MAX_LIMIT;

/// A validated acquire of permits.
#[derive(Debug, Clone)]
pub struct PermitRequest {
    /// Semaphore name.
    pub name: Key,
    /// Holder identity.
    pub owner: String,
    /// The semaphore's limit as the caller knows it, 1..=[`MAX_LIMIT`].
    pub limit: i64,
    /// Permits asked for, 1..=`limit`.
    pub count: i64,
    /// Lease length, 1..=[`crate::lock::MAX_TTL_MS`].
    pub ttl_ms: i64,
    /// How long to wait in line, 0..=[`crate::lock::MAX_WAIT_MS`].
    pub wait_ms: i64,
}

/// The semaphore service.
pub struct Semaphores {
    tier: Arc<Tier>,
    waiters: Waiters,
    poll: Duration,
}

impl Semaphores {
    /// Semaphores over `tier`; waiting acquires poll as often as lock waiters do.
    pub fn new(tier: Arc<Tier>, cfg: &LockSettings) -> Self {
        Self {
            tier,
            waiters: Waiters::default(),
            poll: crate::config::ms(cfg.wait_poll_ms),
        }
    }

    /// Acquires permits, waiting up to `wait_ms` in FIFO order behind this instance's other
    /// waiters: a waiter asking for several permits is served only when all of them fit, and
    /// later single-permit waiters do not overtake it.
    pub async fn acquire(&self, req: &PermitRequest) -> PermitAcquired {
        let poll = self.poll;
        let retry_in = |answer: &PermitAcquired| match answer {
            PermitAcquired::Full { retry_after_ms, .. } => Some(wait_for(*retry_after_ms, poll)),
            PermitAcquired::Blocked(b) => b.wait_out(poll),
            _ => None,
        };
        let attempt = || self.try_once(req);
        let name = req.name.as_str();
        self.waiters
            .in_line(name, req.wait_ms, attempt, retry_in)
            .await
    }

    async fn try_once(&self, req: &PermitRequest) -> PermitAcquired {
        let ask = PermitAsk {
            name: &req.name,
            owner: &req.owner,
            limit: req.limit,
            count: req.count,
            ttl_ms: req.ttl_ms,
        };
        let (reply, _, mode) = match self.tier.grant(req.ttl_ms, &req.name, &Acquire(&ask)).await {
            Ok(done) => done,
            Err(b) => return PermitAcquired::Blocked(b),
        };
        let (permit, available, fresh) = match reply {
            PermitReply::Granted { permit, available } => (permit, available, true),
            PermitReply::Held { permit, available } => (permit, available, false),
            PermitReply::Full {
                held,
                retry_after_ms,
            } => {
                return PermitAcquired::Full {
                    held,
                    retry_after_ms,
                }
            }
            PermitReply::LimitMismatch { limit } => return PermitAcquired::LimitMismatch { limit },
            PermitReply::CounterExhausted | PermitReply::EpochMismatch { .. } => {
                return PermitAcquired::Blocked(Blocked::EpochChanging)
            }
        };
        PermitAcquired::Granted(PermitGrant {
            permit,
            available: available.max(0),
            mode,
            fresh,
        })
    }

    /// Extends the caller's live permit to `ttl_ms` from now; answers its new expiry.
    pub async fn extend(
        &self,
        name: &Key,
        owner: &str,
        token: i64,
        ttl_ms: i64,
    ) -> Result<(Touch<i64>, Mode), Blocked> {
        self.tier.effects_allowed()?;
        if let Err(e) = self.tier.note_ttl(ttl_ms).await {
            return Err(Blocked::database(&e));
        }
        let holder = Holder {
            key: name,
            owner,
            token,
        };
        let step = Step::Extend { ttl_ms };
        let (touch, mode) = anywhere(&self.tier, &PermitGrants, step, holder).await?;
        Ok((map_done(touch, |l| l.expires_at), mode))
    }

    /// Releases the caller's live permit, waking this instance's next waiter.
    pub async fn release(
        &self,
        name: &Key,
        owner: &str,
        token: i64,
    ) -> Result<(Touch<()>, Mode), Blocked> {
        let holder = Holder {
            key: name,
            owner,
            token,
        };
        let (touch, mode) = anywhere(&self.tier, &PermitGrants, Step::Release, holder).await?;
        if let Touch::Done(_) = touch {
            self.waiters.released(name.as_str());
        }
        Ok((map_done(touch, drop), mode))
    }

    /// The semaphore's live permits, and how many wait for it on this instance.
    pub async fn read(&self, name: &Key) -> Result<(SemaphoreRead, Mode), Blocked> {
        let active = self.tier.active(false)?;
        let now = self.tier.now();
        let census = active.settle(|b| b.census(name, now)).await?;
        let read = SemaphoreRead {
            census,
            waiting: self.waiters.waiting(name.as_str()),
        };
        Ok((read, active.mode()))
    }
}

/// A permit acquire, as one try of the tier's grant loop.
struct Acquire<'r>(&'r PermitAsk<'r>);

impl GrantStep for Acquire<'_> {
    type Reply = PermitReply;

    async fn run<'a>(
        &'a self,
        b: Backend<'a>,
        epoch: i64,
        now: i64,
    ) -> Result<PermitReply, crate::store::StoreError> {
        b.acquire_permit(self.0, rules::on_permit, epoch, now).await
    }
}

impl GrantReply for PermitReply {
    fn verdict(&self) -> Verdict {
        match self {
            PermitReply::CounterExhausted => Verdict::CounterExhausted,
            PermitReply::EpochMismatch { .. } => Verdict::EpochMismatch,
            _ => Verdict::Answer,
        }
    }

    fn token(&self) -> Option<i64> {
        match self {
            PermitReply::Granted { permit, .. } | PermitReply::Held { permit, .. } => {
                Some(permit.token)
            }
            _ => None,
        }
    }
}
