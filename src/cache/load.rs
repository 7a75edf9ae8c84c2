//! Read-through for in-process callers: `get_or_load` runs at most one load per key in this
//! process at a time (single flight) and, through leases, at most one per key across
//! processes. The load runs in its own task, so a caller that gives up (its future dropped)
//! cancels nothing for the others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use super::{Cache, Fetch, Put, PutRequest};
use crate::runtime::correlation::task_span;
use crate::tier::Blocked;

/// Why `get_or_load` has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The loader failed (its message).
    #[error("loader failed: {0}")]
    Loader(String),
    /// No tier may serve the cache.
    #[error("cache unavailable: {0}")]
    Blocked(&'static str),
    /// Another process held the lease for longer than the wait allowed.
    #[error("gave up waiting for another loader")]
    WaitedOut,
}

type Outcome = Option<Result<String, LoadError>>;

/// The loads in flight in this process, by `(tenant, namespace, key)`.
#[derive(Default)]
pub struct Flights(Mutex<HashMap<(String, String, String), watch::Receiver<Outcome>>>);

/// What `get_or_load` stores.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The tenant.
    pub tenant: String,
    /// The namespace.
    pub ns: String,
    /// The key.
    pub key: String,
    /// Fresh for this long, ms.
    pub ttl_ms: i64,
    /// Then stale for this long, ms.
    pub stale_ttl_ms: i64,
    /// Tags of the entry.
    pub tags: Vec<String>,
}

impl Cache {
    /// The value of `spec.key`: from the cache, or loaded by `loader` (JSON text) and stored —
    /// by one caller in this process and, through the lease, one across processes; the
    /// others wait for it. A caller dropped while waiting cancels nothing.
    pub async fn get_or_load<F, Fut>(
        self: &Arc<Self>,
        spec: LoadSpec,
        loader: F,
    ) -> Result<String, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let id = (spec.tenant.clone(), spec.ns.clone(), spec.key.clone());
        let mut rx = {
            let mut flights = self.flights.0.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(&id) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(id.clone(), rx.clone());
                    let me = self.clone();
                    let load = async move {
                        let out = me.load_once(&spec, loader).await;
                        me.flights
                            .0
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        let _ = tx.send(Some(out));
                    };
                    tokio::spawn(load.instrument(task_span("cache_load")));
                    rx
                }
            }
        };
        let done = rx
            .wait_for(|o| o.is_some())
            .await
            .map_err(|_| LoadError::Blocked("load_task_failed"))?;
        done.clone().unwrap_or(Err(LoadError::WaitedOut))
    }

    /// One flight: fetch, and load under the lease when this process gets it; wait (at most
    /// `cache.max_lease_ms`) while another process holds it.
    async fn load_once<F, Fut>(
        self: &Arc<Self>,
        spec: &LoadSpec,
        loader: F,
    ) -> Result<String, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let lease_ms = self.cfg.lease_ms as i64;
        let give_up = Instant::now() + Duration::from_millis(self.cfg.max_lease_ms);
        let blocked = |b: Blocked| LoadError::Blocked(b.reason());
        loop {
            let (fetched, _) = self
                .fetch(&spec.tenant, &spec.ns, &spec.key, lease_ms, true)
                .await
                .map_err(blocked)?;
            let token = match fetched {
                Fetch::Hit(v, _) | Fetch::Stale(v, _) => return Ok(v),
                Fetch::Refresh(v, _, token) => {
                    // Answer now; reload in the background under the lease.
                    let (me, spec) = (self.clone(), spec.clone());
                    let reload = async move {
                        let _ = me.load_and_put(&spec, token, loader).await;
                    };
                    tokio::spawn(reload.instrument(task_span("cache_refresh")));
                    return Ok(v);
                }
                Fetch::MissLease(token) => token,
                Fetch::MissWait(ms) => {
                    if Instant::now() >= give_up {
                        return Err(LoadError::WaitedOut);
                    }
                    tokio::time::sleep(Duration::from_millis(ms.clamp(1, 1_000) as u64)).await;
                    continue;
                }
            };
            return self.load_and_put(spec, token, loader).await;
        }
    }

    /// Runs `loader` and stores its value under lease `token` (a refused put still answers
    /// the loaded value: it is what the source said).
    async fn load_and_put<F, Fut>(
        &self,
        spec: &LoadSpec,
        token: i64,
        loader: F,
    ) -> Result<String, LoadError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let started = Instant::now();
        let value = loader().await.map_err(LoadError::Loader)?;
        let req = PutRequest {
            value: value.clone(),
            ttl_ms: spec.ttl_ms,
            stale_ttl_ms: spec.stale_ttl_ms,
            tags: spec.tags.clone(),
            lease_token: Some(token),
            compute_ms: started.elapsed().as_millis() as i64,
        };
        match self.put(&spec.tenant, &spec.ns, &spec.key, &req).await {
            Ok((Put::LeaseInvalid, _)) => {
                tracing::info!(ns = %spec.ns, "loaded value not stored: its lease was voided")
            }
            Ok(_) => {}
            Err(b) => tracing::warn!(reason = b.reason(), "loaded value not stored"),
        }
        Ok(value)
    }
}
