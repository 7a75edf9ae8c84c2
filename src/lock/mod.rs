//! Fenced locks: every grant carries a fencing token larger than every token answered before
//! it for that key (G1) — the token is `epoch << 32 | per-key counter`, made by the store in
//! the same atomic step as the grant; an owner's retry returns its own live grant.

use std::sync::Arc;
use std::time::Duration;

use crate::key::Key;
use crate::store::{AcquireReply, Lease, LockStore, StoreError, MAX_TOKEN};
use crate::tier::{Blocked, Mode, Tier};
use crate::waiters::Waiters;

/// Longest lock TTL accepted, in milliseconds.
pub const MAX_TTL_MS: i64 = 3_600_000;
/// Longest `wait_ms` accepted.
pub const MAX_WAIT_MS: i64 = 60_000;
/// How often the head waiter rechecks a key held through another instance.
const POLL: Duration = Duration::from_millis(20);
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
}

fn unavailable(e: StoreError) -> Blocked {
    Blocked::Unavailable(e.to_string())
}

impl Locks {
    /// Locks over `tier`.
    pub fn new(tier: Arc<Tier>) -> Self {
        Self {
            tier,
            waiters: Waiters::default(),
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
            if let Acquired::Blocked(Blocked::SafeMode | Blocked::Unavailable(_)) = first {
                return first;
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
                        let poll = (*retry_after_ms).clamp(1, POLL.as_millis() as i64);
                        tokio::time::Instant::now() + Duration::from_millis(poll as u64)
                    }
                    Acquired::Blocked(Blocked::Grace { retry_after_ms }) => {
                        let left = (*retry_after_ms).max(1) as u64;
                        tokio::time::Instant::now() + Duration::from_millis(left)
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
        for _ in 0..EPOCH_RETRIES {
            let active = match self.tier.active(true) {
                Ok(a) => a,
                Err(b) => return Acquired::Blocked(b),
            };
            if let Err(e) = self.tier.note_ttl(req.ttl_ms).await {
                return Acquired::Blocked(unavailable(e));
            }
            let mode = active.backend.mode();
            let now = self.tier.now();
            let reply = active
                .backend
                .acquire(&req.key, &req.owner, req.ttl_ms, active.epoch, now)
                .await;
            self.tier.record(mode, &reply);
            let (lease, fresh) = match reply {
                Err(e) => return Acquired::Blocked(unavailable(e)),
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
                return Acquired::Blocked(Blocked::Unavailable("token space exhausted".into()));
            }
            return Acquired::Granted(Grant {
                owner: lease.owner,
                token: lease.token,
                expires_at: lease.expires_at,
                mode,
                fresh,
            });
        }
        Acquired::Blocked(Blocked::Unavailable("tier epoch kept changing".into()))
    }

    /// Extends the caller's live lease to `ttl_ms` from now. `Ok(None)`: not the owner.
    pub async fn extend(
        &self,
        key: &Key,
        owner: &str,
        token: i64,
        ttl_ms: i64,
    ) -> Result<(Option<i64>, Mode), Blocked> {
        let active = self.tier.active(false)?;
        self.tier.note_ttl(ttl_ms).await.map_err(unavailable)?;
        let mode = active.backend.mode();
        let r = active
            .backend
            .extend(key, owner, token, ttl_ms, self.tier.now())
            .await;
        self.tier.record(mode, &r);
        Ok((r.map_err(unavailable)?, mode))
    }

    /// Releases the caller's live lease. `Ok(false)`: not the owner.
    pub async fn release(
        &self,
        key: &Key,
        owner: &str,
        token: i64,
    ) -> Result<(bool, Mode), Blocked> {
        let active = self.tier.active(false)?;
        let mode = active.backend.mode();
        let r = active
            .backend
            .release(key, owner, token, self.tier.now())
            .await;
        self.tier.record(mode, &r);
        let released = r.map_err(unavailable)?;
        if released {
            self.waiters.released(key.as_str());
        }
        Ok((released, mode))
    }

    /// The live lease on `key`, if any.
    pub async fn get(&self, key: &Key) -> Result<(Option<Lease>, Mode), Blocked> {
        let active = self.tier.active(false)?;
        let mode = active.backend.mode();
        let r = active.backend.get(key, self.tier.now()).await;
        self.tier.record(mode, &r);
        Ok((r.map_err(unavailable)?, mode))
    }
}
