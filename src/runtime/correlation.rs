//! Correlation ids: every log line carries one. A request's is read from `X-Correlation-Id` or
//! made here; work no request asked for (start-up, background loops, group-commit batches,
//! tier supervision) runs in a span with an id of its own, made here too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A fresh correlation id: a random per-process prefix and a counter (unique, and cheaper than
/// a random UUID per request).
pub fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n:x}", instance_id())
}

/// This process's random id (the prefix of its correlation ids): names the instance in
/// what it records for others to read.
pub fn instance_id() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned())
}

/// A span for one piece of work no request asked for, with a fresh correlation id (at error
/// level, so a `warn` filter still puts the id on the lines logged inside it).
pub fn task_span(task: &'static str) -> tracing::Span {
    tracing::error_span!("task", correlation_id = %new_id(), task)
}

/// The correlation of the request being served: its correlation id and, when the caller sent
/// one, its W3C `traceparent`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// The correlation id (echoed in `X-Correlation-Id`).
    pub id: String,
    /// The caller's `traceparent`, or empty.
    pub traceparent: String,
}

tokio::task_local! {
    static CURRENT: Correlation;
}

/// Runs `fut` with `c` as its current correlation (read by [`current`] and [`traceparent`]).
pub async fn scope<F: std::future::Future>(c: Correlation, fut: F) -> F::Output {
    CURRENT.scope(c, fut).await
}

/// The current request's correlation; outside any request, a fresh id and no `traceparent`.
pub fn here() -> Correlation {
    CURRENT
        .try_with(Correlation::clone)
        .unwrap_or_else(|_| Correlation {
            id: new_id(),
            traceparent: String::new(),
        })
}

/// The current request's correlation id; a fresh one outside any request.
pub fn current() -> String {
    CURRENT
        .try_with(|c| c.id.clone())
        .unwrap_or_else(|_| new_id())
}

/// The current request's `traceparent`, or empty.
pub fn traceparent() -> String {
    CURRENT
        .try_with(|c| c.traceparent.clone())
        .unwrap_or_default()
}

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, not all zeros).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    valid.then(|| parts[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_gives_its_trace_id_only_when_well_formed() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id("00-0000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id(""), None);
        assert_eq!(
            trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }
}
