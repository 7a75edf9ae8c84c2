//! The `warden` binary: the command line of the library ([`warden::cli`]); no logic of its own.

/// mimalloc: glibc's allocator showed lock contention between arenas in the lock benchmark
/// (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    warden::cli::main().await
}
