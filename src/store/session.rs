//! Sessions as SQL stores them, and as their hot copy in Redis carries them. A row is never
//! created by a write to it (no upsert), and an ended session keeps its row, so a late write
//! or a retry finds it ended and changes nothing.

use std::collections::HashMap;

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
    /// 1 at creation, +1 on every write of its data and at its end.
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

/// The fields of a session's hot copy (besides its epoch and version). An ended session's
/// copy carries its state alone.
pub const COPY_FIELDS: [&str; 10] = ["st", "d", "pr", "g", "pg", "c", "it", "ie", "ae", "w"];

impl SessionRow {
    /// Its fields in the hot copy.
    pub fn copy_fields(&self) -> Vec<(&'static str, String)> {
        if self.state != state::ACTIVE {
            return vec![("st", self.state.clone())];
        }
        vec![
            ("st", self.state.clone()),
            ("d", self.data.clone()),
            ("pr", self.principal.clone()),
            ("g", self.generation.to_string()),
            ("pg", self.principal_generation.to_string()),
            ("c", self.created_at.to_string()),
            ("it", self.idle_ttl_ms.to_string()),
            ("ie", self.idle_expires_at.to_string()),
            ("ae", self.absolute_expires_at.to_string()),
            ("w", self.touch_written_at.to_string()),
        ]
    }

    /// The end of session `id_hash` of `tenant` at `version`, as far as a hot copy needs it.
    pub fn ended(tenant: &str, id_hash: &str, to: &str, version: i64) -> Self {
        Self {
            id_hash: id_hash.to_owned(),
            tenant: tenant.to_owned(),
            principal: String::new(),
            data: "{}".into(),
            version,
            generation: 0,
            principal_generation: 0,
            created_at: 0,
            idle_ttl_ms: 0,
            idle_expires_at: 0,
            absolute_expires_at: 0,
            state: to.to_owned(),
            ended_at: 0,
            rotated_to: String::new(),
            touch_written_at: 0,
        }
    }

    /// The row a copy's fields describe, if they are whole.
    pub fn from_copy(
        tenant: &str,
        id_hash: &str,
        version: i64,
        f: &HashMap<&'static str, String>,
    ) -> Option<Self> {
        let st = f.get("st")?;
        if st != state::ACTIVE {
            return Some(Self::ended(tenant, id_hash, st, version));
        }
        let int = |name: &str| f.get(name)?.parse::<i64>().ok();
        Some(Self {
            data: f.get("d")?.clone(),
            principal: f.get("pr")?.clone(),
            generation: int("g")?,
            principal_generation: int("pg")?,
            created_at: int("c")?,
            idle_ttl_ms: int("it")?,
            idle_expires_at: int("ie")?,
            absolute_expires_at: int("ae")?,
            touch_written_at: int("w")?,
            ..Self::ended(tenant, id_hash, st, version)
        })
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

/// How a change finds a session's new data: given its row, the new data and whether the
/// version moves on, or `None` to refuse.
/// It may be called again on a newer row when the session changed after the batch read it.
pub type ChangeFn = Box<dyn Fn(&SessionRow) -> Option<(String, bool)> + Send + Sync>;

/// A change of one live session's data, as the group-commit writer batches them.
pub struct ChangeJob {
    /// Its tenant.
    pub tenant: String,
    /// Its id hash.
    pub id_hash: String,
    /// When (database clock, epoch ms).
    pub now: i64,
    /// The change.
    pub change: ChangeFn,
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
        /// Evicted sessions' id hashes and versions (moved on by the end).
        evicted: Vec<(String, i64)>,
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

impl Changed {
    /// The row as SQL holds it after the change, if there is one.
    pub fn row(&self) -> Option<&SessionRow> {
        match self {
            Self::Done(r) | Self::Refused(Some(r)) => Some(r),
            Self::Refused(None) => None,
        }
    }
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

/// What a limited create finds: room, a refusal, or the number of oldest live sessions to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCreate {
    /// Room for one more.
    Admit,
    /// At the limit, and the policy is `reject`.
    Refuse,
    /// End this many of the oldest live sessions first.
    Evict(usize),
}

/// The session rules the SQL store applies inside its transactions, decided in the domain
/// (`session::rules`): the store is handed them and decides nothing itself.
#[derive(Clone, Copy)]
pub struct SessionRules {
    /// How a row stands at an instant.
    pub standing: fn(&SessionRow, i64) -> Standing,
    /// What a create finds when its principal has `live` live sessions and a limit of `max`.
    pub on_create: fn(usize, i64, OnLimit) -> OnCreate,
}
