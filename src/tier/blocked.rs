//! Why no tier may act now: a closed set of stable reason codes answered to clients. The
//! failure behind a code (store error text, epochs) goes to the log line where it is made,
//! never into an answer.

use super::Mode;
use crate::outcome::{StateDoc, Terminal};
use crate::store::StoreError;

/// Why a request was refused with a safe block (HTTP 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// An operator put Warden in safe mode: `safe_mode`.
    SafeMode,
    /// The current epoch grants nothing yet, since leases of the old tier may still be live:
    /// `failover_grace`.
    Grace {
        /// How long until grants are allowed, in milliseconds.
        retry_after_ms: i64,
    },
    /// This instance could not renew its lease on the shared tier row (the database is
    /// unreachable) and may no longer act on it: `tier_lease_expired`.
    TierLeaseExpired,
    /// The primary tier failed this call or its breaker is open: `redis_unavailable`.
    RedisUnavailable,
    /// The database failed this call: `database_unavailable`.
    DatabaseUnavailable,
    /// Neither tier can be reached: `both_tiers_down`.
    BothTiersDown,
    /// The tier moved to a new epoch (or is being armed for one) while the request ran, more
    /// often than the request follows: `epoch_changing`.
    EpochChanging,
    /// Fencing tokens of this epoch would pass 2^53: `token_space_exhausted`.
    TokenSpaceExhausted,
}

impl Blocked {
    /// How long a waiting request waits out this refusal before trying again (`poll` when
    /// the epoch is changing), or `None` when waiting cannot help.
    pub fn wait_out(&self, poll: std::time::Duration) -> Option<std::time::Duration> {
        match self {
            Self::Grace { retry_after_ms } => Some(std::time::Duration::from_millis(
                (*retry_after_ms).max(1) as u64,
            )),
            Self::EpochChanging => Some(poll),
            _ => None,
        }
    }

    /// Every reason code, as documented.
    pub const REASONS: [&'static str; 8] = [
        "safe_mode",
        "failover_grace",
        "tier_lease_expired",
        "redis_unavailable",
        "database_unavailable",
        "both_tiers_down",
        "epoch_changing",
        "token_space_exhausted",
    ];

    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SafeMode => "safe_mode",
            Self::Grace { .. } => "failover_grace",
            Self::TierLeaseExpired => "tier_lease_expired",
            Self::RedisUnavailable => "redis_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::BothTiersDown => "both_tiers_down",
            Self::EpochChanging => "epoch_changing",
            Self::TokenSpaceExhausted => "token_space_exhausted",
        }
    }

    /// When a retry may succeed, if the tier can tell.
    pub fn retry_after_ms(&self) -> Option<i64> {
        match self {
            Self::Grace { retry_after_ms } => Some((*retry_after_ms).max(1)),
            _ => None,
        }
    }

    /// A failed call to the store of `mode`; its error text is logged here.
    pub fn store(mode: Mode, e: &StoreError) -> Self {
        match mode {
            Mode::Primary => Self::redis(e),
            Mode::Fallback | Mode::Durable => Self::database(e),
        }
    }

    /// A failed Redis call; its error text is logged here.
    pub fn redis(e: &StoreError) -> Self {
        tracing::warn!(error = %e, code = e.code(), tier = "redis", "store call failed");
        Self::RedisUnavailable
    }

    /// A failed database call; its error text is logged here.
    pub fn database(e: &StoreError) -> Self {
        tracing::warn!(error = %e, code = e.code(), tier = "sql", "store call failed");
        Self::DatabaseUnavailable
    }
}

impl Terminal for Blocked {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "safe_block",
        503,
        "no tier may act now; `reason` says why (and `retry_after_ms` when known)",
    )];

    fn state(&self) -> &'static str {
        "safe_block"
    }
}

impl From<StoreError> for Blocked {
    /// Store errors reaching a domain answer through `?` come from the durable tier.
    fn from(e: StoreError) -> Self {
        Self::database(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once() {
        let all = [
            Blocked::SafeMode,
            Blocked::Grace { retry_after_ms: 5 },
            Blocked::TierLeaseExpired,
            Blocked::RedisUnavailable,
            Blocked::DatabaseUnavailable,
            Blocked::BothTiersDown,
            Blocked::EpochChanging,
            Blocked::TokenSpaceExhausted,
        ];
        let codes: Vec<&str> = all.iter().map(Blocked::reason).collect();
        assert_eq!(codes, Blocked::REASONS);
        assert_eq!(
            Blocked::Grace { retry_after_ms: 0 }.retry_after_ms(),
            Some(1)
        );
        assert_eq!(Blocked::SafeMode.retry_after_ms(), None);
    }
}
