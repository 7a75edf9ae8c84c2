//! Fault suites, one binary: tier switches, failover histories, Redis restores, deadlocks and
//! the guard's escalation, with Redis and PostgreSQL killed, stalled and restarted by the
//! test. Each test keeps private servers; `.config/nextest.toml` runs these one at a time.

#[path = "../support/mod.rs"]
mod support;

mod deadlock;
mod failover;
mod guard;
mod guard_fallback;
mod hot_copy;
mod redis_restore;
mod semaphore_failover;
mod switch_history;
mod tier_switch;
