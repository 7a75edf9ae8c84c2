//! Which keys this instance has seen with a hot copy: a fixed-size, lock-free, direct-mapped
//! table of key hashes. Only a routing hint — a begin of a key not in it goes straight to SQL
//! (which decides every claim anyway), and one in it reads the copy first — so a stale or
//! evicted entry costs at most one Redis read, never a wrong answer.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries kept (a power of two); 8 bytes each.
const SLOTS: usize = 1 << 18;

/// The table. Slot `h mod SLOTS` holds hash `h` of the last key seen there, 0 when empty.
pub(crate) struct KnownCopies {
    hasher: std::collections::hash_map::RandomState,
    slots: Box<[AtomicU64]>,
}

impl Default for KnownCopies {
    fn default() -> Self {
        Self {
            hasher: Default::default(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl KnownCopies {
    /// The key's hash, never 0 (the empty mark), and its slot.
    fn locate(&self, key: &str) -> (u64, &AtomicU64) {
        let h = self.hasher.hash_one(key).max(1);
        (h, &self.slots[h as usize & (SLOTS - 1)])
    }

    /// Whether `key` was last seen with a copy here (or collides with one that was: harmless).
    pub(crate) fn contains(&self, key: &str) -> bool {
        let (h, slot) = self.locate(key);
        slot.load(Ordering::Relaxed) == h
    }

    /// Notes that `key` has a copy now, displacing whatever shared its slot.
    pub(crate) fn insert(&self, key: &str) {
        let (h, slot) = self.locate(key);
        slot.store(h, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_it_was_told_and_nothing_else() {
        let known = KnownCopies::default();
        assert!(!known.contains("order-1"));
        known.insert("order-1");
        assert!(known.contains("order-1"));
        assert!(!known.contains("order-2"));
        // Bounded: far more keys than slots only displace entries.
        for i in 0..(SLOTS * 2) {
            known.insert(&format!("k{i}"));
        }
        assert_eq!(known.slots.len(), SLOTS);
        assert!(known.contains(&format!("k{}", SLOTS * 2 - 1)));
    }
}
