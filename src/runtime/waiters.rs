//! Per-key wait queues for `wait_ms`: waiters on one key queue on a fair (FIFO) tokio mutex
//! (locks: only the head polls the store) or all wait for one event (idempotency), woken early
//! by changes made through this instance; changes made elsewhere are seen by polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The queue of one key.
#[derive(Default)]
pub struct KeySlot {
    /// Held by the waiter at the head of the queue; tokio's mutex grants in FIFO order.
    pub queue: tokio::sync::Mutex<()>,
    /// Signalled when this instance releases or finishes the key.
    pub released: Notify,
}

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
