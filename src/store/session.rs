//! Sessions as SQL stores them. A row is never created by a write to it (no upsert), and an
//! ended session keeps its row, so a late write or a retry finds it ended and changes nothing.

/// How a session is, as stored.
pub mod state {
    /// Live until its idle or absolute expiry.
    pub const ACTIVE: &str = "active";
    /// Deleted, or logged out everywhere.
    pub const REVOKED: &str = "revoked";
    /// Replaced by a new id.
    pub const ROTATED: &str = "rotated";
    /// Ended to make room under `max_per_principal`.
    pub const EVICTED: &str = "evicted";
    /// Past its idle or absolute expiry (marked by the sweeper).
    pub const EXPIRED: &str = "expired";
}

/// A session row, with its principal's current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session id, hex.
    pub id_hash: String,
    /// Its tenant.
    pub tenant: String,
    /// Its principal (`""` for none).
    pub principal: String,
    /// Its data, a JSON object as text.
    pub data: String,
    /// 1 at creation, +1 on every write of its data.
    pub version: i64,
    /// The principal's generation when it was created.
    pub generation: i64,
    /// The principal's generation now (0 without a principal).
    pub principal_generation: i64,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Idle TTL, ms.
    pub idle_ttl_ms: i64,
    /// Idle expiry, epoch ms (slides with touches).
    pub idle_expires_at: i64,
    /// Absolute expiry, epoch ms.
    pub absolute_expires_at: i64,
    /// One of [`state`].
    pub state: String,
    /// When it ended, epoch ms (0 while active).
    pub ended_at: i64,
    /// Its successor's id hash when rotated.
    pub rotated_to: String,
    /// When a touch was last written, epoch ms.
    pub touch_written_at: i64,
}

/// How a session stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Live.
    Active,
    /// Past an expiry.
    Expired,
    /// Ended: revoked, rotated or evicted (a [`state`] name).
    Ended(&'static str),
}

impl SessionRow {
    /// How it stands at `now`: a session whose principal logged out everywhere since its
    /// creation is revoked, whatever its row says.
    pub fn standing(&self, now: i64) -> Standing {
        match self.state.as_str() {
            state::ACTIVE if self.generation < self.principal_generation => {
                Standing::Ended(state::REVOKED)
            }
            state::ACTIVE if self.idle_expires_at <= now || self.absolute_expires_at <= now => {
                Standing::Expired
            }
            state::ACTIVE => Standing::Active,
            state::EXPIRED => Standing::Expired,
            state::ROTATED => Standing::Ended(state::ROTATED),
            state::EVICTED => Standing::Ended(state::EVICTED),
            _ => Standing::Ended(state::REVOKED),
        }
    }
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of its id, hex.
    pub id_hash: String,
    /// Its tenant.
    pub tenant: String,
    /// Its principal (`""` for none).
    pub principal: String,
    /// Its data, a JSON object as text.
    pub data: String,
    /// Idle TTL, ms.
    pub idle_ttl_ms: i64,
    /// Absolute TTL, ms.
    pub absolute_ttl_ms: i64,
}

/// One create, as the group-commit writer batches them.
#[derive(Debug, Clone)]
pub struct CreateJob {
    /// The session.
    pub new: NewSession,
    /// At most this many live sessions for its principal, and what to do beyond.
    pub limit: Option<(i64, OnLimit)>,
    /// When (database clock, epoch ms).
    pub now: i64,
    /// The correlation id of the request.
    pub correlation_id: String,
}

/// What to do when a principal has `max_per_principal` live sessions already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimit {
    /// Refuse the new one.
    Reject,
    /// End the oldest to make room.
    EvictOldest,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedRow {
    /// Created; the id hashes of the sessions evicted to make room.
    Created {
        /// The new row.
        row: Box<SessionRow>,
        /// Evicted sessions' id hashes.
        evicted: Vec<String>,
    },
    /// The principal is at its limit and the policy is `reject`.
    LimitReached,
}

/// What a conditional change of one session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Done; the row as it now stands.
    Done(SessionRow),
    /// Not done: the row as it stands (ended, expired, or at another version), or `None` when
    /// there is no such session.
    Refused(Option<SessionRow>),
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// Position in the feed.
    pub seq: i64,
    /// `created`, `rotated`, `revoked`, `expired` or `evicted`.
    pub kind: String,
    /// The session's id hash.
    pub id_hash: String,
    /// Its principal.
    pub principal: String,
    /// When, epoch ms.
    pub at: i64,
    /// The correlation id of the request (or task) that caused it.
    pub correlation_id: String,
}
