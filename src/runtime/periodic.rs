//! Background loops: a step run once per period until its service stops, never overlapping
//! itself (the next period starts when the step is done).

use std::future::Future;
use std::time::Duration;

use tracing::Instrument;

use super::correlation::task_span;

/// Runs `step` every `period` until `stop` completes; each step in a span of task `task` with
/// a correlation id of its own.
pub async fn every<F, Fut>(
    task: &'static str,
    period: Duration,
    stop: impl Future<Output = ()>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(period) => {}
        }
        step().instrument(task_span(task)).await;
    }
}
