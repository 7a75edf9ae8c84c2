//! Warden: a coordination service whose grants stay safe across Redis loss.
//!
//! Dependencies run one way: [`api`] → domain modules ([`access`], [`lock`], [`semaphore`],
//! [`fence`], [`idem`], [`reserve`], [`stream`]) → [`tier`] →
//! [`store`]; [`runtime`] holds the infrastructure they share. [`service::Warden`] runs them
//! in-process; the binary only wires [`config::Config`] to [`api::serve`]. The load generator
//! is a crate of its own (`bench/`, binary `warden-bench`).
#![warn(missing_docs)]
#![warn(clippy::await_holding_lock)]

pub mod access;
pub mod api;
pub mod audit;
pub mod cache;
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
