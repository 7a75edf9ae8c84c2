//! Logging off the request path: JSON lines go through a bounded queue to a writer thread, so
//! a slow or blocked stderr never stalls a request; a line that finds the queue full is
//! dropped and counted (`warden_log_lines_dropped_total`), never waited for.

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;
use crate::metrics_names as m;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the process's JSON logger on stderr with `log.filter` and a queue of
/// `log.buffer_lines`. Keep the guard for the life of the process: dropping it flushes the
/// queue.
pub fn init(log: &LogSettings) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(log.buffer_lines)
        .thread_name("warden-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter(&log.filter))
        .init();
    guard
}

/// The filter `spec` names; a filter that does not parse falls back to `info` (said on stderr,
/// since the logger is not up yet).
fn filter(spec: &str) -> EnvFilter {
    EnvFilter::try_new(spec).unwrap_or_else(|e| {
        eprintln!("warden: log.filter {spec:?} ignored ({e}); logging at info");
        EnvFilter::new("info")
    })
}

/// Publishes how many log lines were dropped so far (called when metrics are rendered).
pub fn publish_dropped() {
    if let Some(counter) = DROPPED.get() {
        metrics::counter!(m::LOG_DROPPED).absolute(counter.dropped_lines() as u64);
    }
}
