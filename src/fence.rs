//! Fences: a resource accepts a token only if it is at least the highest token it has seen,
//! so a holder whose lease was superseded can never write after its successor (G3).

use std::sync::Arc;

use crate::key::Key;
use crate::outcome::{StateDoc, Terminal};
use crate::tier::{Blocked, Tier};

/// The answer to a fence check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceOutcome {
    /// Accepted; `highest` is now this token.
    Accepted {
        /// Highest token recorded.
        highest: i64,
    },
    /// A larger token was already seen.
    Stale {
        /// Highest token recorded.
        highest: i64,
    },
}

impl Terminal for FenceOutcome {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "accepted",
            200,
            "the token is the highest seen (now recorded)",
        ),
        StateDoc::json(
            "stale_token",
            409,
            "a larger token was seen: its holder was superseded; `highest`",
        ),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Stale { .. } => "stale_token",
        }
    }
}

/// The fence service. Fences live in SQL: they are business facts that must survive Redis.
pub struct Fences {
    tier: Arc<Tier>,
}

impl Fences {
    /// Fences over `tier`'s durable store.
    pub fn new(tier: Arc<Tier>) -> Self {
        Self { tier }
    }

    /// Checks `token` against `resource`, recording it when accepted.
    /// Refused in safe mode (G10): a holder granted before it must not act on its token.
    pub async fn check(&self, resource: &Key, token: i64) -> Result<FenceOutcome, Blocked> {
        self.tier.effects_allowed()?;
        let sql = self.tier.durable();
        let outcome = self
            .tier
            .on_durable(sql.fence_check(resource.as_str(), token))
            .await?;
        Ok(match outcome {
            Ok(()) => FenceOutcome::Accepted { highest: token },
            Err(highest) => FenceOutcome::Stale { highest },
        })
    }
}
