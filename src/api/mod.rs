//! HTTP layer: routing, extraction and answers. It calls domain modules only; every malformed
//! request is refused here with a problem document before any state is touched (G8).

mod answer;
pub mod auth;
mod cache;
pub mod extract;
mod guard;
mod idem;
mod incident_input;
mod incidents;
mod kv;
mod lock_groups;
mod locks;
pub mod observe;
mod openapi;
mod ops;
pub mod problem;
mod ratelimit;
mod reserve;
mod review;
mod routes;
mod semaphores;
mod session_pages;
mod sessions;
mod starting;
mod streams;
mod tls;
mod tokens;

pub use openapi::document;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;

use crate::config::{ms, Config};
use crate::runtime::correlation::task_span;
use crate::service::{StartError, Warden};
use tracing::Instrument;

/// Shared state of every handler: the running instance, behind one `Arc`, so the clone axum
/// makes for each extractor is a single reference count. Handlers reach each capability's
/// service as a field (`app.kv`, `app.locks`).
#[derive(Clone)]
pub struct AppState(Arc<Warden>);

impl std::ops::Deref for AppState {
    type Target = Warden;

    fn deref(&self) -> &Warden {
        &self.0
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The instance could not start (a store, or the configuration).
    #[error("start: {0}")]
    Start(#[from] StartError),
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

/// The shared handler state over a running [`Warden`]; installs the metrics recorder first,
/// so every answer the router gives is counted.
pub fn state(warden: Arc<Warden>) -> AppState {
    metrics_handle();
    AppState(warden)
}

/// The route table: every capability's routes, each declared once (`routes.rs`).
fn table(cache: &crate::config::CacheSettings) -> impl Iterator<Item = routes::Routes> {
    [
        locks::routes(),
        semaphores::routes(),
        lock_groups::routes(),
        idem::routes(),
        reserve::routes(),
        streams::routes(),
        review::routes(),
        ratelimit::routes(),
        kv::routes(),
        sessions::routes(),
        session_pages::routes(),
        cache::routes(cache),
        ops::routes(),
        tokens::routes(),
        incidents::routes(),
        guard::routes(),
    ]
    .into_iter()
    .flatten()
}

/// The whole HTTP application over `state`: the route table, each route behind the access
/// check of its need; anything else is a 404 or 405 problem.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let routes = table(state.cache.settings())
        .fold(OpenApiRouter::new(), |all, r| all.merge(r.serving(&state)));
    Router::from(routes)
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.monitor().clone(),
            observe::correlate,
        ))
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

/// Serves on an already bound listener (tests bind port 0). Until the instance has started,
/// the listener answers 503 `starting` (with `Retry-After`); a `shutdown` during the start ends it.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Before the start, so what it counts (a Redis call timing out at start-up) is kept.
    metrics_handle();
    let startup = task_span("startup");
    let tls = match config.tls.files() {
        None => None,
        Some((cert, key)) => Some(
            tls::Https::load(cert, key)
                .instrument(startup.clone())
                .await?,
        ),
    };
    let (ask_stop, asked) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        task_span("shutdown").in_scope(|| tracing::info!("shutting down"));
        let _ = ask_stop.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let addr = listener.local_addr()?;
    let started = Arc::new(OnceLock::new());
    let switch = starting::Switch::new(started.clone());
    let server = tokio::spawn(serve_app(listener, switch, tls, until(asked.clone())));
    let warden = tokio::select! {
        warden = Warden::start(&config).instrument(startup.clone()) => warden,
        () = until(asked.clone()) => {
            let _ = server.await;
            return Ok(());
        }
    };
    let warden = match warden {
        Ok(w) => w,
        Err(e) => {
            server.abort();
            return Err(e.into());
        }
    };
    let warden = Arc::new(warden);
    let state = state(warden.clone());
    let _ = started.set(app(state.clone(), config.max_body_bytes).with_state(()));
    startup.in_scope(|| {
        tracing::info!(%addr, database = %redact(&config.database.url),
            redis = config.redis_url().is_some(), "listening")
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let upkeep = tokio::spawn(metrics_upkeep(
        ms(config.metrics.upkeep_ms),
        until(stopped.clone()),
    ));
    let scrape = match config.metrics.listen.as_str() {
        "" => None,
        at => {
            let listener = TcpListener::bind(at).await?;
            startup.in_scope(
                || tracing::info!(addr = %at, "metrics listening (no token needed there)"),
            );
            let only_metrics = Router::new()
                .route("/metrics", axum::routing::get(ops::metrics))
                .with_state(state);
            let serve =
                axum::serve(listener, only_metrics).with_graceful_shutdown(until(stopped.clone()));
            Some(tokio::spawn(std::future::IntoFuture::into_future(serve)))
        }
    };
    let served = server.await.map_err(std::io::Error::other);
    let _ = stop.send(true);
    let _ = upkeep.await;
    if let Some(scrape) = scrape {
        let _ = scrape.await;
    }
    warden.shutdown().await;
    served??;
    Ok(())
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until `shutdown` completes;
/// then drains in-flight requests.
async fn serve_app(
    listener: TcpListener,
    app: starting::Switch,
    tls: Option<tls::Https>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(app);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => tls.serve(listener, app, shutdown).await,
    }
}

/// Folds recorded histogram samples into their buckets every `period`. The recorder keeps
/// each sample until then: without this, a Warden nobody scrapes would hold every latency it
/// ever measured.
async fn metrics_upkeep(period: std::time::Duration, stop: impl Future<Output = ()>) {
    let handle = metrics_handle();
    crate::runtime::periodic::every("metrics_upkeep", period, stop, || {
        handle.run_upkeep();
        std::future::ready(())
    })
    .await
}

/// Hides a password in a URL for logging.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}
