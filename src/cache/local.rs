//! Leases while the cache is failed over: per instance, so each instance runs at most one
//! loader per key per lease, and nothing is written anywhere per read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Most leases held at once; beyond, lapsed ones are dropped first, then no more are granted
/// (callers wait) until some end.
const MAX_LEASES: usize = 100_000;

/// This instance's leases: `(namespace, key)` to `(token, until)`.
#[derive(Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<(String, String), (i64, i64)>>,
    next: AtomicI64,
}

impl Leases {
    /// A lease of `lease_ms` on `key` of `ns` from `now`: its token (above every earlier one
    /// of this instance in `epoch`), or the ms until the live one ends.
    pub(super) fn grant(
        &self,
        ns: &str,
        key: &str,
        epoch: i64,
        lease_ms: i64,
        now: i64,
    ) -> Result<i64, i64> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let k = (ns.to_owned(), key.to_owned());
        if let Some((_, until)) = held.get(&k).filter(|(_, until)| *until > now) {
            return Err((until - now).max(1));
        }
        if held.len() >= MAX_LEASES {
            held.retain(|_, (_, until)| *until > now);
            if held.len() >= MAX_LEASES {
                return Err(lease_ms.max(1));
            }
        }
        let token = (epoch << 32) + self.next.fetch_add(1, Ordering::Relaxed) + 1;
        held.insert(k, (token, now + lease_ms));
        Ok(token)
    }

    /// Settles lease `token` on `key` of `ns` for a put: whether it was the live one. The
    /// lease window goes on (nothing was kept, so the next load waits for the window's end:
    /// one load per key per instance per window).
    pub(super) fn settle(&self, ns: &str, key: &str, token: i64, now: i64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let k = (ns.to_owned(), key.to_owned());
        match held.get_mut(&k) {
            Some((t, until)) if *t == token && *until > now => {
                *t = 0;
                true
            }
            _ => false,
        }
    }

    /// Voids the leases of `key` of `ns` (`None`: of every key of `ns`).
    pub(super) fn void(&self, ns: &str, key: Option<&str>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(n, k), _| n != ns || key.is_some_and(|key| key != k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lease_per_key_until_it_lapses_or_is_voided() {
        let l = Leases::default();
        let t1 = l.grant("n", "k", 3, 100, 0).unwrap();
        assert_eq!(l.grant("n", "k", 3, 100, 50), Err(50));
        let t2 = l.grant("n", "k", 3, 100, 100).unwrap();
        assert!(t2 > t1, "tokens grow");
        assert!(
            !l.settle("n", "k", t1, 120),
            "a passed-on lease stores nothing"
        );
        l.void("n", None);
        assert!(!l.settle("n", "k", t2, 120), "voided");
        let t3 = l.grant("n", "k", 3, 100, 130).unwrap();
        assert!(l.settle("n", "k", t3, 140));
        assert!(!l.settle("n", "k", t3, 141), "a lease stores once");
        assert_eq!(
            l.grant("n", "k", 3, 100, 150),
            Err(80),
            "one load per window"
        );
        assert!(l.grant("n", "k", 3, 100, 230).is_ok());
    }
}
