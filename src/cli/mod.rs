//! The `warden` command line: each subcommand parsed here and run by the library — `serve`
//! by the HTTP layer, the one-shot commands (`token`, `evidence`, `reconcile`) in
//! [`commands`], which open the stores without supervising the tier the serving instances
//! share. Nothing here decides a rule.

pub mod commands;

use clap::{Parser, Subcommand};

use crate::config::Flags;

/// The command line.
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
    /// Create, list or revoke access tokens (the same configuration as `serve`).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        flags: Flags,
    },
    /// Print the evidence pack of an incident (JSON): timeline, deliveries, guard moves,
    /// tier switches, audit range.
    Evidence {
        /// The incident's id (`inc_…`).
        id: String,
        /// The tenant it belongs to.
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        flags: Flags,
    },
    /// Compare every SKU's Redis stock copy with SQL; print and count each difference.
    Reconcile {
        /// Reseed differing Redis copies from SQL (the durable truth).
        #[arg(long)]
        fix: bool,
        #[command(flatten)]
        flags: Flags,
    },
    /// Benchmarks: `warden bench all` runs every suite in both modes on throwaway Redis and
    /// PostgreSQL and writes a summary, JSON and charts; `warden bench <suite> --url …` drives
    /// a running Warden. Runs `warden-bench` from the same directory (built by
    /// `cargo build --release --workspace`), which keeps the load generator's dependencies out
    /// of the service.
    Bench {
        /// Arguments of `warden-bench` (`warden bench all --help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs `warden-bench` next to this binary with `args`, with its exit status.
fn bench(args: &[String]) -> std::process::ExitCode {
    let bin = std::env::current_exe().map(|p| p.with_file_name("warden-bench"));
    let status = bin.as_ref().map_err(|e| e.to_string()).and_then(|bin| {
        std::process::Command::new(bin)
            .args(args)
            .status()
            .map_err(|e| {
                format!(
                    "{}: {e} (cargo build --release --workspace builds it)",
                    bin.display()
                )
            })
    });
    match status {
        Ok(s) if s.success() => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("warden bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand, Clone)]
enum TokenAction {
    /// Create a token and print it (the only time its secret is shown).
    Create {
        /// Who it is: the actor recorded for its audited actions.
        #[arg(long)]
        name: String,
        /// Its tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Comma-separated scopes, e.g. `locks,idempotency` or `admin`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime in ms (none by default).
        #[arg(long)]
        ttl_ms: Option<i64>,
    },
    /// List every token (never a secret).
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's public id.
        id: String,
    },
}

/// The token command `action` asks for, checked as the HTTP API checks it.
fn token_command(action: TokenAction) -> Result<commands::TokenCommand, String> {
    use commands::TokenCommand;
    Ok(match action {
        TokenAction::Create {
            name,
            tenant,
            scopes,
            ttl_ms,
        } => crate::access::NewToken::new(name, tenant, &scopes, ttl_ms)
            .map(TokenCommand::Create)
            .map_err(|r| format!("--{}: {}", r.field.replace('_', "-"), r.allowed))?,
        TokenAction::List => TokenCommand::List,
        TokenAction::Revoke { id } => TokenCommand::Revoke(id),
    })
}

/// Runs the command line `warden` was started with: parses it, resolves the configuration,
/// starts logging, and runs the command; the process's exit code.
pub async fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    let flags = match &command {
        Command::Bench { args } => return bench(args),
        Command::Serve(flags)
        | Command::Reconcile { flags, .. }
        | Command::Token { flags, .. }
        | Command::Evidence { flags, .. } => flags.clone(),
    };
    let config = match flags.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("warden: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Logs go to stderr (so subcommands' reports on stdout stay clean), off the request path.
    let _log = crate::logging::init(&config.log);
    for name in Flags::unknown_variables() {
        crate::runtime::correlation::task_span("startup").in_scope(
            || tracing::warn!(variable = %name, "environment variable names no setting; ignored"),
        );
    }
    let result = match command {
        Command::Serve(_) => crate::api::serve(config, shutdown_signal())
            .await
            .map_err(|e| e.to_string()),
        Command::Reconcile { fix, .. } => commands::reconcile(&config, fix)
            .await
            .map(|report| print!("{report}")),
        Command::Evidence { id, tenant, .. } => commands::evidence(&config, &tenant, &id)
            .await
            .map(|report| print!("{report}")),
        Command::Token { action, .. } => match token_command(action) {
            Ok(command) => commands::token(&config, command)
                .await
                .map(|report| print!("{report}")),
            Err(e) => Err(e),
        },
        Command::Bench { .. } => unreachable!("answered before configuration"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            crate::runtime::correlation::task_span("shutdown")
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
