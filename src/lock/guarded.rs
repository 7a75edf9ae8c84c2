//! `with_lock` for in-process callers: holds a lease while a closure runs, renewing it every
//! third of its TTL, and signals the closure (cancellation) before the lease can lapse — the
//! deadline counted from the *send* time of the last successful renewal, so a renewal whose
//! answer came late never stretches it, and a renewal that hangs never delays the signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{AcquireRequest, Acquired, Locks, Touch};
use crate::key::Key;
use crate::tier::Blocked;

/// Why `with_lock` did not run its closure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WithLockError {
    /// Another owner held the key for the whole wait.
    #[error("lock busy; retry after {0} ms")]
    Busy(i64),
    /// No tier may grant now.
    #[error("no tier may grant: {0}")]
    Blocked(&'static str),
    /// The wait closed a deadlock and this caller was chosen as its victim.
    #[error("deadlock detected")]
    Deadlock,
}

/// The closure's view of its lease.
#[derive(Debug, Clone)]
pub struct LockGuard {
    token: i64,
    lost: watch::Receiver<bool>,
}

impl LockGuard {
    /// The lease's fencing token (pass it to every fenced write).
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Whether the lease may be lost: stop side effects.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the lease may be lost (use it in `select!` around the work).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|l| *l).await;
    }
}

/// Pause before retrying a renewal that failed.
const RETRY: Duration = Duration::from_millis(50);

/// Margin kept before the lease's computed end: the signal fires this much (a tenth of the
/// TTL) before the lease could lapse, at least 1 ms.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(1))
}

impl Locks {
    /// Runs `work` while holding `key` as `owner` (a lease of `ttl_ms`, waiting up to
    /// `wait_ms` for it), then releases it. The lease is renewed every `ttl_ms / 3`; if
    /// renewals fail or the lease is lost, the guard is signalled before the lease could lapse.
    pub async fn with_lock<F, Fut, T>(
        self: &Arc<Self>,
        key: &Key,
        owner: &str,
        (ttl_ms, wait_ms): (i64, i64),
        work: F,
    ) -> Result<T, WithLockError>
    where
        F: FnOnce(LockGuard) -> Fut,
        Fut: Future<Output = T>,
    {
        let ttl = Duration::from_millis(ttl_ms.max(3) as u64);
        let sent = Instant::now();
        let req = AcquireRequest {
            key: key.clone(),
            owner: owner.to_owned(),
            ttl_ms,
            wait_ms,
            max_hold_ms: None,
            shared: false,
            deadlock_priority: 0,
        };
        let token = match self.acquire(&req).await {
            Acquired::Granted(g) => g.token,
            Acquired::Busy { retry_after_ms, .. } => {
                return Err(WithLockError::Busy(retry_after_ms))
            }
            Acquired::Blocked(b) => return Err(WithLockError::Blocked(b.reason())),
            Acquired::Deadlock { .. } => return Err(WithLockError::Deadlock),
        };
        let (tx, rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let renewer = tokio::spawn(self.clone().renew(
            (key.clone(), owner.to_owned(), token),
            ttl,
            sent,
            tx,
            stop_rx,
        ));
        let out = work(LockGuard { token, lost: rx }).await;
        let _ = stop_tx.send(true);
        let _ = renewer.await;
        if let Err(b) = self.release(key, owner, token).await {
            tracing::warn!(
                reason = b.reason(),
                "lock not released after with_lock; it expires"
            );
        }
        Ok(out)
    }

    /// Renews `(key, owner, token)` every third of `ttl` until `stop`; signals `lost` at the
    /// deadline (last successful renewal's send time + `ttl` − margin) or on a refusal.
    async fn renew(
        self: Arc<Self>,
        (key, owner, token): (Key, String, i64),
        ttl: Duration,
        mut last_sent: Instant,
        lost: watch::Sender<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        let ttl_ms = ttl.as_millis() as i64;
        let mut retry_at = None;
        loop {
            let deadline = last_sent + ttl - margin(ttl);
            let next = retry_at.unwrap_or(last_sent + ttl / 3).min(deadline);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(key = key.as_str(), "lease may lapse: renewals failed");
                    let _ = lost.send(true);
                    return;
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            let send = Instant::now();
            let extended = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(key = key.as_str(), "lease may lapse: a renewal hangs");
                    let _ = lost.send(true);
                    return;
                }
                r = self.extend(&key, &owner, token, ttl_ms) => r,
            };
            match extended {
                Ok((Touch::Done(_), _)) => {
                    last_sent = send;
                    retry_at = None;
                }
                Ok((refused, _)) => {
                    tracing::warn!(key = key.as_str(), refused = ?refused, "lease lost");
                    let _ = lost.send(true);
                    return;
                }
                Err(b) => {
                    renewal_failed(&key, b);
                    retry_at = Some(Instant::now() + RETRY);
                }
            }
        }
    }
}

fn renewal_failed(key: &Key, b: Blocked) {
    tracing::warn!(
        key = key.as_str(),
        reason = b.reason(),
        "lease not renewed; retrying"
    );
}
