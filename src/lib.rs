//! Warden: a coordination service whose grants stay safe across Redis loss.
//!
//! Dependencies run one way: [`api`] → domain modules ([`lock`], [`fence`], [`idem`],
//! [`reserve`], [`stream`]) → [`tier`] →
//! [`store`]. [`service::Warden`] runs them in-process; the binary only wires
//! [`config::Config`] to [`api::serve`].
#![warn(missing_docs)]
#![warn(clippy::await_holding_lock)]

pub mod api;
pub mod bench;
pub mod clock;
pub mod config;
pub mod fence;
pub mod group_commit;
pub mod idem;
pub mod key;
pub mod lock;
pub mod logging;
pub mod metrics_names;
pub mod periodic;
pub mod reserve;
pub mod service;
pub mod store;
pub mod stream;
pub mod tier;
mod waiters;
