//! The terminal states of the token operations, each with its HTTP status, in one place.

use crate::outcome::{StateDoc, Terminal};
use crate::store::tokens::StoredToken;

/// A created token: the only time its secret is seen.
#[derive(Clone)]
pub struct Created {
    /// `wdn_<id>_<secret>`.
    pub text: String,
    /// The token as stored.
    pub token: StoredToken,
}

/// Never prints the secret (a `{:?}` in a log line must not leak it).
impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("text", &"wdn_…(redacted)")
            .field("token", &self.token)
            .finish()
    }
}

/// Every token, without secrets.
#[derive(Debug, Clone)]
pub struct Listed(pub Vec<StoredToken>);

/// The answer to a revocation.
#[derive(Debug, Clone)]
pub enum Revoked {
    /// Revoked (now, or before: `revoked_at` says when).
    Revoked(StoredToken),
    /// No such token.
    Unknown,
}

impl Terminal for Created {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "token_created",
        201,
        "the token; its `token` secret is shown this once",
    )];

    fn state(&self) -> &'static str {
        "token_created"
    }
}

impl Terminal for Listed {
    const STATES: &'static [StateDoc] = &[StateDoc::json(
        "tokens",
        200,
        "every token: id, name, tenant, scopes, times (never a secret)",
    )];

    fn state(&self) -> &'static str {
        "tokens"
    }
}

impl Terminal for Revoked {
    const STATES: &'static [StateDoc] = &[
        StateDoc::json(
            "token_revoked",
            200,
            "refused from now on here, and on every instance within one tier lease",
        ),
        StateDoc::problem("unknown_token", 404, "no token with this id"),
    ];

    fn state(&self) -> &'static str {
        match self {
            Self::Revoked(_) => "token_revoked",
            Self::Unknown => "unknown_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::assert_listed;

    #[test]
    fn every_token_outcome_has_a_listed_state() {
        let t = StoredToken {
            id: "i".into(),
            name: "n".into(),
            tenant: "t".into(),
            scopes: "locks".into(),
            secret_hash: "h".into(),
            created_at: 1,
            expires_at: 0,
            revoked_at: 0,
            last_used_at: 0,
        };
        assert_listed(&[Created {
            text: "x".into(),
            token: t.clone(),
        }]);
        assert_listed(&[Listed(Vec::new())]);
        assert_listed(&[Revoked::Revoked(t), Revoked::Unknown]);
        assert_eq!(Revoked::Unknown.status(), 404);
    }
}
