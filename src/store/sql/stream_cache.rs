//! What this instance last wrote or read of each PostgreSQL stream, so its next batch need
//! not read the stream again. An entry is the stream as of revision `rev`: its counters
//! exactly; each intent it holds exactly but for the lease (dispatch claims move intents
//! between `ready` and `leased` without a revision); and, when `parked_known`, every parked
//! commit of the stream. Nothing in it is trusted unchecked: a batch writes a stream it took
//! from here only where the revision is still `rev`, and checks the revision of every such
//! stream it only read in the same statement, so a stale entry costs a lost race (the entry is
//! dropped and the stream read), never a wrong answer. A stream found moved by another
//! instance is not held again for [`SHARED_FOR`]: where instances take turns on streams, a
//! cache would only turn every batch into a lost race.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics_names as m;
use crate::store::stream::{Book, Changes, Counters, Intent, IntentState, Wanted};

/// Streams remembered, at most.
const STREAMS: usize = 4_096;
/// Intents remembered per stream, at most: the lowest sequences from [`RECENT`] below the next
/// one to commit (the commits to come, and repeats of the last few).
const INTENTS: usize = 16;
/// Committed intents kept below the next sequence to commit.
const RECENT: i64 = 4;
/// Intents with a larger payload are not remembered (what bounds an entry's memory).
const PAYLOAD_BYTES: usize = 1_024;
/// How long a stream another instance moved is read by every batch instead of held.
const SHARED_FOR: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Entry {
    counters: Counters,
    rev: i64,
    intents: BTreeMap<i64, Intent>,
    parked_known: bool,
}

impl Entry {
    /// Whether the entry holds everything `wanted` asks of `stream`.
    fn covers(&self, stream: &str, wanted: &Wanted) -> bool {
        let ids_known = wanted
            .by_id
            .range((stream.to_owned(), String::new())..)
            .take_while(|(s, _)| s == stream)
            .all(|(_, id)| self.intents.values().any(|i| &i.intent_id == id));
        // A sequence above the last assigned has no intent.
        let seqs_known = wanted
            .by_seq
            .range((stream.to_owned(), i64::MIN)..)
            .take_while(|(s, _)| s == stream)
            .all(|(_, seq)| self.intents.contains_key(seq) || *seq > self.counters.assigned);
        ids_known && seqs_known && (self.parked_known || !wanted.parked.contains(stream))
    }
}

/// The streams a batch took from the cache, with the revisions it found them at.
#[derive(Debug, Default)]
pub(super) struct Served {
    revs: BTreeMap<String, i64>,
}

impl Served {
    /// Whether the batch took nothing from the cache.
    pub(super) fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// The streams taken from the cache that `changes` does not write, with their revisions:
    /// the write must check them unchanged.
    pub(super) fn unchanged(&self, changes: &Changes) -> Vec<(&str, i64)> {
        let written: BTreeSet<&str> = changes.streams.iter().map(|c| &*c.stream).collect();
        self.revs
            .iter()
            .filter(|(s, _)| !written.contains(s.as_str()))
            .map(|(s, rev)| (s.as_str(), *rev))
            .collect()
    }
}

/// The streams of one SQL tier, as its batches last left them.
#[derive(Debug, Default)]
pub(crate) struct StreamCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Streams another instance moved, until when they are not held.
    shared: HashMap<String, Instant>,
}

impl Inner {
    fn shared(&self, stream: &str, now: Instant) -> bool {
        self.shared.get(stream).is_some_and(|until| *until > now)
    }
}

/// Makes room for one more key in a map bounded at [`STREAMS`] (any key goes).
fn room_for<V>(map: &mut HashMap<String, V>, key: &str) {
    if map.len() >= STREAMS && !map.contains_key(key) {
        if let Some(evicted) = map.keys().next().cloned() {
            map.remove(&evicted);
        }
    }
}

impl StreamCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads into `book` every wanted stream whose entry holds all the batch wants of it;
    /// returns those streams and what is left to read.
    pub(super) fn serve(&self, wanted: &Wanted, book: &mut Book) -> (Served, Wanted) {
        let mut served = Served::default();
        let mut shared = 0;
        // Review items are not remembered: the rare batches that want them read everything.
        if wanted.reviews.is_empty() && wanted.open_reviews.is_empty() {
            let inner = self.inner();
            let now = Instant::now();
            for s in &wanted.streams {
                if inner.shared(s, now) {
                    shared += 1;
                    continue;
                }
                let Some(e) = inner.entries.get(s).filter(|e| e.covers(s, wanted)) else {
                    continue;
                };
                book.load_stream(s.clone(), e.counters, e.rev);
                for i in e.intents.values() {
                    book.load_intent(i.clone());
                }
                served.revs.insert(s.clone(), e.rev);
            }
        }
        let hits = served.revs.len() as u64;
        metrics::counter!(m::STREAM_CACHE, "result" => "hit").increment(hits);
        metrics::counter!(m::STREAM_CACHE, "result" => "shared").increment(shared);
        let misses = wanted.streams.len() as u64 - hits - shared;
        metrics::counter!(m::STREAM_CACHE, "result" => "miss").increment(misses);
        let rest = residual(wanted, &served);
        (served, rest)
    }

    /// Remembers every stream of `book` as its batch, now written as `changes`, left it.
    pub(super) fn remember(
        &self,
        book: &Book,
        changes: &Changes,
        served: &Served,
        wanted: &Wanted,
    ) {
        let written: HashMap<&str, Option<i64>> = changes
            .streams
            .iter()
            .map(|c| (&*c.stream, c.rev))
            .collect();
        let mut inner = self.inner();
        let now = Instant::now();
        for s in book.stream_names() {
            if inner.shared(s, now) {
                continue;
            }
            let rev = match written.get(s.as_str()) {
                // A stream this batch created is at revision 1.
                Some(read_at) => read_at.map_or(1, |r| r + 1),
                None => match book.rev(s) {
                    Some(r) => r,
                    None => continue,
                },
            };
            let Some(counters) = book.stream(s) else {
                continue;
            };
            // Every parked commit is known if the batch loaded them, or created the stream, or
            // took a stream from the cache that knew them.
            let entries = &mut inner.entries;
            let mut parked_known = if served.revs.contains_key(s) {
                entries.get(s).is_some_and(|e| e.parked_known)
            } else {
                wanted.parked.contains(s) || book.rev(s).is_none()
            };
            let mut intents = BTreeMap::new();
            for i in book.intents_of(s) {
                let keep = i.seq > counters.last_committed - RECENT
                    && intents.len() < INTENTS
                    && i.payload.len() <= PAYLOAD_BYTES;
                if keep {
                    intents.insert(i.seq, i.clone());
                } else if i.state == IntentState::Waiting {
                    parked_known = false;
                }
            }
            if entries.get(s).is_some_and(|e| e.rev > rev) {
                continue;
            }
            room_for(entries, s);
            let entry = Entry {
                counters,
                rev,
                intents,
                parked_known,
            };
            entries.insert(s.clone(), entry);
        }
    }

    /// Drops the entries of `streams` (a batch lost a race on them).
    pub(super) fn forget(&self, streams: &BTreeSet<String>) {
        let mut inner = self.inner();
        for s in streams {
            inner.entries.remove(s);
        }
    }

    /// After a batch that took `lost` from the cache lost its race: marks shared every stream
    /// of it that `book`, read since, shows at another revision (another instance moved it).
    pub(super) fn mark_moved(&self, lost: &Served, book: &Book) {
        if lost.is_empty() {
            return;
        }
        let mut inner = self.inner();
        let until = Instant::now() + SHARED_FOR;
        for (s, rev) in &lost.revs {
            if book.rev(s).is_some_and(|now| now != *rev) {
                tracing::debug!(stream = %s, "stream moved by another instance; read, not held");
                room_for(&mut inner.shared, s);
                inner.shared.insert(s.clone(), until);
            }
        }
    }

    /// Drops every entry (the database may have changed under them).
    pub(super) fn clear(&self) {
        self.inner().entries.clear();
    }
}

/// What `wanted` asks of the streams not served from the cache.
fn residual(wanted: &Wanted, served: &Served) -> Wanted {
    if served.is_empty() {
        return wanted.clone();
    }
    let rest = |s: &String| !served.revs.contains_key(s);
    Wanted {
        streams: wanted.streams.iter().filter(|s| rest(s)).cloned().collect(),
        create: wanted.create.iter().filter(|s| rest(s)).cloned().collect(),
        by_id: wanted
            .by_id
            .iter()
            .filter(|k| rest(&k.0))
            .cloned()
            .collect(),
        new_ids: wanted
            .new_ids
            .iter()
            .filter(|k| rest(&k.0))
            .cloned()
            .collect(),
        by_seq: wanted
            .by_seq
            .iter()
            .filter(|k| rest(&k.0))
            .cloned()
            .collect(),
        parked: wanted.parked.iter().filter(|s| rest(s)).cloned().collect(),
        reviews: wanted.reviews.clone(),
        open_reviews: wanted.open_reviews.clone(),
    }
}

#[cfg(test)]
mod tests;
