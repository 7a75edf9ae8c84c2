//! The one way a domain reaches the primary tier: every call goes through [`Primary::call`],
//! which feeds its result to the breaker, so no Redis failure can hide from failover.

use std::future::Future;

use super::{Blocked, Mode, Tier};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// The Redis tier, borrowed for one operation together with the router that watches it.
/// Domains call its capability traits ([`crate::store::idem::IdemCopy`],
/// [`crate::store::reserve::StockCopy`], …) through [`Primary::call`] or [`Primary::settle`].
#[derive(Clone, Copy)]
pub struct Primary<'a> {
    store: &'a RedisStore,
    tier: &'a Tier,
}

impl<'a> Primary<'a> {
    pub(super) fn new(store: &'a RedisStore, tier: &'a Tier) -> Self {
        Self { store, tier }
    }

    /// Runs one store call and feeds its result to the breaker (the call's own timeout bounds
    /// it: every Redis round trip is limited by `redis_timeout_ms`).
    pub async fn call<T, Fut>(self, f: impl FnOnce(&'a RedisStore) -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let result = f(self.store).await;
        self.tier.record(Mode::Primary, &result);
        result
    }

    /// [`Primary::call`], with a failure turned into the request's stable block reason.
    pub async fn settle<T, Fut>(self, f: impl FnOnce(&'a RedisStore) -> Fut) -> Result<T, Blocked>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call(f)
            .await
            .map_err(|e| Blocked::store(Mode::Primary, &e))
    }
}
