//! The `warden` binary: wires configuration to the library; no logic of its own.

use clap::{Parser, Subcommand};

/// mimalloc: glibc's allocator showed lock contention between arenas in the lock benchmark
/// (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use warden::config::Settings;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Coordination service: fenced locks, idempotency keys and reservations over Redis with a durable SQL tier"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(Settings),
    /// Compare every SKU's Redis stock copy with SQL; print and count each difference.
    Reconcile {
        /// Reseed differing Redis copies from SQL (the durable truth).
        #[arg(long)]
        fix: bool,
        #[command(flatten)]
        settings: Settings,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs go to stderr (so subcommands' reports on stdout stay clean), off the request path.
    let _log = warden::logging::init();
    let result = match Cli::parse().command {
        Command::Serve(settings) => match settings.resolve() {
            Ok(config) => warden::api::serve(config, shutdown_signal())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Command::Reconcile { fix, settings } => match settings.resolve() {
            Ok(config) => warden::service::reconcile(&config, fix)
                .await
                .map(|report| print!("{report}")),
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            warden::runtime::correlation::task_span("shutdown")
                .in_scope(|| tracing::error!(error = %e, "warden stopped"));
            eprintln!("warden: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
