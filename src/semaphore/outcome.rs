//! The terminal states of the semaphore operations, each with its HTTP status, in one place.

use super::Mode;
use crate::outcome::{StateDoc, Terminal};
use crate::store::semaphore::{Census, Permit};
use crate::tier::Blocked;

/// A permit grant as answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitGrant {
    /// The grant (its token is also its id).
    pub permit: Permit,
    /// Permits still free under the limit.
    pub available: i64,
    /// Tier that granted it.
    pub mode: Mode,
    /// `false` when this is the caller's live permit, returned on a retry.
    pub fresh: bool,
}

/// The answer to an acquire of permits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermitAcquired {
    /// Granted (or the caller's own live permit, returned again).
    Granted(PermitGrant),
    /// The request does not fit under the limit for the whole wait.
    Full {
        /// Permits held.
        held: i64,
        /// When a retry may succeed, ms.
        retry_after_ms: i64,
    },
    /// Live permits were granted under another limit.
    LimitMismatch {
        /// The semaphore's limit.
        limit: i64,
    },
    /// No tier may grant now (G7).
    Blocked(Blocked),
}

impl Terminal for PermitAcquired {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "permit_acquired",
            200,
            "granted; `permit_id`, `fencing_token`, `expires_at`, `available`",
        ),
        StateDoc::json(
            "semaphore_full",
            409,
            "the permits asked for do not fit under the limit; `held`, `retry_after_ms`",
        ),
        StateDoc::json(
            "limit_mismatch",
            409,
            "live permits were granted under another limit; `limit` is the semaphore's",
        ),
        StateDoc::json(
            "permit_acquire_failed_safe_block",
            503,
            "no tier may grant now; `reason` says why",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Granted(_) => "permit_acquired",
            Self::Full { .. } => "semaphore_full",
            Self::LimitMismatch { .. } => "limit_mismatch",
            Self::Blocked(_) => "permit_acquire_failed_safe_block",
        }
    }
}

/// A semaphore as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemaphoreRead {
    /// Its live permits.
    pub census: Census,
    /// Acquires waiting for it on this instance.
    pub waiting: usize,
}

impl Terminal for SemaphoreRead {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "counted",
        200,
        "`limit` (absent when no permit lives), `held`, `available`, `holders`, `waiting` (on \
         this instance)",
    )];

    fn state(&self) -> &'static str {
        "counted"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_state_is_listed() {
        let permit = Permit {
            owner: "a".into(),
            token: 1,
            count: 1,
            expires_at: 1,
        };
        let grant = PermitGrant {
            permit,
            available: 0,
            mode: Mode::Primary,
            fresh: true,
        };
        let acquired = [
            PermitAcquired::Granted(grant),
            PermitAcquired::Full {
                held: 1,
                retry_after_ms: 1,
            },
            PermitAcquired::LimitMismatch { limit: 2 },
            PermitAcquired::Blocked(Blocked::SafeMode),
        ];
        assert_listed(&acquired);
        assert_eq!(acquired.map(|a| a.status()), [200, 409, 409, 503]);
        let read = SemaphoreRead {
            census: Census::default(),
            waiting: 0,
        };
        assert_listed(&[read]);
    }
}
