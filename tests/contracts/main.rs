//! Contract suites, one binary: each capability's answers, bad input, access, the library
//! in process, rule agreement between Rust, Lua and SQL, and the failovers each capability
//! promises to survive — against real Redis and PostgreSQL started per test (each cluster a
//! copy of one template). Shared helpers compile once, in `support`.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod bad_input;
mod bad_input_guard;
mod bad_input_streams;
mod cache;
mod cache_library;
mod cache_rule;
mod cli;
mod conformance;
mod correlation;
mod fairness;
mod https;
mod idem_library;
mod idem_rule;
mod idempotency;
mod kv;
mod kv_rule;
mod lock_group;
mod lock_library;
mod lock_rule;
mod lock_shared;
mod lock_watch;
mod logging;
mod ratelimit;
mod ratelimit_library;
mod ratelimit_rule;
mod reservations;
mod semaphore_rule;
mod session_rule;
mod sessions;
mod sql_store;
mod store_tls;
mod stream_cache;
mod streams;
mod tasks;
