//! `local` mode: each instance's own GCRA buckets, used while the active tier is SQL. Memory
//! is bounded (`ratelimit.local_max_buckets`; drained buckets go first, since forgetting one
//! loses nothing), and a new bucket starts with no burst.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use super::rules::{count, Bucket};
use crate::store::ratelimit::{Applied, Counted, Step};

const SHARDS: usize = 16;

/// The buckets of one subject under one policy.
struct Entry {
    buckets: Vec<Bucket>,
    /// The limits they were last counted under: when a policy changes, the levels are kept,
    /// clamped to the new capacities.
    applied: Vec<Applied>,
}

/// Every `local` bucket of this instance.
pub struct LocalBuckets {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    per_shard: usize,
}

impl LocalBuckets {
    /// Room for about `max` subjects.
    pub fn new(max: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (max / SHARDS).max(1),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Entry>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[h.finish() as usize % SHARDS]
    }

    /// Runs `step` on `key`'s buckets at `now_us`.
    pub fn count(
        &self,
        key: &str,
        step: Step,
        limits: &[Applied],
        cost: i64,
        now_us: i64,
    ) -> Counted {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let fresh = || Entry {
            buckets: limits
                .iter()
                .map(|a| Bucket::fresh(a.capacity, now_us))
                .collect(),
            applied: limits.to_vec(),
        };
        if step == Step::Peek {
            let mut entry = map.get(key).map_or_else(fresh, |e| Entry {
                buckets: e.buckets.clone(),
                applied: e.applied.clone(),
            });
            fit(&mut entry, limits, now_us);
            return count(step, &mut entry.buckets, limits, cost, now_us);
        }
        if !map.contains_key(key) && map.len() >= self.per_shard {
            evict(&mut map, now_us, self.per_shard);
        }
        let entry = map.entry(key.to_owned()).or_insert_with(fresh);
        fit(entry, limits, now_us);
        count(step, &mut entry.buckets, limits, cost, now_us)
    }

    /// Forgets `key`'s buckets (a reset: the next check starts without burst).
    pub fn clear(&self, key: &str) {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }

    /// Forgets every bucket (on entering `local` mode: buckets of an earlier spell have
    /// drained and would release a burst).
    pub fn clear_all(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Subjects held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no subject is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps an entry's levels across a policy change, clamped to the new capacities.
fn fit(entry: &mut Entry, limits: &[Applied], now_us: i64) {
    if entry.applied == limits {
        return;
    }
    let mut buckets = Vec::with_capacity(limits.len());
    for (i, a) in limits.iter().enumerate() {
        buckets.push(match entry.buckets.get(i) {
            Some(b) => Bucket {
                level: b.level.min(a.capacity as f64),
                at_us: b.at_us,
            },
            None => Bucket::fresh(a.capacity, now_us),
        });
    }
    entry.buckets = buckets;
    entry.applied = limits.to_vec();
}

/// Makes room in a full shard: drained buckets first, then the longest idle.
fn evict(map: &mut HashMap<String, Entry>, now_us: i64, room: usize) {
    map.retain(|_, e| {
        e.buckets
            .iter()
            .zip(&e.applied)
            .any(|(b, a)| b.level_at(a, now_us) > 0.0)
    });
    while map.len() >= room {
        let oldest = map
            .iter()
            .min_by_key(|(_, e)| e.buckets.iter().map(|b| b.at_us).max().unwrap_or(0))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(capacity: i64) -> Applied {
        Applied {
            algorithm: "g",
            rate: 10.0,
            period_us: 1_000_000,
            capacity,
        }
    }

    #[test]
    fn memory_stays_bounded_and_a_smaller_capacity_keeps_the_level() {
        let b = LocalBuckets::new(32);
        for i in 0..1000 {
            b.count(&format!("s{i}"), Step::Check, &[applied(5)], 1, 0);
        }
        assert!(b.len() <= 32, "{}", b.len());
        let key = "kept";
        b.count(key, Step::Check, &[applied(10)], 1, 0);
        let c = b.count(key, Step::Peek, &[applied(3)], 1, 0);
        assert_eq!(c.limits[0].remaining, 0, "level 10 clamped to capacity 3");
        b.clear(key);
        let c = b.count(key, Step::Peek, &[applied(3)], 1, 0);
        assert_eq!(c.limits[0].remaining, 1, "fresh: one unit, no burst");
    }
}
