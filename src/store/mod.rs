//! Storage tiers. Backends only store: each call is one atomic step, and domain rules (tokens,
//! waiting, failover) live above them. Infrastructure failures are [`StoreError`]s; domain
//! answers (busy, not owner) are values.

pub mod cache;
pub mod copy;
pub mod guard;
pub mod idem;
pub mod kv;
pub mod lock_group;
pub mod ratelimit;
pub mod redis;
pub mod reserve;
pub mod semaphore;
pub mod session;
pub mod sql;
pub mod stream;
pub mod tokens;
pub mod wait;

use std::future::Future;
use std::sync::Arc;

use crate::key::Key;

/// A failure of the storage infrastructure itself; the only kind that may trip the breaker.
/// Its text (with the underlying error as its source) goes to logs only: answers carry the
/// stable reason of the tier that failed, and metrics the stable [`StoreError::code`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached, or answered a command with an error.
    #[error("redis failed: {0}")]
    Redis(#[source] Arc<::redis::RedisError>),
    /// The database could not be reached, or answered a statement with an error.
    #[error("database failed: {0}")]
    Sql(#[source] Arc<sqlx::Error>),
    /// A store holds or answered something Warden never writes (a foreign writer, or a bug).
    #[error("unexpected store contents: {0}")]
    Corrupt(String),
    /// A write was lost inside Warden before reaching the store (its writer stopped, or a
    /// batch came back incomplete).
    #[error("write lost: {0}")]
    Lost(String),
    /// The call did not finish within its timeout.
    #[error("store call timed out")]
    Timeout,
}

impl From<crate::runtime::group_commit::WriteLost> for StoreError {
    fn from(lost: crate::runtime::group_commit::WriteLost) -> Self {
        Self::Lost(lost.0)
    }
}

impl StoreError {
    /// Whether the connection to Redis broke or was refused: what a restart of the server
    /// looks like from here (a timeout or an error answer does not).
    pub fn lost_redis_connection(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// A stable name of the kind of failure (a metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Redis(_) => "redis_error",
            Self::Sql(_) => "database_error",
            Self::Corrupt(_) => "corrupt",
            Self::Lost(_) => "write_lost",
            Self::Timeout => "timeout",
        }
    }

    /// Whether the database could not be reached or answered too slowly (refused or broken
    /// connections, a server starting up or out of connections, a timeout): what waiting may
    /// cure, unlike a bad URL, a refused password or a failed migration.
    pub fn database_unreachable(&self) -> bool {
        match self {
            Self::Timeout => true,
            Self::Sql(e) => sql::unreachable(e),
            _ => false,
        }
    }

    /// Whether a unique index refused a row: another writer inserted the same key first (a
    /// race to retry, not an outage).
    pub fn is_unique_violation(&self) -> bool {
        let Self::Sql(e) = self else {
            return false;
        };
        e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| matches!(&*c, "23505" | "2067" | "1555"))
    }
}

/// Runs `call` for at most `limit`: no request waits on a stalled server longer than that.
pub async fn bounded<T>(
    limit: std::time::Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(StoreError::Timeout))
}

/// The two tiers, as the shared tier row names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierName {
    /// The Redis primary tier.
    Redis,
    /// The SQL durable tier.
    Sql,
}

impl TierName {
    /// The name stored in the tier row and shown in `/v1/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Sql => "sql",
        }
    }

    /// The tier a stored name means.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Redis, Self::Sql]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// The guard's state, as the shared tier row carries it (G10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardState {
    /// Side effects go on.
    #[default]
    Normal,
    /// The fallback is degrading (a warning of S-PC-05-001 §10): side effects go on, watched.
    Degraded,
    /// Side effects are refused; ingestion, releases and reads go on.
    SafeMode,
    /// Still safe mode, with every exit condition but the green window met; a red health
    /// sample restarts the window.
    Recovering,
}

impl GuardState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Degraded => "degraded",
            Self::SafeMode => "safe_mode",
            Self::Recovering => "recovering",
        }
    }

    /// The state a stored name means.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Normal,
            Self::Degraded,
            Self::SafeMode,
            Self::Recovering,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }

    /// Whether side effects are refused in this state.
    pub fn blocks_effects(self) -> bool {
        matches!(self, Self::SafeMode | Self::Recovering)
    }
}

/// A lock lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Holder.
    pub owner: String,
    /// Fencing token of the grant.
    pub token: i64,
    /// Expiry, epoch milliseconds.
    pub expires_at: i64,
    /// The `max_hold_ms` deadline, epoch milliseconds: no extend takes the lease past it.
    /// `None` when the grant set no cap.
    pub hold_until: Option<i64>,
    /// Whether it is one of the key's shared leases (else the exclusive one).
    pub shared: bool,
}

/// What an acquire asks for.
#[derive(Debug, Clone, Copy)]
pub struct LeaseAsk<'a> {
    /// Lock key.
    pub key: &'a Key,
    /// Holder identity.
    pub owner: &'a str,
    /// Lease length, ms.
    pub ttl_ms: i64,
    /// Cap on extends, from the grant (exclusive leases only).
    pub max_hold_ms: Option<i64>,
    /// A shared lease (else exclusive).
    pub shared: bool,
    /// How long a refused exclusive ask marks a writer waiting, ms (0: the caller does not
    /// wait). While the mark lives no new shared lease is granted, so readers cannot starve a
    /// waiting writer.
    pub writer_mark_ms: i64,
}

impl<'a> LeaseAsk<'a> {
    /// An exclusive lease of `ttl_ms` with no cap, for a caller that does not wait.
    pub fn exclusive(key: &'a Key, owner: &'a str, ttl_ms: i64) -> Self {
        Self {
            key,
            owner,
            ttl_ms,
            max_hold_ms: None,
            shared: false,
            writer_mark_ms: 0,
        }
    }
}

/// The outcome of one atomic acquire step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireReply {
    /// A new lease was granted.
    Granted(Lease),
    /// The caller already holds this live lease.
    Held(Lease),
    /// Another owner holds a live lease until `expires_at` (for shared holders, the first to
    /// expire), or a writer waits ahead of a shared ask.
    Busy {
        /// When the current lease runs out, epoch milliseconds.
        expires_at: i64,
        /// Who holds it (or waits for it).
        blocked_by: String,
        /// For a tree key, the key (as its tenant named it) where the conflicting lease is:
        /// an ancestor, the key itself, or a descendant. `None` for a plain key.
        blocked_at: Option<String>,
    },
    /// This epoch has used all its counter values for the key's slot (or key): a new epoch is
    /// needed before the next grant, or tokens would spill into the next epoch's range.
    CounterExhausted,
    /// The store is not at the caller's epoch: `found` is its epoch, or `None` when the store
    /// has lost its epoch record (data loss).
    EpochMismatch {
        /// The store's epoch, if it still has one.
        found: Option<i64>,
    },
}

/// The outcome of taking a lock group's members in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupReply {
    /// Every member's reply (`Granted`, or `Held` for a lease the owner already held), in the
    /// order asked.
    Taken(Vec<AcquireReply>),
    /// Nothing was taken: member `index` was refused (`Busy`), or the whole step was
    /// (`CounterExhausted`, `EpochMismatch`; `index` 0).
    Refused {
        /// The member that refused.
        index: usize,
        /// Why.
        reply: AcquireReply,
    },
}

/// A lease as its holder names it in an extend or release.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    /// Lock key.
    pub key: &'a Key,
    /// Holder identity.
    pub owner: &'a str,
    /// Fencing token of the grant.
    pub token: i64,
}

/// What an extend or release does to a holder's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The lease runs `ttl_ms` from now.
    Extend {
        /// New lease length from now, ms.
        ttl_ms: i64,
    },
    /// The lease ends.
    Release,
}

/// The outcome of one atomic extend or release step on one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// Done; the lease as it now stands (an extend's new expiry).
    Done(Lease),
    /// The caller's `(owner, token)` is not a live lease of the key here. `current` is the
    /// key's lease record if the store keeps one: live, or (SQL) ended, with its token.
    Missed {
        /// The key's lease record in this store, if any.
        current: Option<Lease>,
    },
    /// The store is not at the caller's epoch (SQL checks it in the same statement): the
    /// caller's view of the tier is stale.
    EpochMismatch,
}

/// Atomic lock steps, implemented once per backend.
pub trait LockStore: Send + Sync {
    /// Grants `ask.key` to `ask.owner` for `ask.ttl_ms` as of `epoch`: an exclusive lease if
    /// no lease is live, a shared one if no exclusive lease is live and no writer waits; with
    /// extends capped at `max_hold_ms` after the grant when it is set. Tokens of both kinds are
    /// `token_base(epoch) + n` with `1 <= n < 2^32` one counter that only grows within the
    /// epoch (per slot on Redis, per key on SQL).
    fn acquire(
        &self,
        ask: &LeaseAsk<'_>,
        epoch: i64,
        now: i64,
    ) -> impl Future<Output = Result<AcquireReply, StoreError>> + Send;
    /// Runs `step` on the live lease `holder`, as of `epoch`; an extend that would take the
    /// lease past its max_hold deadline changes nothing (the lease is `Missed` as the caller's
    /// own, still live). A store that may still receive
    /// a copy of an older epoch's lease (Redis while it is armed) remembers a release, so the
    /// copy cannot bring the lease back.
    fn touch(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> impl Future<Output = Result<Touched, StoreError>> + Send;
    /// The live leases on `key`: the exclusive one, or every shared one (empty when free).
    fn get(
        &self,
        key: &Key,
        now: i64,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send;
}

/// A lock store that takes copies of leases granted on the other tier (Redis while it is
/// armed, and after an extend made on SQL meanwhile).
pub trait LeaseCopy: Send + Sync {
    /// Copies `lease` of `key` (exclusive or shared), unless a newer exclusive lease is held
    /// here or this one was released here; the same lease already here keeps the later expiry.
    /// Returns whether the lease is here now.
    fn seed_lease(
        &self,
        key: &str,
        lease: &Lease,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_keeps_its_cause_as_source_and_has_a_stable_code() {
        let e = StoreError::Sql(Arc::new(sqlx::Error::PoolClosed));
        assert_eq!(e.code(), "database_error");
        let source = std::error::Error::source(&e).expect("the sqlx error is its source");
        assert_eq!(source.to_string(), sqlx::Error::PoolClosed.to_string());
        assert!(e.to_string().contains(&source.to_string()), "{e}");
        assert!(std::error::Error::source(&StoreError::Timeout).is_none());
        assert_eq!(StoreError::Lost("x".into()).code(), "write_lost");
    }
}
