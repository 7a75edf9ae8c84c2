//! Correlation ids: every log line carries one. A request's is read from `X-Correlation-Id` or
//! made here; work no request asked for (start-up, background loops, group-commit batches,
//! tier supervision) runs in a span with an id of its own, made here too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A fresh correlation id: a random per-process prefix and a counter (unique, and cheaper than
/// a random UUID per request).
pub fn new_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n:x}")
}

/// A span for one piece of work no request asked for, with a fresh correlation id.
pub fn task_span(task: &'static str) -> tracing::Span {
    tracing::info_span!("task", correlation_id = %new_id(), task)
}
