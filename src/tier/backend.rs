//! The active backend, chosen by the tier router; domain modules see only the store traits
//! ([`LockStore`], [`PermitStore`]).

use crate::key::Key;
use crate::store::redis::RedisStore;
use crate::store::semaphore::{Census, PermitAsk, PermitReply, PermitRule, PermitStore};
use crate::store::sql::SqlStore;
use crate::store::{
    bounded, AcquireReply, Holder, Lease, LeaseAsk, LockStore, Step, StoreError, Touched,
};

/// Which tier answered, and why: `primary` is Redis; `fallback` is SQL because of the tier
/// (failed over, breaker open, a Redis error on the way); `durable` is SQL by design, on any
/// tier (a record that lives only in SQL, a hot copy that was missing or held). Only
/// `fallback` counts toward the §10 fallback rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redis.
    Primary,
    /// SQL, because the tier is SQL or Redis failed this call.
    Fallback,
    /// SQL, by design: Redis would not have served it on any tier.
    Durable,
}

impl Mode {
    /// Name used in answers, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Fallback => "fallback",
            Self::Durable => "durable",
        }
    }
}

/// A borrowed backend.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    /// The Redis tier.
    Redis(&'a RedisStore),
    /// The SQL tier.
    Sql(&'a SqlStore),
}

impl Backend<'_> {
    /// The mode this backend answers in.
    pub fn mode(&self) -> Mode {
        match self {
            Self::Redis(_) => Mode::Primary,
            Self::Sql(_) => Mode::Fallback,
        }
    }

    /// Takes a lock group's members in one atomic step where this store can (Redis, keys of
    /// one slot); `None` where it cannot, and the group is taken member by member.
    pub async fn acquire_group(
        &self,
        asks: &[LeaseAsk<'_>],
        epoch: i64,
        now: i64,
    ) -> Result<Option<crate::store::GroupReply>, StoreError> {
        match self {
            Self::Redis(s) => s.acquire_group(asks, epoch, now).await,
            Self::Sql(_) => Ok(None),
        }
    }
}

impl LockStore for Backend<'_> {
    async fn acquire(
        &self,
        ask: &LeaseAsk<'_>,
        epoch: i64,
        now: i64,
    ) -> Result<AcquireReply, StoreError> {
        match self {
            Self::Redis(s) => s.acquire(ask, epoch, now).await,
            Self::Sql(s) => bounded(s.timeout(), s.acquire(ask, epoch, now)).await,
        }
    }

    async fn touch(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        match self {
            Self::Redis(s) => s.touch(holder, step, epoch, now).await,
            Self::Sql(s) => bounded(s.timeout(), s.touch(holder, step, epoch, now)).await,
        }
    }

    async fn get(&self, key: &Key, now: i64) -> Result<Vec<Lease>, StoreError> {
        match self {
            Self::Redis(s) => s.get(key, now).await,
            Self::Sql(s) => bounded(s.timeout(), s.get(key, now)).await,
        }
    }
}

impl PermitStore for Backend<'_> {
    async fn acquire_permit(
        &self,
        ask: &PermitAsk<'_>,
        rule: PermitRule,
        epoch: i64,
        now: i64,
    ) -> Result<PermitReply, StoreError> {
        match self {
            Self::Redis(s) => s.acquire_permit(ask, rule, epoch, now).await,
            Self::Sql(s) => bounded(s.timeout(), s.acquire_permit(ask, rule, epoch, now)).await,
        }
    }

    async fn touch_permit(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        match self {
            Self::Redis(s) => s.touch_permit(holder, step, epoch, now).await,
            Self::Sql(s) => bounded(s.timeout(), s.touch_permit(holder, step, epoch, now)).await,
        }
    }

    async fn census(&self, name: &Key, now: i64) -> Result<Census, StoreError> {
        match self {
            Self::Redis(s) => s.census(name, now).await,
            Self::Sql(s) => bounded(s.timeout(), s.census(name, now)).await,
        }
    }
}
