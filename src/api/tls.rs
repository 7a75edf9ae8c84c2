//! HTTPS on the main listener (rustls): the certificate and key are read at start and reread
//! on every SIGHUP, so a renewed certificate is served without a restart; a file that does not
//! load keeps the one in use (and says so in the log).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;

use crate::runtime::correlation::task_span;

/// How long in-flight requests may finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(30);

/// A loaded certificate, and where to reload it from.
pub struct Https {
    config: RustlsConfig,
    cert: String,
    key: String,
}

impl Https {
    /// Reads the PEM certificate chain and key.
    pub async fn load(cert: &str, key: &str) -> std::io::Result<Self> {
        crate::runtime::tls_provider();
        let config = RustlsConfig::from_pem_file(cert, key).await?;
        tracing::info!(cert, "https: certificate loaded");
        Ok(Self {
            config,
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Serves `app` over TLS on `listener` until `shutdown` completes, rereading the
    /// certificate on SIGHUP.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: IntoMakeServiceWithConnectInfo<super::starting::Switch, SocketAddr>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(DRAIN));
        });
        let reload = tokio::spawn(reload_on_hangup(self.config.clone(), self.cert, self.key));
        let server = axum_server::from_tcp_rustls(listener.into_std()?, self.config)?;
        let served = server.handle(handle).serve(app).await;
        reload.abort();
        served
    }
}

/// Rereads the certificate and key at every SIGHUP.
async fn reload_on_hangup(config: RustlsConfig, cert: String, key: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("https: no SIGHUP handler; the certificate is not reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        let span = task_span("tls_reload");
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => span.in_scope(|| tracing::info!(cert = %cert, "https: certificate reloaded")),
            Err(e) => span.in_scope(|| {
                tracing::error!(error = %e, cert = %cert, "https: certificate not reloaded; the previous one stays in use")
            }),
        }
    }
}
