//! Per-key wait queues for `wait_ms`: waiters on one key queue on a fair (FIFO) tokio mutex
//! (locks: only the head polls the store) or all wait for one event (idempotency), woken early
//! by changes made through this instance; changes made elsewhere are seen by polling.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// The queue of one key.
#[derive(Default)]
pub struct KeySlot {
    /// Held by the waiter at the head of the queue; tokio's mutex grants in FIFO order.
    pub queue: tokio::sync::Mutex<()>,
    /// Signalled when this instance releases or finishes the key.
    pub released: Notify,
}

/// How often a waiter queued behind others runs its `queued` check.
pub const QUEUED_CHECK: Duration = Duration::from_millis(100);

/// Wait queues by key, created on demand and dropped when the last waiter leaves.
#[derive(Default)]
pub struct Waiters {
    slots: Mutex<HashMap<String, Arc<KeySlot>>>,
}

impl Waiters {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<KeySlot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the queue of `key`; pair with [`Waiters::leave`].
    pub fn join(&self, key: &str) -> Arc<KeySlot> {
        self.map().entry(key.to_owned()).or_default().clone()
    }

    /// Leaves the queue of `key`, dropping it when nobody else is in it.
    pub fn leave(&self, key: &str, slot: Arc<KeySlot>) {
        let mut map = self.map();
        // One reference in the map, one here: nobody else is waiting.
        if Arc::strong_count(&slot) == 2 {
            map.remove(key);
        }
    }

    /// Whether anyone waits for `key` on this instance.
    pub fn is_queued(&self, key: &str) -> bool {
        self.map().contains_key(key)
    }

    /// Wakes the head waiter of `key`, if any.
    pub fn released(&self, key: &str) {
        if let Some(slot) = self.map().get(key) {
            slot.released.notify_one();
        }
    }
}

impl Waiters {
    /// Wakes every waiter of `key` now waiting (a result every one of them can use).
    pub fn wake_all(&self, key: &str) {
        if let Some(slot) = self.map().get(key) {
            slot.released.notify_waiters();
        }
    }
}

impl Waiters {
    /// How many wait in the queue of `key` on this instance.
    pub fn waiting(&self, key: &str) -> usize {
        self.map()
            .get(key)
            .map_or(0, |slot| Arc::strong_count(slot).saturating_sub(1))
    }

    /// Runs `attempt` until its answer is final or `wait_ms` has passed, in FIFO order
    /// behind this instance's other waiters for `key`: only the head of the queue attempts,
    /// again after `retry_in(answer)` (`None`: the answer is final) or as soon as this instance
    /// signals the key, so a waiter is served only when its whole request can be. A request
    /// that does not wait, or finds nobody queued, attempts at once.
    pub async fn in_line<T, F, Fut>(
        &self,
        key: &str,
        wait_ms: i64,
        attempt: F,
        retry_in: impl Fn(&T) -> Option<Duration>,
    ) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = T>,
    {
        let nothing = || std::future::ready(None);
        self.in_line_watched(key, wait_ms, attempt, retry_in, nothing)
            .await
    }

    /// [`Waiters::in_line`], and while queued behind others every [`QUEUED_CHECK`], `queued()`:
    /// an answer from it ends the wait (a deadlock found for a waiter that is not at the head
    /// of the queue, which makes no attempts of its own).
    pub async fn in_line_watched<T, F, Fut, Q, QFut>(
        &self,
        key: &str,
        wait_ms: i64,
        mut attempt: F,
        retry_in: impl Fn(&T) -> Option<Duration>,
        mut queued: Q,
    ) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = T>,
        Q: FnMut() -> QFut,
        QFut: Future<Output = Option<T>>,
    {
        if wait_ms <= 0 || !self.is_queued(key) {
            let first = attempt().await;
            if wait_ms <= 0 || retry_in(&first).is_none() {
                return first;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms as u64);
        let slot = self.join(key);
        let answer = async {
            // One lock future for the whole wait: tokio's mutex keeps its place in line (FIFO)
            // only while it lives.
            let lock = slot.queue.lock();
            tokio::pin!(lock);
            let head = loop {
                let check = (tokio::time::Instant::now() + QUEUED_CHECK).min(deadline);
                tokio::select! {
                    biased;
                    head = &mut lock => break Some(head),
                    _ = tokio::time::sleep_until(check) => {
                        if check >= deadline {
                            break None;
                        }
                        if let Some(answer) = queued().await {
                            return answer;
                        }
                    }
                }
            };
            let Some(_head) = head else {
                return attempt().await;
            };
            loop {
                let answer = attempt().await;
                let Some(pause) = retry_in(&answer) else {
                    return answer;
                };
                let wake_at = tokio::time::Instant::now() + pause;
                if wake_at >= deadline {
                    return answer;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(wake_at) => {}
                    _ = slot.released.notified() => {}
                }
            }
        }
        .await;
        self.leave(key, slot);
        answer
    }
}
