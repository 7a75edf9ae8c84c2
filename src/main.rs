//! The `warden` binary: wires configuration to the library; no logic of its own.

use clap::{Parser, Subcommand};

/// mimalloc: glibc's allocator showed lock contention between arenas in the lock benchmark
/// (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use warden::config::Flags;

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
    Serve(Flags),
    /// Compare every SKU's Redis stock copy with SQL; print and count each difference.
    Reconcile {
        /// Reseed differing Redis copies from SQL (the durable truth).
        #[arg(long)]
        fix: bool,
        #[command(flatten)]
        flags: Flags,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    let flags = match &command {
        Command::Serve(flags) | Command::Reconcile { flags, .. } => flags.clone(),
    };
    let config = match flags.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("warden: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Logs go to stderr (so subcommands' reports on stdout stay clean), off the request path.
    let _log = warden::logging::init(&config.log);
    let result = match command {
        Command::Serve(_) => warden::api::serve(config, shutdown_signal())
            .await
            .map_err(|e| e.to_string()),
        Command::Reconcile { fix, .. } => warden::service::reconcile(&config, fix)
            .await
            .map(|report| print!("{report}")),
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
