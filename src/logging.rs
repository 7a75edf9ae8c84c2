//! Logging off the request path: JSON lines go through a bounded queue to a writer thread, so
//! a slow or blocked stderr never stalls a request; a line that finds the queue full is
//! dropped and counted (`warden_log_lines_dropped_total`), never waited for.

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::metrics_names as m;

/// Lines queued for the writer thread before new ones are dropped, unless
/// `WARDEN_LOG_BUFFER_LINES` says otherwise.
pub const DEFAULT_BUFFER_LINES: usize = 65_536;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the process's JSON logger on stderr (filter `WARDEN_LOG`, default `info`; queue
/// size `WARDEN_LOG_BUFFER_LINES`). Keep the guard for the life of the process: dropping it
/// flushes the queue.
pub fn init() -> WorkerGuard {
    let lines = std::env::var("WARDEN_LOG_BUFFER_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_BUFFER_LINES);
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(lines)
        .thread_name("warden-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    guard
}

/// Publishes how many log lines were dropped so far (called when metrics are rendered).
pub fn publish_dropped() {
    if let Some(counter) = DROPPED.get() {
        metrics::counter!(m::LOG_DROPPED).absolute(counter.dropped_lines() as u64);
    }
}
