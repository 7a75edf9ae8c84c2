//! The terminal states of the rate-limit operations, each with its HTTP status, in one place.

use super::policy::Policy;
use crate::outcome::{StateDoc, Terminal};
use crate::tier::Blocked;

/// Where a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitMode {
    /// On Redis, exact (G11).
    Primary,
    /// In this instance's memory, at its share of the degraded limit.
    Local,
    /// Nowhere: no tier could count.
    None,
}

impl LimitMode {
    /// The `mode` of answers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Local => "local",
            Self::None => "none",
        }
    }
}

/// One limit after a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitReport {
    /// The limit's name.
    pub name: String,
    /// Units per window as applied now (the `q` of `RateLimit-Policy`).
    pub quota: i64,
    /// The window, ms.
    pub window_ms: i64,
    /// Units admitted at once, at most.
    pub capacity: i64,
    /// Units still free.
    pub remaining: i64,
    /// Until the limit is wholly free again, ms.
    pub reset_ms: i64,
}

/// What a decision found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Where it was taken.
    pub mode: LimitMode,
    /// Each limit, in the policy's order.
    pub limits: Vec<LimitReport>,
    /// Until the cost would fit, ms (0 when it does; at least 1 otherwise).
    pub retry_after_ms: i64,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Every limit admitted the cost; it is charged.
    Allowed(Report),
    /// A limit refused; nothing was charged.
    Limited(Report),
    /// A limit refused, and the policy is in shadow mode: admitted, nothing charged.
    ShadowLimited(Report),
    /// No tier could count and the policy fails open.
    AllowedUnchecked(Blocked),
    /// No tier could count and the policy fails closed.
    SafeBlock(Blocked),
    /// The cost is above a limit's capacity: it could never pass.
    CostExceedsCapacity {
        /// The limit.
        limit: String,
        /// Its capacity.
        capacity: i64,
    },
    /// No such policy.
    UnknownPolicy,
}

const UNKNOWN_POLICY: StateDoc =
    StateDoc::problem("unknown_policy", 404, "no policy of that name was saved");

impl Terminal for Checked {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "allowed",
            200,
            "every limit admitted the cost; it is charged",
        ),
        StateDoc::json(
            "limited",
            429,
            "a limit refused; nothing was charged; `retry_after_ms` (and `Retry-After`)",
        ),
        StateDoc::json(
            "shadow_limited",
            200,
            "a limit would have refused, but the policy is in shadow mode",
        ),
        StateDoc::json(
            "allowed_unchecked",
            200,
            "no tier could count, and the policy fails open; `reason`",
        ),
        StateDoc::json(
            "limit_failed_safe_block",
            503,
            "no tier could count, and the policy fails closed; `reason`",
        ),
        StateDoc::problem(
            "cost_exceeds_capacity",
            422,
            "the cost is above a limit's capacity: it could never pass; nothing consumed",
        ),
        UNKNOWN_POLICY,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Allowed(_) => "allowed",
            Self::Limited(_) => "limited",
            Self::ShadowLimited(_) => "shadow_limited",
            Self::AllowedUnchecked(_) => "allowed_unchecked",
            Self::SafeBlock(_) => "limit_failed_safe_block",
            Self::CostExceedsCapacity { .. } => "cost_exceeds_capacity",
            Self::UnknownPolicy => "unknown_policy",
        }
    }
}

/// The answer to a peek, reset or refund.
#[derive(Debug, Clone, PartialEq)]
pub enum Looked {
    /// A peek: what is left, and whether one unit would pass (`retry_after_ms` 0).
    Status(Report),
    /// The subject's state is gone: its next check starts afresh.
    Reset(LimitMode),
    /// Units given back (never above capacity).
    Refunded(Report),
    /// No such policy.
    UnknownPolicy,
}

impl Looked {
    /// The states of a peek.
    pub const PEEK_STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "limit_status",
            200,
            "what is left of each limit; nothing written",
        ),
        UNKNOWN_POLICY,
    ];
    /// The states of a reset.
    pub const RESET_STATES: &'static [StateDoc] = &[
        StateDoc::json("reset", 200, "the subject's counts are gone"),
        UNKNOWN_POLICY,
    ];
    /// The states of a refund.
    pub const REFUND_STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "refunded",
            200,
            "units given back to every limit, never above capacity",
        ),
        UNKNOWN_POLICY,
    ];
}

impl Terminal for Looked {
    const STATES: &'static [StateDoc] = &[
        Self::PEEK_STATES[0],
        Self::RESET_STATES[0],
        Self::REFUND_STATES[0],
        UNKNOWN_POLICY,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Status(_) => "limit_status",
            Self::Reset(_) => "reset",
            Self::Refunded(_) => "refunded",
            Self::UnknownPolicy => "unknown_policy",
        }
    }
}

/// The answer to a policy save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySaved {
    /// Saved, as `version`.
    Saved(i64),
    /// `If-Match` named another version (`None`: the policy does not exist); nothing written.
    VersionMismatch(Option<i64>),
}

impl Terminal for PolicySaved {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "policy_saved",
            200,
            "saved; `version` (also the `ETag`); checks apply it from the next one",
        ),
        StateDoc::problem(
            "version_mismatch",
            412,
            "`If-Match` names another version than the saved one; nothing written",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Saved(_) => "policy_saved",
            Self::VersionMismatch(_) => "version_mismatch",
        }
    }
}

/// The answer to a policy read.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRead {
    /// The policy, at `version`.
    Found(Box<Policy>, i64),
    /// No such policy.
    Unknown,
}

impl Terminal for PolicyRead {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "policy",
            200,
            "the policy and its `version` (also the `ETag`)",
        ),
        UNKNOWN_POLICY,
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Found(..) => "policy",
            Self::Unknown => "unknown_policy",
        }
    }
}

/// The answer to an override save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSaved {
    /// Saved: the subject's checks use these limits from the next one.
    Saved,
    /// No such policy.
    UnknownPolicy,
    /// The policy has `ratelimit.max_overrides` overrides already; nothing written.
    TooMany,
}

impl Terminal for OverrideSaved {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "override_saved",
            200,
            "the subject's limits; checks apply them from the next one",
        ),
        UNKNOWN_POLICY,
        StateDoc::problem(
            "too_many_overrides",
            409,
            "the policy has as many overrides as `ratelimit.max_overrides` allows",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Saved => "override_saved",
            Self::UnknownPolicy => "unknown_policy",
            Self::TooMany => "too_many_overrides",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_state_is_listed_once() {
        let r = Report {
            mode: LimitMode::Primary,
            limits: vec![],
            retry_after_ms: 0,
        };
        assert_listed(&[
            Checked::Allowed(r.clone()),
            Checked::Limited(r.clone()),
            Checked::ShadowLimited(r.clone()),
            Checked::AllowedUnchecked(Blocked::BothTiersDown),
            Checked::SafeBlock(Blocked::BothTiersDown),
            Checked::CostExceedsCapacity {
                limit: "m".into(),
                capacity: 1,
            },
            Checked::UnknownPolicy,
        ]);
        assert_listed(&[
            Looked::Status(r.clone()),
            Looked::Reset(LimitMode::Local),
            Looked::Refunded(r),
            Looked::UnknownPolicy,
        ]);
        assert_listed(&[PolicySaved::Saved(1), PolicySaved::VersionMismatch(None)]);
        assert_listed(&[
            OverrideSaved::Saved,
            OverrideSaved::UnknownPolicy,
            OverrideSaved::TooMany,
        ]);
        assert_eq!(Checked::UnknownPolicy.status(), 404);
        assert_eq!(PolicySaved::VersionMismatch(Some(2)).status(), 412);
    }
}
