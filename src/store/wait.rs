//! The wait graph as stored: one edge per waiter and key it waits for, each with an expiry, so
//! a waiter that vanished stops counting in a cycle once its edge lapses.

/// One edge: `waiter` waits for `key`, held by `holder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEdge {
    /// The waiting owner (tenant-prefixed).
    pub waiter: String,
    /// The key it waits for.
    pub key: String,
    /// Who held the key at the waiter's last try (tenant-prefixed).
    pub holder: String,
    /// The waiter's `deadlock_priority` (the lowest is chosen as victim).
    pub priority: i64,
    /// When its wait began, epoch ms (the youngest wait is chosen among equal priorities).
    pub since: i64,
}
