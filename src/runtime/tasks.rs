//! The background tasks of one instance, on one scheduler: each capability schedules its
//! periodic steps here under a name (`kv_reaper`), at an interval its settings give, each step
//! in a span of its own and never overlapping itself; all of them stop together, and the
//! instance waits for every one before it closes its stores.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::periodic::every;

/// A capability that runs work in the background.
pub trait Scheduled {
    /// Schedules its background tasks on `s`.
    fn schedule(&self, s: &mut Scheduler);
}

/// The scheduler of one instance's background tasks.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// A scheduler with no task yet.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Completes when the instance stops.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Runs `step` every `period` (the first one period after the start) until the instance
    /// stops.
    pub fn every<F, Fut>(&mut self, task: &'static str, period: Duration, step: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stopped = self.stopped();
        self.tasks
            .push((task, tokio::spawn(every(task, period, stopped, step))));
    }

    /// Runs a task with a schedule of its own (`run` is handed the stop signal, and returns
    /// once it has completed).
    pub fn run<F, Fut>(&mut self, task: &'static str, run: F)
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stopped = Box::pin(self.stopped());
        self.tasks.push((task, tokio::spawn(run(stopped))));
    }

    /// The names of the tasks scheduled, in the order they were.
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every task and waits for each to end.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        for (_, task) in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}
