//! Infrastructure the domain modules run on, with no rule of any capability in it: group
//! commit, per-key waiters, periodic background loops, the clock and the TLS provider.

pub mod clock;
pub mod correlation;
pub mod group_commit;
pub mod periodic;
pub mod tasks;
pub mod waiters;

/// Installs the process's one TLS provider (ring) for HTTPS, `rediss://` and PostgreSQL alike,
/// before anything builds a TLS configuration. Idempotent.
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
