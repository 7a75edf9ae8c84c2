//! Deadlock detection over the wait-for graph of owners, kept in SQL and stamped with the
//! epoch so it spans instances: every owner waiting on a key records who held it. A waiter
//! that closes a cycle finds it at once (when it records its edge); cycles that form later are
//! found by a sweep every `locks.deadlock_check_ms`. The victim is the lowest
//! `deadlock_priority`, then the youngest wait; it answers 409 `deadlock_detected` with the
//! cycle and keeps the locks it holds. Nothing of this runs while nobody waits.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AcquireRequest, Locks};
use crate::metrics_names as m;
use crate::store::wait::WaitEdge;

/// How often a waiter refreshes its edge (and learns whether it was made a victim).
const REFRESH: Duration = Duration::from_millis(250);
/// An edge not refreshed for this long belongs to a waiter that is gone.
const STALE_MS: i64 = 10_000;

/// One step of a cycle, as answered: `owner` waits for `key`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CycleStep {
    /// The waiting owner.
    pub owner: String,
    /// The key it waits for.
    pub key: String,
}

/// The cycle through `start`, if the edges close one: the edges from `start` around to it.
pub fn cycle_through<'e>(edges: &'e [WaitEdge], start: &str) -> Option<Vec<&'e WaitEdge>> {
    let mut out: HashMap<&str, Vec<&WaitEdge>> = HashMap::new();
    for e in edges {
        out.entry(e.waiter.as_str()).or_default().push(e);
    }
    let mut path: Vec<&WaitEdge> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    fn walk<'e>(
        at: &str,
        start: &str,
        out: &HashMap<&str, Vec<&'e WaitEdge>>,
        path: &mut Vec<&'e WaitEdge>,
        seen: &mut HashSet<&'e str>,
    ) -> bool {
        for e in out.get(at).into_iter().flatten() {
            path.push(e);
            if e.holder == start {
                return true;
            }
            if seen.insert(e.holder.as_str()) && walk(&e.holder, start, out, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    walk(start, start, &out, &mut path, &mut seen).then_some(path)
}

/// The victim of a cycle: the lowest priority, then the youngest wait (then the greatest
/// name, so every instance picks the same one).
pub fn victim<'e>(cycle: &[&'e WaitEdge]) -> &'e WaitEdge {
    cycle
        .iter()
        .copied()
        .min_by(|a, b| {
            (
                a.priority,
                std::cmp::Reverse(a.since),
                std::cmp::Reverse(&a.waiter),
            )
                .cmp(&(
                    b.priority,
                    std::cmp::Reverse(b.since),
                    std::cmp::Reverse(&b.waiter),
                ))
        })
        .expect("a cycle has an edge")
}

/// A cycle as answered, tenant prefixes (`prefix_len` bytes) taken off.
fn answered(cycle: &[&WaitEdge], prefix_len: usize) -> Vec<CycleStep> {
    let strip = |s: &str| s.get(prefix_len..).unwrap_or(s).to_owned();
    cycle
        .iter()
        .map(|e| CycleStep {
            owner: strip(&e.waiter),
            key: strip(&e.key),
        })
        .collect()
}

/// What one wait has recorded of itself.
pub(crate) struct Waiting {
    since: i64,
    /// The edge last recorded — holder and key, as stored — and when.
    recorded: Mutex<Option<(String, String, Instant)>>,
}

/// Who waits, for which key: a lock's acquire, or a lock group's blocked member.
#[derive(Clone, Copy)]
pub(crate) struct Wait<'a> {
    /// The key waited for.
    pub key: &'a crate::key::Key,
    /// The waiting owner.
    pub owner: &'a str,
    /// Its rank when a victim is chosen.
    pub priority: i64,
}

impl<'a> From<&'a AcquireRequest> for Wait<'a> {
    fn from(req: &'a AcquireRequest) -> Self {
        Self {
            key: &req.key,
            owner: &req.owner,
            priority: req.deadlock_priority,
        }
    }
}

impl Waiting {
    pub(crate) fn new(since: i64) -> Self {
        Self {
            since,
            recorded: Mutex::new(None),
        }
    }

    fn last(&self) -> Option<(String, String, Instant)> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Locks {
    /// After a waiting try found the key held by `blocked_by`: records the edge (at most every
    /// [`REFRESH`] unless the holder changed), and answers the cycle if this waiter is a
    /// deadlock's victim — found now, or marked by another waiter or the sweep.
    pub(crate) async fn on_busy(
        &self,
        req: Wait<'_>,
        blocked_by: &str,
        w: &Waiting,
    ) -> Option<Vec<CycleStep>> {
        let prefix = req.key.prefix();
        let (waiter, holder) = (
            format!("{prefix}{}", req.owner),
            format!("{prefix}{blocked_by}"),
        );
        if holder == waiter {
            // Waiting for itself: an upgrade of its own shared lease, with no one else on it.
            self.deadlock_found("enqueue", req.owner);
            return Some(vec![CycleStep {
                owner: req.owner.to_owned(),
                key: req.key.name().to_owned(),
            }]);
        }
        let last = w.last();
        let changed = last
            .as_ref()
            .is_none_or(|(h, k, _)| *h != holder || k != req.key.as_str());
        if !changed && last.is_some_and(|(_, _, at)| at.elapsed() < REFRESH) {
            return None;
        }
        if let Some((_, k, _)) = w.last().filter(|(_, k, _)| k != req.key.as_str()) {
            // A group waiting now for another member: its old edge is gone.
            let sql = self.tier.durable();
            let _ = self.tier.on_durable(sql.drop_wait(&waiter, &k)).await;
        }
        let epoch = self.tier.active(false).ok()?.epoch;
        let now = self.tier.now();
        let edge = WaitEdge {
            waiter: waiter.clone(),
            key: req.key.as_str().to_owned(),
            holder: holder.clone(),
            priority: req.priority,
            since: w.since,
        };
        let sql = self.tier.durable();
        let marked = self
            .tier
            .on_durable(sql.wait_edge(&edge, epoch, now))
            .await
            .ok()?;
        let key = req.key.as_str().to_owned();
        *w.recorded.lock().unwrap_or_else(|p| p.into_inner()) = Some((holder, key, Instant::now()));
        if let Some(cycle) = marked {
            return Some(serde_json::from_str(&cycle).unwrap_or_default());
        }
        if !changed {
            return None;
        }
        let edges = self
            .tier
            .on_durable(sql.wait_edges(epoch, now - STALE_MS))
            .await
            .ok()?;
        let cycle = cycle_through(&edges, &waiter)?;
        if !self.confirmed(&cycle).await {
            return None;
        }
        let chosen = victim(&cycle);
        let steps = answered(&cycle, prefix.len());
        if chosen.waiter == waiter {
            self.deadlock_found("enqueue", req.owner);
            return Some(steps);
        }
        let text = serde_json::to_string(&steps).unwrap_or_default();
        let _ = self
            .tier
            .on_durable(sql.mark_victim(&chosen.waiter, &text))
            .await;
        self.deadlock_found("enqueue", &chosen.waiter);
        None
    }

    /// For a waiter queued behind another on this instance (it makes no tries of its own):
    /// records its edge to whoever holds the key now, and answers a deadlock it closes.
    pub(crate) async fn while_queued(
        &self,
        req: &AcquireRequest,
        w: &Waiting,
    ) -> Option<super::Acquired> {
        let Ok((super::Read::Held(leases), _)) = self.get(&req.key).await else {
            return None;
        };
        let holder = leases
            .iter()
            .find(|l| l.owner != req.owner)
            .or(leases.first())?
            .owner
            .clone();
        let cycle = self.on_busy(req.into(), &holder, w).await?;
        Some(super::Acquired::Deadlock { cycle })
    }

    /// Ends the wait's edge, if it recorded one.
    pub(crate) async fn end_wait(&self, req: Wait<'_>, w: &Waiting) {
        let Some((_, key, _)) = w.last() else {
            return;
        };
        let waiter = format!("{}{}", req.key.prefix(), req.owner);
        let sql = self.tier.durable();
        let _ = self.tier.on_durable(sql.drop_wait(&waiter, &key)).await;
    }

    /// One sweep: marks a victim in every cycle of the current epoch's graph, and forgets
    /// edges whose waiters are gone.
    pub async fn sweep_deadlocks(&self) {
        let Ok(active) = self.tier.active(false) else {
            return;
        };
        let (epoch, now) = (active.epoch, self.tier.now());
        let sql = self.tier.durable();
        let _ = self.tier.on_durable(sql.reap_waits(now - STALE_MS)).await;
        let Ok(mut edges) = self
            .tier
            .on_durable(sql.wait_edges(epoch, now - STALE_MS))
            .await
        else {
            return;
        };
        let mut waiters: Vec<String> = edges.iter().map(|e| e.waiter.clone()).collect();
        waiters.sort();
        waiters.dedup();
        for w in waiters {
            let Some(cycle) = cycle_through(&edges, &w) else {
                continue;
            };
            if !self.confirmed(&cycle).await {
                continue;
            }
            let chosen = victim(&cycle).waiter.clone();
            let prefix_len = crate::key::prefix_of(&chosen).len();
            let text = serde_json::to_string(&answered(&cycle, prefix_len)).unwrap_or_default();
            if self
                .tier
                .on_durable(sql.mark_victim(&chosen, &text))
                .await
                .is_ok()
            {
                self.deadlock_found("sweep", &chosen);
            }
            edges.retain(|e| e.waiter != chosen);
        }
    }

    /// Whether every key of `cycle` is held right now by the owner its edge names: an edge
    /// is refreshed only at its waiter's next try, so a holder that just let go must not make a
    /// cycle out of a wait that is about to end.
    async fn confirmed(&self, cycle: &[&WaitEdge]) -> bool {
        for e in cycle {
            let Ok(key) = crate::key::Key::from_stored(&e.key) else {
                return false;
            };
            let prefix = key.prefix().to_owned();
            let holds = match self.get(&key).await {
                Ok((super::Read::Held(leases), _)) => leases
                    .iter()
                    .any(|l| format!("{prefix}{}", l.owner) == e.holder),
                _ => false,
            };
            if !holds {
                return false;
            }
        }
        true
    }

    fn deadlock_found(&self, found: &'static str, victim: &str) {
        metrics::counter!(m::DEADLOCKS, "found" => found).increment(1);
        tracing::warn!(found, victim, "deadlock: victim chosen");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(waiter: &str, holder: &str, priority: i64, since: i64) -> WaitEdge {
        WaitEdge {
            waiter: waiter.into(),
            key: format!("k-{holder}"),
            holder: holder.into(),
            priority,
            since,
        }
    }

    #[test]
    fn a_cycle_is_found_from_any_of_its_waiters_and_nothing_else_is() {
        let edges = [
            edge("a", "b", 0, 1),
            edge("b", "c", 0, 2),
            edge("c", "a", 0, 3),
            edge("d", "a", 0, 4),
        ];
        for start in ["a", "b", "c"] {
            let c = cycle_through(&edges, start).unwrap();
            assert_eq!(c.len(), 3);
            assert_eq!(c[0].waiter, start);
        }
        assert!(
            cycle_through(&edges, "d").is_none(),
            "d waits on the cycle but is not in it"
        );
        assert!(cycle_through(&[edge("a", "b", 0, 1), edge("b", "c", 0, 1)], "a").is_none());
    }

    #[test]
    fn the_victim_is_the_lowest_priority_then_the_youngest() {
        let (a, b, c) = (
            edge("a", "b", 1, 10),
            edge("b", "c", 0, 5),
            edge("c", "a", 0, 7),
        );
        assert_eq!(
            victim(&[&a, &b, &c]).waiter,
            "c",
            "lowest priority, youngest of those"
        );
        let (a, b) = (edge("a", "b", 0, 10), edge("b", "a", 0, 20));
        assert_eq!(victim(&[&a, &b]).waiter, "b");
    }
}
