//! HTTP layer: routing, extraction and answers. It calls domain modules only; every malformed
//! request is refused here with a problem document before any state is touched (G8).

pub mod extract;
mod locks;
pub mod observe;
mod ops;
pub mod problem;

pub use ops::ApiDoc;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::fence::Fences;
use crate::lock::Locks;
use crate::store::redis::RedisStore;
use crate::store::sql::SqlStore;
use crate::store::StoreError;
use crate::tier::{Tier, TierConfig};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Tier router.
    pub tier: Arc<Tier>,
    /// Lock service.
    pub locks: Arc<Locks>,
    /// Fence service.
    pub fences: Arc<Fences>,
    /// Metrics renderer.
    pub metrics: PrometheusHandle,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A store could not be set up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The listener failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .expect("static bucket list is non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); then metrics go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Connects the tiers and builds the shared state.
pub async fn state(config: &Config) -> Result<AppState, ServeError> {
    let sql = SqlStore::connect(&config.database_url, config.sql_pool, config.sql_timeout).await?;
    let redis = match &config.redis_url {
        Some(url) => Some(RedisStore::connect(url, config.redis_timeout)?),
        None => None,
    };
    let tier_cfg = TierConfig {
        breaker_failures: config.breaker_failures,
        breaker_open: config.breaker_open,
        failover_grace: config.failover_grace,
        tier_lease: config.tier_lease,
        safe_mode: config.safe_mode,
    };
    let tier = Arc::new(Tier::new(tier_cfg, sql, redis));
    tier.refresh().await?;
    Ok(AppState {
        locks: Arc::new(Locks::new(tier.clone())),
        fences: Arc::new(Fences::new(tier.clone())),
        tier,
        metrics: metrics_handle(),
    })
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(locks::router())
        .merge(ops::router())
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(observe::correlate))
        .with_state(state)
}

/// Serves on `config.listen` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(&config.listen).await?;
    serve_on(listener, config, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = state(&config).await?;
    let tier = state.tier.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut supervisor_stop = stop_rx.clone();
    let supervisor = tokio::spawn(tier.clone().supervise(async move {
        let _ = supervisor_stop.wait_for(|s| *s).await;
    }));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %redact(&config.database_url),
        redis = config.redis_url.is_some(), "listening");
    let app = app(state, config.max_body_bytes);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
        })
        .await?;
    let _ = stop_tx.send(true);
    let _ = supervisor.await;
    tier.durable().close().await;
    Ok(())
}

/// Hides a password in a URL for logging.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}
