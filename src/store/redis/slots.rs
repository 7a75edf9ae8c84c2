//! Per-slot keys: one epoch gate and one grant counter per Redis Cluster hash slot, so the
//! acquire script reads the gate and draws a token in its own slot in one atomic step (a global
//! key would be a cross-slot access), and the counters stay bounded however many keys exist.

use std::collections::HashMap;
use std::sync::OnceLock;

use redis::cluster_routing::Slot;

/// Number of Redis Cluster hash slots.
pub const SLOTS: usize = 16_384;

/// For each slot, a short hash tag that maps to it.
fn tags() -> &'static HashMap<Slot, String> {
    static TAGS: OnceLock<HashMap<Slot, String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = HashMap::with_capacity(SLOTS);
        let mut n: u64 = 0;
        while tags.len() < SLOTS {
            let tag = n.to_string();
            tags.entry(Slot::for_key(tag.as_bytes())).or_insert(tag);
            n += 1;
        }
        tags
    })
}

/// The gate and counter keys of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotKeys {
    /// The epoch gate.
    pub gate: String,
    /// The grant counter.
    pub counter: String,
}

fn keys(slot: Slot) -> SlotKeys {
    let tag = &tags()[&slot];
    SlotKeys {
        gate: format!("warden:{{{tag}}}:epoch"),
        counter: format!("warden:{{{tag}}}:ctr"),
    }
}

/// The gate and counter of the slot that `key` (a full Redis key) lives in.
pub fn slot_keys(key: &str) -> SlotKeys {
    keys(Slot::for_key(key.as_bytes()))
}

/// Every slot's gate and counter.
pub fn all_slots() -> impl Iterator<Item = SlotKeys> {
    (0..SLOTS as u16).filter_map(Slot::new).map(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_key_shares_the_slot_of_its_lock_keys() {
        assert_eq!(all_slots().count(), SLOTS);
        for key in [
            "warden:{a}:lock",
            "warden:{ключ/{x}}:lock",
            "warden:{}:lock",
        ] {
            let k = slot_keys(key);
            for g in [&k.gate, &k.counter] {
                assert_eq!(
                    Slot::for_key(g.as_bytes()),
                    Slot::for_key(key.as_bytes()),
                    "{g}"
                );
            }
        }
    }

    #[test]
    fn a_tree_is_one_slot_and_apart_from_plain_keys() {
        use crate::key::Key;
        use crate::store::redis::tagged;
        let leaf = Key::scoped("clinic", "c:7/contact:42/n}1").unwrap();
        let tree = leaf.clone().into_tree().unwrap();
        let root = tree.ancestors()[0].clone();
        let slot = |k: &Key, s: &str| Slot::for_key(tagged(k.as_str(), s).as_bytes());
        assert_eq!(slot(&tree, "lock"), slot(&root, "ix"));
        assert_eq!(slot(&tree.ancestors()[1], "rd"), slot(&root, "lock"));
        let names: std::collections::HashSet<_> = [&tree, &root, &leaf, &tree.ancestors()[1]]
            .iter()
            .map(|k| tagged(k.as_str(), "lock"))
            .collect();
        assert_eq!(
            names.len(),
            4,
            "every key has its own Redis names: {names:?}"
        );
    }
}
