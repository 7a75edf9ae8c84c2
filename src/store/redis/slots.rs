//! Epoch gates, one per Redis Cluster hash slot, so the acquire script can read the gate of its
//! own slot in the same atomic step (a single global gate would be a cross-slot access).

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

fn gate(slot: Slot) -> String {
    format!("warden:{{{}}}:epoch", tags()[&slot])
}

/// The epoch gate of the slot that `key` (a full Redis key) lives in.
pub fn gate_for(key: &str) -> String {
    gate(Slot::for_key(key.as_bytes()))
}

/// Every slot's epoch gate.
pub fn all_gates() -> impl Iterator<Item = String> {
    (0..SLOTS as u16).filter_map(Slot::new).map(gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_shares_the_slot_of_its_keys() {
        assert_eq!(all_gates().count(), SLOTS);
        for key in [
            "warden:{a}:lock",
            "warden:{ключ/{x}}:lock",
            "warden:{}:lock",
        ] {
            let g = gate_for(key);
            assert_eq!(
                Slot::for_key(g.as_bytes()),
                Slot::for_key(key.as_bytes()),
                "{g}"
            );
        }
    }
}
