//! Warden: a coordination service whose grants stay safe across Redis loss.
//!
//! Dependencies run one way: [`api`] (the route table and handlers) → the capabilities
//! ([`access`], [`lock`], [`semaphore`], [`fence`], [`idem`], [`reserve`], [`stream`],
//! [`ratelimit`], [`kv`], [`session`], [`cache`], [`guard`]), each a folder with its service,
//! outcomes and `rules.rs` → [`tier`] (the router between the tiers: timeouts, breaker,
//! failover) → [`store`] (one module per concept, backends in `store/redis` and `store/sql`).
//! [`config`] and [`runtime`] (group commit, waiters, the task scheduler, the clock) are below
//! them all. [`service::Warden`] runs an instance in-process and schedules each capability's
//! background tasks; [`cli`] is the command line the binary runs. The load generator is a
//! crate of its own (`bench/`, binary `warden-bench`).
#![warn(missing_docs)]
#![warn(clippy::await_holding_lock)]

pub mod access;
pub mod api;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod config;
pub mod fence;
pub mod guard;
pub mod idem;
pub mod key;
pub mod kv;
pub mod lock;
pub mod logging;
pub mod metrics_names;
pub mod outcome;
pub mod ratelimit;
pub mod reserve;
pub mod runtime;
pub mod semaphore;
pub mod service;
pub mod session;
pub mod store;
pub mod stream;
pub mod tier;
pub mod token;
