//! Redis lock steps: each is one Lua script, so check-and-set is atomic and one round trip.

use redis::Value;

use super::{slot_keys, tagged, unexpected, RedisStore};
use crate::key::Key;
use crate::store::{AcquireReply, Holder, Lease, LeaseCopy, LockStore, Step, StoreError, Touched};
use crate::token::{token_base, token_parts};

impl LeaseCopy for RedisStore {
    async fn seed_lease(&self, key: &str, lease: &Lease, now: i64) -> Result<bool, StoreError> {
        let remaining = lease.expires_at - now;
        if remaining <= 0 {
            return Ok(false);
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

/// The lease a script described as `(owner, epoch, ctr, pttl_ms, hold_left_ms)`.
fn lease_of((owner, epoch, ctr, pttl, hold_left): (String, i64, i64, i64, i64), now: i64) -> Lease {
    Lease {
        owner,
        token: token_base(epoch) + ctr,
        expires_at: now + pttl.max(0),
        hold_until: hold_at(hold_left, now),
    }
}

/// Reads `{owner, epoch, ctr, pttl_ms, hold_left_ms}` starting at `items[at]`.
fn lease_at(items: &[Value], at: usize, now: i64) -> Option<Lease> {
    let int = |i: usize| -> Option<i64> { redis::from_redis_value_ref(items.get(at + i)?).ok() };
    let owner: String = redis::from_redis_value_ref(items.get(at)?).ok()?;
    Some(lease_of((owner, int(1)?, int(2)?, int(3)?, int(4)?), now))
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
        key: &Key,
        owner: &str,
        ttl_ms: i64,
        max_hold_ms: Option<i64>,
        epoch: i64,
        now: i64,
    ) -> Result<AcquireReply, StoreError> {
        let lock = tagged(key.as_str(), "lock");
        let slot = slot_keys(&lock);
        let mut inv = self.scripts.acquire.key(slot.gate);
        inv.key(lock)
            .key(slot.counter)
            .arg(epoch)
            .arg(owner)
            .arg(ttl_ms)
            .arg(max_hold_ms.unwrap_or(0));
        let reply: Value = self.eval(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected(&reply));
        };
        let parsed: Option<AcquireReply> = (|| {
            let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
            if state == "exhausted" {
                return Some(AcquireReply::CounterExhausted);
            }
            if state == "epoch" {
                let found: i64 = redis::from_redis_value_ref(items.get(1)?).ok()?;
                return Some(AcquireReply::EpochMismatch {
                    found: (found >= 0).then_some(found),
                });
            }
            let lease = lease_at(items, 1, now)?;
            Some(match state.as_str() {
                "granted" => AcquireReply::Granted(lease),
                "held" => AcquireReply::Held(lease),
                _ => AcquireReply::Busy {
                    expires_at: lease.expires_at,
                },
            })
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
        let lock = tagged(holder.key.as_str(), "lock");
        let (inv, expires_at) = match step {
            Step::Extend { ttl_ms } => {
                let mut inv = self.scripts.extend.key(lock);
                inv.arg(holder.owner).arg(lease_epoch).arg(ctr).arg(ttl_ms);
                (inv, now + ttl_ms)
            }
            Step::Release => {
                let mut inv = self.scripts.release.key(lock);
                inv.key(tagged(holder.key.as_str(), "gone"))
                    .arg(holder.owner)
                    .arg(lease_epoch)
                    .arg(ctr)
                    .arg(epoch)
                    .arg(self.release_mark.as_millis() as u64);
                (inv, now)
            }
        };
        let reply: Value = self.eval(&inv).await?;
        let done = |hold_until| Lease {
            owner: holder.owner.to_owned(),
            token: holder.token,
            expires_at,
            hold_until,
        };
        touched(&reply, done, now)
    }

    async fn get(&self, key: &Key, now: i64) -> Result<Option<Lease>, StoreError> {
        let inv = self.scripts.get.key(tagged(key.as_str(), "lock"));
        let reply: Option<(String, i64, i64, i64, i64)> = self.eval(&inv).await?;
        Ok(reply.map(|described| lease_of(described, now)))
    }
}
