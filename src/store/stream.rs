//! Causal streams as both tiers store them, and the [`Book`]: the rows of one batch, loaded
//! under their streams' locks, changed in memory by the domain rules and written back in the
//! same transaction. Nothing in a book is durable until that transaction commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use crate::runtime::correlation::Correlation;
use crate::store::StoreError;

/// The hot copy of each stream's counters (the Redis tier): raised only to values SQL has
/// committed, so it may lag but never leads, and "already committed" may be trusted from it.
pub trait StreamCopy: Send + Sync {
    /// Raises the copy of `stream` to `c` (field by field; never lowers).
    fn stream_raise(
        &self,
        stream: &str,
        c: Counters,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The copy of `stream`, if any: a lower bound of SQL's counters.
    fn stream_copy(
        &self,
        stream: &str,
    ) -> impl Future<Output = Result<Option<Counters>, StoreError>> + Send;
}

/// The counters of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Last assigned `commit_sequence` (the next intent gets `assigned + 1`).
    pub assigned: i64,
    /// Last committed `commit_sequence`.
    pub last_committed: i64,
    /// Bumped by every commit.
    pub version: i64,
}

/// Lifecycle of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    /// Waiting to be dispatched.
    Ready,
    /// Leased to a worker until `lease_until` (then ready again).
    Leased,
    /// Its commit arrived early and is parked until its predecessor commits.
    Waiting,
    /// Committed (its effect is part of the stream).
    Committed,
    /// Held for a human (see the review queue).
    Review,
}

impl IntentState {
    /// Name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Leased => "leased",
            Self::Waiting => "waiting",
            Self::Committed => "committed",
            Self::Review => "review",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Ready,
            Self::Leased,
            Self::Waiting,
            Self::Committed,
            Self::Review,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Stream.
    pub stream: String,
    /// Position in the stream's commit order.
    pub seq: i64,
    /// Client id, unique per stream.
    pub intent_id: String,
    /// Dispatch priority (higher first); never changes `seq`.
    pub priority: i64,
    /// Type (selects the replay TTL).
    pub intent_type: String,
    /// Raw JSON payload.
    pub payload: String,
    /// Arrival, epoch ms.
    pub arrived_at: i64,
    /// Lifecycle state.
    pub state: IntentState,
    /// Worker of the current lease.
    pub worker: String,
    /// Lease end, epoch ms.
    pub lease_until: i64,
    /// `expected_version` of a parked commit, -1 for none.
    pub expected_version: i64,
    /// When its commit was parked, epoch ms.
    pub waiting_since: i64,
    /// Stream version its commit produced.
    pub committed_version: i64,
    /// When it committed, epoch ms.
    pub committed_at: i64,
    /// Replays authorised so far.
    pub replays: i64,
    /// The correlation of the request that took it in, handed to its workers.
    pub correlation: Correlation,
    /// Held for review instead of committed while the guard is degraded (§8).
    pub sensitive: bool,
}

impl Intent {
    /// A new intent at `seq`, ready for dispatch: no lease, no commit, no replay yet.
    pub fn arrived(
        stream: String,
        seq: i64,
        intent_id: String,
        (priority, intent_type, payload): (i64, String, String),
        arrived_at: i64,
        correlation: Correlation,
    ) -> Self {
        Self {
            stream,
            seq,
            intent_id,
            priority,
            intent_type,
            payload,
            arrived_at,
            state: IntentState::Ready,
            worker: String::new(),
            lease_until: 0,
            expected_version: -1,
            waiting_since: 0,
            committed_version: 0,
            committed_at: 0,
            replays: 0,
            correlation,
            sensitive: false,
        }
    }
}

/// Whether a review item still needs a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    /// Waiting for a decision.
    Open,
    /// Decided (`action`, `actor`).
    Resolved,
}

impl ReviewState {
    /// Name stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

/// One item of the manual review queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    /// Id.
    pub id: String,
    /// Created, epoch ms.
    pub created_at: i64,
    /// `causal_timeout`, `expired_replay` or `version_conflict`.
    pub reason: String,
    /// Stream.
    pub stream: String,
    /// Intent.
    pub intent_id: String,
    /// Its sequence.
    pub seq: i64,
    /// What happened, for the reviewer.
    pub detail: String,
    /// Open or resolved.
    pub state: ReviewState,
    /// The action taken.
    pub action: String,
    /// Who took it.
    pub actor: String,
    /// The actor's note.
    pub note: String,
    /// Resolved, epoch ms (0 while open).
    pub resolved_at: i64,
}

pub use crate::audit::Audit;

/// What a batch needs loaded and locked.
#[derive(Debug, Default, Clone)]
pub struct Wanted {
    /// Streams to lock; those in `create` are created if missing.
    pub streams: BTreeSet<String>,
    /// Streams that intakes may create.
    pub create: BTreeSet<String>,
    /// Intents by `(stream, intent_id)`.
    pub by_id: BTreeSet<(String, String)>,
    /// Intents by `(stream, intent_id)` that intakes look for: one found is answered as a
    /// repeat, one absent is created — and the insert's unique `(stream, intent_id)` catches
    /// one that exists but was not loaded, so a batch may skip reading these.
    pub new_ids: BTreeSet<(String, String)>,
    /// Intents by `(stream, seq)`.
    pub by_seq: BTreeSet<(String, i64)>,
    /// Streams whose parked commits are needed (a commit may cascade through them).
    pub parked: BTreeSet<String>,
    /// Review items by id.
    pub reviews: BTreeSet<String>,
    /// Open review items of these `(stream, intent_id)`.
    pub open_reviews: BTreeSet<(String, String)>,
}

/// The rows of one batch and the changes the rules made to them.
#[derive(Debug, Default)]
pub struct Book {
    streams: HashMap<String, Counters>,
    /// Revision of each loaded stream row; streams created in this batch have none.
    revs: HashMap<String, i64>,
    /// Intents as loaded, before the rules changed them: only those that changed.
    originals: HashMap<(String, i64), Intent>,
    intents: BTreeMap<(String, i64), Intent>,
    ids: HashMap<(String, String), i64>,
    reviews: HashMap<String, ReviewItem>,
    dirty_streams: BTreeSet<String>,
    new_intents: BTreeSet<(String, i64)>,
    dirty_intents: BTreeSet<(String, i64)>,
    new_reviews: BTreeSet<String>,
    dirty_reviews: BTreeSet<String>,
    audits: Vec<Audit>,
}

/// A stream a batch changed (its counters, or any of its intents or review items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChange {
    /// Stream.
    pub stream: String,
    /// Its counters now.
    pub counters: Counters,
    /// The revision it was read at; `None` for a stream this batch creates.
    pub rev: Option<i64>,
}

/// The changes of a book, to be written back.
#[derive(Debug, Default)]
pub struct Changes {
    /// Every stream the batch changed.
    pub streams: Vec<StreamChange>,
    /// Intents to insert.
    pub new_intents: Vec<Intent>,
    /// Intents to update.
    pub intents: Vec<Intent>,
    /// The same intents as they were read, in the same order.
    pub before: Vec<Intent>,
    /// Review items to insert.
    pub new_reviews: Vec<ReviewItem>,
    /// Review items to update.
    pub reviews: Vec<ReviewItem>,
    /// Audit rows to append.
    pub audits: Vec<Audit>,
}

impl Book {
    /// The revision a stream row was loaded at; `None` for a stream not loaded or created by
    /// this batch.
    pub fn rev(&self, stream: &str) -> Option<i64> {
        self.revs.get(stream).copied()
    }

    /// The streams in the book, loaded or created.
    pub fn stream_names(&self) -> impl Iterator<Item = &String> {
        self.streams.keys()
    }

    /// The intents of `stream` in the book (as changed), in sequence order.
    pub fn intents_of<'a>(&'a self, stream: &str) -> impl Iterator<Item = &'a Intent> + 'a {
        let from = (stream.to_owned(), i64::MIN);
        let owner = stream.to_owned();
        self.intents
            .range(from..)
            .take_while(move |((s, _), _)| *s == owner)
            .map(|(_, i)| i)
    }

    /// Adds a stream row as loaded at revision `rev`.
    pub fn load_stream(&mut self, stream: String, c: Counters, rev: i64) {
        self.revs.insert(stream.clone(), rev);
        self.streams.insert(stream, c);
    }

    /// Adds a stream that does not exist yet (created when the batch is written).
    pub fn new_stream(&mut self, stream: String) {
        self.streams.entry(stream).or_default();
    }

    /// Adds an intent as loaded.
    pub fn load_intent(&mut self, i: Intent) {
        let k = (i.stream.clone(), i.seq);
        // A pre-image is taken when an intent first changes (most loaded intents never do);
        // one loaded again after a change has the loaded row as its pre-image.
        if self.dirty_intents.contains(&k) {
            self.originals.insert(k.clone(), i.clone());
        }
        self.ids
            .insert((i.stream.clone(), i.intent_id.clone()), i.seq);
        self.intents.insert(k, i);
    }

    /// Adds a review item as loaded.
    pub fn load_review(&mut self, r: ReviewItem) {
        self.reviews.insert(r.id.clone(), r);
    }

    /// The counters of a locked stream.
    pub fn stream(&self, stream: &str) -> Option<Counters> {
        self.streams.get(stream).copied()
    }

    /// Changes the counters of a locked stream.
    pub fn set_stream(&mut self, stream: &str, c: Counters) {
        if let Some(slot) = self.streams.get_mut(stream) {
            *slot = c;
            self.dirty_streams.insert(stream.to_owned());
        }
    }

    /// The sequence of `intent_id` in `stream`, if loaded.
    pub fn seq_of(&self, stream: &str, intent_id: &str) -> Option<i64> {
        self.ids
            .get(&(stream.to_owned(), intent_id.to_owned()))
            .copied()
    }

    /// The intent at `(stream, seq)`, if loaded.
    pub fn intent(&self, stream: &str, seq: i64) -> Option<&Intent> {
        self.intents.get(&(stream.to_owned(), seq))
    }

    /// Changes a loaded intent through `f`.
    pub fn update_intent(&mut self, stream: &str, seq: i64, f: impl FnOnce(&mut Intent)) {
        let k = (stream.to_owned(), seq);
        if let Some(i) = self.intents.get_mut(&k) {
            let loaded = !self.new_intents.contains(&k);
            if loaded && !self.dirty_intents.contains(&k) {
                self.originals.insert(k.clone(), i.clone());
            }
            f(i);
            if loaded {
                self.dirty_intents.insert(k);
            }
        }
    }

    /// Adds a new intent.
    pub fn insert_intent(&mut self, i: Intent) {
        let k = (i.stream.clone(), i.seq);
        self.new_intents.insert(k);
        self.load_intent(i);
    }

    /// A loaded review item.
    pub fn review(&self, id: &str) -> Option<&ReviewItem> {
        self.reviews.get(id)
    }

    /// The open review item of `(stream, intent_id)` with `reason`, if loaded or added.
    pub fn open_review(&self, stream: &str, intent_id: &str, reason: &str) -> Option<&ReviewItem> {
        self.reviews.values().find(|r| {
            r.state == ReviewState::Open
                && r.stream == stream
                && r.intent_id == intent_id
                && r.reason == reason
        })
    }

    /// Adds a new review item.
    pub fn insert_review(&mut self, r: ReviewItem) {
        self.new_reviews.insert(r.id.clone());
        self.reviews.insert(r.id.clone(), r);
    }

    /// Changes a loaded review item through `f`.
    pub fn update_review(&mut self, id: &str, f: impl FnOnce(&mut ReviewItem)) {
        if let Some(r) = self.reviews.get_mut(id) {
            f(r);
            if !self.new_reviews.contains(id) {
                self.dirty_reviews.insert(id.to_owned());
            }
        }
    }

    /// Appends an audit row.
    pub fn audit(&mut self, a: Audit) {
        self.audits.push(a);
    }

    /// Takes the changes out of the book.
    pub fn changes(&mut self) -> Changes {
        let audits = std::mem::take(&mut self.audits);
        let intent = |k: &(String, i64)| self.intents[k].clone();
        let review = |id: &String| self.reviews[id].clone();
        let mut touched = self.dirty_streams.clone();
        touched.extend(self.new_intents.iter().map(|(s, _)| s.clone()));
        touched.extend(self.dirty_intents.iter().map(|(s, _)| s.clone()));
        let reviewed = self.new_reviews.iter().chain(&self.dirty_reviews);
        touched.extend(reviewed.map(|id| self.reviews[id].stream.clone()));
        Changes {
            streams: touched
                .into_iter()
                .filter_map(|s| {
                    let counters = *self.streams.get(&s)?;
                    let rev = self.revs.get(&s).copied();
                    Some(StreamChange {
                        stream: s,
                        counters,
                        rev,
                    })
                })
                .collect(),
            new_intents: self.new_intents.iter().map(intent).collect(),
            intents: self.dirty_intents.iter().map(intent).collect(),
            before: self
                .dirty_intents
                .iter()
                .map(|k| self.originals[k].clone())
                .collect(),
            new_reviews: self.new_reviews.iter().map(review).collect(),
            reviews: self.dirty_reviews.iter().map(review).collect(),
            audits,
        }
    }
}

/// A page of the review queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewFilter {
    /// Open items.
    Open,
    /// Resolved items.
    Resolved,
    /// Both.
    All,
}
