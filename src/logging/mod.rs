//! Logging off the request path: JSON lines go through a bounded queue to a writer thread, so
//! a slow or blocked stderr never stalls a request; a line that finds the queue full is
//! dropped and counted (`warden_log_lines_dropped_total`), never waited for. A filter of
//! targets and levels only is judged once per call site (a disabled one then costs nothing);
//! only a filter naming spans or fields pays the per-span matching of an `EnvFilter`.

mod span_fields;

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .fmt_fields(span_fields::SpanFields)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(json.with_filter(filter(&log.filter)))
        .init();
    guard
}

/// The filter `spec` names: [`Targets`] when it names targets and levels only (the usual
/// `info,warden=debug`), an [`EnvFilter`] when it filters on spans or fields. A filter that
/// does not parse falls back to `info` (said on stderr, since the logger is not up yet).
fn filter(spec: &str) -> Box<dyn Filter<Registry> + Send + Sync> {
    if !spec.contains(['[', '{']) {
        if let Ok(targets) = spec.parse::<Targets>() {
            return FilterExt::boxed(targets);
        }
    }
    match EnvFilter::try_new(spec) {
        Ok(f) => FilterExt::boxed(f),
        Err(e) => {
            eprintln!("warden: log.filter {spec:?} ignored ({e}); logging at info");
            FilterExt::boxed(EnvFilter::new("info"))
        }
    }
}

/// Publishes how many log lines were dropped so far (called when metrics are rendered).
pub fn publish_dropped() {
    if let Some(counter) = DROPPED.get() {
        metrics::counter!(m::LOG_DROPPED).absolute(counter.dropped_lines() as u64);
    }
}
