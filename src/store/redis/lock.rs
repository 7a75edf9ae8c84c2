//! Redis lock steps: each is one Lua script, so check-and-set is atomic and one round trip.

use redis::{ScriptInvocation, Value};

use super::semaphore::permit_id;
use super::{slot_keys, tagged, unexpected, RedisStore};
use crate::key::Key;
use crate::store::{
    AcquireReply, Holder, Lease, LeaseAsk, LeaseCopy, LockStore, Step, StoreError, Touched,
};
use crate::token::{token_base, token_parts};

impl LeaseCopy for RedisStore {
    async fn seed_lease(&self, key: &str, lease: &Lease, now: i64) -> Result<bool, StoreError> {
        let seeded = self.seed_one(key, lease, now).await?;
        match Key::from_stored(key) {
            Ok(k) if seeded && k.is_tree() => self.seed_intentions(&k, lease).await,
            _ => Ok(seeded),
        }
    }
}

impl RedisStore {
    /// Leaves the intentions of tree lease `lease` of `key`, if it is live here.
    async fn seed_intentions(&self, key: &Key, lease: &Lease) -> Result<bool, StoreError> {
        let (epoch, ctr) = token_parts(lease.token);
        let mut inv = self.scripts.tree_seed.key(tagged(key.as_str(), "lock"));
        inv.key(tagged(key.as_str(), "rdexp"))
            .arg(&lease.owner)
            .arg(format!("{epoch}:{ctr}"))
            .arg(if lease.shared { "1" } else { "0" });
        let inv = tree_keys(inv, key);
        self.eval::<i64>(&inv).await.map(|n| n == 1)
    }

    /// Copies one lease in (`lua/seed_lease.lua`, or `lua/sem_seed.lua` for a shared one).
    async fn seed_one(&self, key: &str, lease: &Lease, now: i64) -> Result<bool, StoreError> {
        let remaining = lease.expires_at - now;
        if remaining <= 0 {
            return Ok(false);
        }
        if lease.shared {
            let mut inv = share_keys(self.scripts.sem_seed.prepare_invoke(), key);
            inv.key(tagged(key, "gone"))
                .arg(&lease.owner)
                .arg(permit_id(lease.token))
                .arg(1)
                .arg(remaining)
                .arg(1);
            return self.eval::<i64>(&inv).await.map(|n| n == 1);
        }
        let (epoch, ctr) = token_parts(lease.token);
        let hold_left = lease.hold_until.map_or(-1, |h| (h - now).max(0));
        let mut inv = self.scripts.seed_lease.key(tagged(key, "lock"));
        inv.key(tagged(key, "gone"))
            .arg(&lease.owner)
            .arg(epoch)
            .arg(ctr)
            .arg(remaining)
            .arg(hold_left);
        self.eval::<i64>(&inv).await.map(|n| n == 1)
    }
}

/// The deadline `hold_left` ms from `now`; a negative `hold_left` means no cap.
fn hold_at(hold_left: i64, now: i64) -> Option<i64> {
    (hold_left >= 0).then_some(now + hold_left)
}

/// The key's shared holders (`…:rd`, `…:rdown`, `…:rdexp`, `…:rdlim`: semaphore-shaped, see
/// `lua/sem_common.lua`), added to an invocation.
pub(super) fn share_keys<'a>(mut inv: ScriptInvocation<'a>, key: &str) -> ScriptInvocation<'a> {
    for suffix in ["rd", "rdown", "rdexp", "rdlim"] {
        inv.key(tagged(key, suffix));
    }
    inv
}

/// A tree key's extra keys and arguments (`lua/tree.lua`), added to an invocation; none for
/// a plain key.
pub(super) fn tree_keys<'a>(mut inv: ScriptInvocation<'a>, key: &Key) -> ScriptInvocation<'a> {
    if !key.is_tree() {
        return inv;
    }
    let node = key.as_str();
    for suffix in ["ix", "is", "iown"] {
        inv.key(tagged(node, suffix));
    }
    let up = key.ancestors();
    for a in &up {
        for suffix in ["lock", "rd", "rdexp", "ix", "is", "iown", "wwait"] {
            inv.key(tagged(a.as_str(), suffix));
        }
    }
    inv.arg(up.len() + 1).arg(key.name());
    for a in &up {
        inv.arg(a.name());
    }
    inv
}

/// Reads `{owner, epoch, ctr, pttl_ms, hold_left_ms}` starting at `items[at]`.
fn lease_at(items: &[Value], at: usize, now: i64) -> Option<Lease> {
    let int = |i: usize| -> Option<i64> { redis::from_redis_value_ref(items.get(at + i)?).ok() };
    let owner: String = redis::from_redis_value_ref(items.get(at)?).ok()?;
    Some(Lease {
        owner,
        token: token_base(int(1)?) + int(2)?,
        expires_at: now + int(3)?.max(0),
        hold_until: hold_at(int(4)?, now),
        shared: false,
    })
}

/// The `{'exhausted'}` or `{'epoch', found}` reply of a grant step, if it is one.
pub(super) fn step_refused(items: &[Value]) -> Option<AcquireReply> {
    let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
    match state.as_str() {
        "exhausted" => Some(AcquireReply::CounterExhausted),
        "epoch" => {
            let found: i64 = redis::from_redis_value_ref(items.get(1)?).ok()?;
            Some(AcquireReply::EpochMismatch {
                found: (found >= 0).then_some(found),
            })
        }
        _ => None,
    }
}

/// Reads `{state, owner, epoch, ctr, pttl_ms, hold_left_ms}` starting at `items[at]`: one
/// ask's answer (`granted`, `held`, `held_x` — a shared ask finding the owner's exclusive
/// lease — or `busy`, with no `blocked_at`).
pub(super) fn grant_at(items: &[Value], at: usize, shared: bool, now: i64) -> Option<AcquireReply> {
    let state: String = redis::from_redis_value_ref(items.get(at)?).ok()?;
    let mut lease = lease_at(items, at + 1, now)?;
    lease.shared = shared && state != "held_x";
    Some(match state.as_str() {
        "granted" => AcquireReply::Granted(lease),
        "held" | "held_x" => AcquireReply::Held(lease),
        _ => AcquireReply::Busy {
            expires_at: lease.expires_at,
            blocked_by: lease.owner,
            blocked_at: None,
        },
    })
}

/// Parses the `{'done'[, hold_left_ms]}` / `{'missed'[, lease…]}` reply of the extend and
/// release scripts; `done` makes the lease from the deadline of its cap, if any.
fn touched(
    reply: &Value,
    done: impl FnOnce(Option<i64>) -> Lease,
    now: i64,
) -> Result<Touched, StoreError> {
    let parsed = (|| {
        let Value::Array(items) = reply else {
            return None;
        };
        let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
        match state.as_str() {
            "done" => {
                let left = match items.get(1) {
                    Some(v) => redis::from_redis_value_ref(v).ok()?,
                    None => -1,
                };
                Some(Touched::Done(done(hold_at(left, now))))
            }
            "missed" if items.len() == 1 => Some(Touched::Missed { current: None }),
            "missed" => Some(Touched::Missed {
                current: Some(lease_at(items, 1, now)?),
            }),
            _ => None,
        }
    })();
    parsed.ok_or_else(|| unexpected(reply))
}

impl LockStore for RedisStore {
    async fn acquire(
        &self,
        ask: &LeaseAsk<'_>,
        epoch: i64,
        now: i64,
    ) -> Result<AcquireReply, StoreError> {
        let key = ask.key.as_str();
        let key_tree = ask.key.is_tree();
        let lock = tagged(key, "lock");
        let slot = slot_keys(&lock);
        let inv = if ask.shared {
            let mut inv = share_keys(self.scripts.lock_shared.prepare_invoke(), key);
            inv.key(slot.gate)
                .key(lock)
                .key(slot.counter)
                .key(tagged(key, "wwait"))
                .arg(epoch)
                .arg(ask.owner)
                .arg(ask.ttl_ms);
            tree_keys(inv, ask.key)
        } else {
            let mut inv = self.scripts.acquire.key(slot.gate);
            inv.key(lock)
                .key(slot.counter)
                .key(tagged(key, "rd"))
                .key(tagged(key, "rdexp"))
                .key(tagged(key, "wwait"))
                .arg(epoch)
                .arg(ask.owner)
                .arg(ask.ttl_ms)
                .arg(ask.max_hold_ms.unwrap_or(0))
                .arg(ask.writer_mark_ms);
            tree_keys(inv, ask.key)
        };
        let reply: Value = self.eval(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected(&reply));
        };
        let parsed: Option<AcquireReply> = (|| {
            if let Some(refused) = step_refused(items) {
                return Some(refused);
            }
            let mut answer = grant_at(items, 0, ask.shared, now)?;
            if let AcquireReply::Busy { blocked_at, .. } = &mut answer {
                *blocked_at = match items.get(6) {
                    Some(v) => Some(redis::from_redis_value_ref(v).ok()?),
                    None => key_tree.then(|| ask.key.name().to_owned()),
                };
            }
            Some(answer)
        })();
        parsed.ok_or_else(|| unexpected(&reply))
    }

    async fn touch(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        let (lease_epoch, ctr) = token_parts(holder.token);
        let key = holder.key.as_str();
        let lock = tagged(key, "lock");
        let (inv, expires_at) = match step {
            Step::Extend { ttl_ms } => {
                let mut inv = self.scripts.extend.prepare_invoke();
                inv.key(lock);
                let mut inv = share_keys(inv, key);
                inv.arg(holder.owner).arg(lease_epoch).arg(ctr).arg(ttl_ms);
                (tree_keys(inv, holder.key), now + ttl_ms)
            }
            Step::Release => {
                let mut inv = self.scripts.release.prepare_invoke();
                inv.key(lock).key(tagged(key, "gone"));
                let mut inv = share_keys(inv, key);
                inv.arg(holder.owner)
                    .arg(lease_epoch)
                    .arg(ctr)
                    .arg(epoch)
                    .arg(self.release_mark.as_millis() as u64);
                (tree_keys(inv, holder.key), now)
            }
        };
        let reply: Value = self.eval(&inv).await?;
        let done = |hold_until| Lease {
            owner: holder.owner.to_owned(),
            token: holder.token,
            expires_at,
            hold_until,
            shared: false,
        };
        touched(&reply, done, now)
    }

    async fn get(&self, key: &Key, now: i64) -> Result<Vec<Lease>, StoreError> {
        let mut inv = self.scripts.get.prepare_invoke();
        inv.key(tagged(key.as_str(), "lock"));
        let inv = share_keys(inv, key.as_str());
        let reply: Value = self.eval(&inv).await?;
        let items = match &reply {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(items) => items,
            _ => return Err(unexpected(&reply)),
        };
        let parsed: Option<Vec<Lease>> = (|| {
            let kind: String = redis::from_redis_value_ref(items.first()?).ok()?;
            (1..items.len())
                .step_by(5)
                .map(|at| {
                    let mut lease = lease_at(items, at, now)?;
                    lease.shared = kind == "s";
                    Some(lease)
                })
                .collect()
        })();
        parsed.ok_or_else(|| unexpected(&reply))
    }
}
