//! Group commit: many requests' durable writes share one SQL transaction. A request's write is
//! acknowledged only after the transaction holding it has committed (or failed as a whole), so
//! batching never weakens "durable before answered"; it only amortises the commit.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::metrics_names as m;
use crate::runtime::correlation::task_span;
use tracing::Instrument;

/// How many writes may wait for a batch before submitters feel back-pressure.
const QUEUE: usize = 65_536;

type Reply<O, E> = oneshot::Sender<Result<O, E>>;

/// A write that never reached a committed batch: the writer stopped, or a batch answered
/// another number of outcomes than it had writes. The writer's error type is made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteLost(pub String);

/// What a writer's errors must be: made from a [`WriteLost`], shared by every write of a
/// failed batch, and logged.
pub trait BatchError: From<WriteLost> + Clone + std::fmt::Display + Send + 'static {}

impl<E: From<WriteLost> + Clone + std::fmt::Display + Send + 'static> BatchError for E {}

/// Tuning of one writer.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitConfig {
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once (writes queue up behind them and form the next batch).
    pub concurrency: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            concurrency: 2,
        }
    }
}

/// A batching writer: [`GroupCommit::submit`] queues one write and waits for its own outcome.
pub struct GroupCommit<W, O, E> {
    queue: mpsc::Sender<(W, Reply<O, E>)>,
}

impl<W, O, E> Clone for GroupCommit<W, O, E> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<W: Send + 'static, O: Send + 'static, E: BatchError> GroupCommit<W, O, E> {
    /// Starts the writer task. `flush` writes one batch in one transaction and returns one
    /// outcome per write, in order; an `Err` fails every write of the batch. `name` labels the
    /// batch-size and flush-latency metrics.
    pub fn start<F, Fut>(name: &'static str, cfg: GroupCommitConfig, flush: F) -> Self
    where
        F: Fn(Vec<W>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(name, cfg, rx, Arc::new(flush)));
        Self { queue }
    }

    /// Queues `write` and waits until its batch has committed.
    pub async fn submit(&self, write: W) -> Result<O, E> {
        let (tx, rx) = oneshot::channel();
        let stopped = |_| E::from(WriteLost("group commit writer stopped".into()));
        self.queue.send((write, tx)).await.map_err(stopped)?;
        rx.await
            .unwrap_or_else(|_| Err(WriteLost("group commit dropped".into()).into()))
    }
}

async fn run<W, O, E, F, Fut>(
    name: &'static str,
    cfg: GroupCommitConfig,
    mut rx: mpsc::Receiver<(W, Reply<O, E>)>,
    flush: Arc<F>,
) where
    W: Send + 'static,
    O: Send + 'static,
    E: BatchError,
    F: Fn(Vec<W>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut buf = Vec::with_capacity(cfg.max_batch);
    // Waits for a free transaction slot first, so writes keep queueing (and batching) while
    // every slot is busy.
    while let Ok(permit) = permits.clone().acquire_owned().await {
        if rx.recv_many(&mut buf, cfg.max_batch.max(1)).await == 0 {
            return;
        }
        let (writes, replies): (Vec<W>, Vec<Reply<O, E>>) = buf.drain(..).unzip();
        let flush = flush.clone();
        let span = task_span(name);
        let batch = async move {
            let started = Instant::now();
            metrics::histogram!(m::GROUP_COMMIT_BATCH, "writer" => name)
                .record(writes.len() as f64);
            let n = writes.len();
            let result = flush(writes).await;
            metrics::histogram!(m::GROUP_COMMIT_SECONDS, "writer" => name)
                .record(started.elapsed().as_secs_f64());
            drop(permit);
            match result {
                Ok(outcomes) if outcomes.len() == n => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Ok(outcomes) => {
                    let e = format!("batch of {n} answered {} outcomes", outcomes.len());
                    tracing::error!(writer = name, "{e}");
                    fail_all(replies, &WriteLost(e).into());
                }
                Err(e) => {
                    tracing::warn!(writer = name, error = %e, writes = n, "group commit failed");
                    fail_all(replies, &e);
                }
            }
        };
        tokio::spawn(batch.instrument(span));
    }
}

fn fail_all<O, E: Clone>(replies: Vec<Reply<O, E>>, e: &E) {
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[tokio::test(start_paused = true)]
    async fn each_write_gets_its_own_outcome_and_batches_form_under_load() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let cfg = GroupCommitConfig {
            max_batch: 64,
            concurrency: 1,
        };
        let gc: GroupCommit<u32, u32, StoreError> =
            GroupCommit::start("test", cfg, move |w: Vec<u32>| {
                seen.lock().unwrap().push(w.len());
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    Ok(w.into_iter().map(|x| x * 2).collect())
                }
            });
        let calls = (0..500u32).map(|i| {
            let gc = gc.clone();
            tokio::spawn(async move { (i, gc.submit(i).await) })
        });
        for call in futures::future::join_all(calls).await {
            let (i, out) = call.unwrap();
            assert_eq!(out.unwrap(), i * 2);
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 500);
        assert!(
            sizes.len() < 500,
            "no batching happened: {} flushes",
            sizes.len()
        );
        assert!(sizes.iter().all(|&s| s <= 64));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_batch_fails_every_write_in_it_and_no_other() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = batches.clone();
        let cfg = GroupCommitConfig {
            max_batch: 64,
            concurrency: 1,
        };
        // A batch holding write 13 fails as a whole; the others commit.
        let gc = GroupCommit::start("test", cfg, move |w: Vec<u32>| {
            seen.lock().unwrap().push(w.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                if w.contains(&13) {
                    Err(StoreError::Timeout)
                } else {
                    Ok(w)
                }
            }
        });
        let calls = (0..200u32).map(|i| {
            let gc = gc.clone();
            tokio::spawn(async move { (i, gc.submit(i).await) })
        });
        let results = futures::future::join_all(calls).await;
        let batches = batches.lock().unwrap().clone();
        let failed = batches.iter().find(|b| b.contains(&13)).unwrap().clone();
        assert!(failed.len() > 1, "write 13 shared its batch: {failed:?}");
        assert!(batches.len() > 1, "other batches ran: {batches:?}");
        for r in results {
            let (i, out) = r.unwrap();
            if failed.contains(&i) {
                assert!(matches!(out, Err(StoreError::Timeout)), "{i}: {out:?}");
            } else {
                assert_eq!(out.unwrap(), i, "{i} committed with its own outcome");
            }
        }
    }
}
