//! Idempotency records as both tiers store them. SQL holds the truth; a Redis copy is only
//! ever replaced by a record that ranks at least as high ([`IdemRecord::outranks`]), so a
//! stale copy can delay an answer but never change a recorded one.

use std::future::Future;

use crate::key::Key;
use crate::runtime::correlation::Correlation;
use crate::store::StoreError;

/// The hot copy of idempotency records (the Redis tier): it answers replays of completed keys
/// in one round trip; SQL arbitrates and draws every claim.
pub trait IdemCopy: Send + Sync {
    /// The copy of `key`'s record, if any (a durable record seeded from SQL, or a claim an
    /// earlier version wrote; only a completed copy answers a `begin`).
    fn idem_peek(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<IdemRecord>, StoreError>> + Send;

    /// Makes the copy of `rec.key` match the durable `rec`, unless the copy ranks higher; a
    /// copy holding `replace` (a token this caller drew) is always replaced. Returns whether
    /// the copy now matches.
    fn idem_seed(
        &self,
        rec: &IdemRecord,
        replace: Option<i64>,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Lifecycle of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdemState {
    /// Claimed by the holder of `token` until `lease_until`.
    InProgress,
    /// Finished: `response` is the saved result.
    Completed,
    /// Given up by its holder: the key may be begun again.
    Released,
}

impl IdemState {
    /// Name stored in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Released => "released",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in_progress" => Some(Self::InProgress),
            "completed" => Some(Self::Completed),
            "released" => Some(Self::Released),
            _ => None,
        }
    }

    /// Order among records with the same token: a completion supersedes its claim.
    fn rank(self) -> u8 {
        match self {
            Self::Released => 0,
            Self::InProgress => 1,
            Self::Completed => 2,
        }
    }
}

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    /// The idempotency key.
    pub key: String,
    /// Lifecycle state.
    pub state: IdemState,
    /// Token of the claim (a fencing token: larger for every later claim of the key).
    pub token: i64,
    /// Fingerprint of the request, `""` when none was given.
    pub fingerprint: String,
    /// End of the claim's lease, epoch ms (meaningful while in progress).
    pub lease_until: i64,
    /// When the record is forgotten, epoch ms.
    pub expires_at: i64,
    /// The saved response (raw JSON text) once completed.
    pub response: Option<String>,
    /// The correlation of the request that claimed it (handed back with its replays).
    pub correlation: Correlation,
}

impl IdemRecord {
    /// Whether the record still exists at `now`.
    pub fn live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    /// Whether this record may replace `other` as a copy: a later token, or the same token
    /// further along its lifecycle.
    pub fn outranks(&self, other: &IdemRecord) -> bool {
        (self.token, self.state.rank()) >= (other.token, other.state.rank())
    }
}

/// Two fingerprints conflict when both were given and differ.
pub fn fingerprints_conflict(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && a != b
}

/// One durable idempotency write, applied conditionally by the SQL tier.
#[derive(Debug, Clone)]
pub enum IdemWrite {
    /// Claims `key`, if it is free at `now` (absent, expired, released, or an expired lease
    /// with a compatible fingerprint). `token: Some` is a token Redis already drew (it must
    /// exceed the stored one); `None` lets SQL draw one above `base`, the stored token and the
    /// reaped floor.
    Claim {
        /// Key.
        key: String,
        /// A token drawn by Redis, or `None`.
        token: Option<i64>,
        /// `token_base(epoch)`: the least token SQL may draw.
        base: i64,
        /// Request fingerprint (`""` for none).
        fingerprint: String,
        /// Lease end, epoch ms.
        lease_until: i64,
        /// Record expiry, epoch ms.
        expires_at: i64,
        /// The caller's clock (database time).
        now: i64,
        /// The correlation of the claiming request.
        correlation: Correlation,
    },
    /// Records the result of the claim `token`, if it is still the key's claim.
    Complete {
        /// Key.
        key: String,
        /// The claim's token.
        token: i64,
        /// Raw JSON response.
        response: String,
        /// The caller's clock.
        now: i64,
    },
    /// Gives up the claim `token`.
    Release {
        /// Key.
        key: String,
        /// The claim's token.
        token: i64,
        /// The caller's clock.
        now: i64,
    },
    /// Moves the lease end of the claim `token`.
    Extend {
        /// Key.
        key: String,
        /// The claim's token.
        token: i64,
        /// New lease end, epoch ms.
        lease_until: i64,
        /// The caller's clock.
        now: i64,
    },
}

impl IdemWrite {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Self::Claim { key, .. }
            | Self::Complete { key, .. }
            | Self::Release { key, .. }
            | Self::Extend { key, .. } => key,
        }
    }
}

/// The outcome of one [`IdemWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemWritten {
    /// The write took effect; the record as it now stands.
    Applied(IdemRecord),
    /// The write's condition failed; the record as it stands (if any).
    Refused(Option<IdemRecord>),
}
