//! Access tokens as stored: only a token's hash is kept, never the secret, so a read of the
//! store cannot be replayed as a caller.

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Public id (the `<id>` of `wdn_<id>_<secret>`).
    pub id: String,
    /// Who it is: the actor recorded for its audited actions.
    pub name: String,
    /// The tenant whose objects it acts on.
    pub tenant: String,
    /// Scope names, space-separated.
    pub scopes: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Expiry, epoch ms; 0 for none.
    pub expires_at: i64,
    /// Revocation, epoch ms; 0 while valid.
    pub revoked_at: i64,
    /// Last use, epoch ms (written at most once a minute); 0 if never used.
    pub last_used_at: i64,
}
