//! Redis semaphore steps: each is one Lua script over the semaphore's four keys (one slot), so
//! counting the live permits and granting is one atomic step and one round trip.

use redis::{ScriptInvocation, Value};

use super::{slot_keys, tagged, unexpected, RedisStore};
use crate::key::Key;
use crate::store::semaphore::{
    Census, Permit, PermitAsk, PermitCopy, PermitReply, PermitRule, PermitStore,
};
use crate::store::{Holder, Step, StoreError, Touched};
use crate::token::{token_base, token_parts};

/// The semaphore's keys, in the order every semaphore script takes them.
fn sem_keys(name: &str) -> [String; 4] {
    ["sem", "semown", "semexp", "semlimit"].map(|s| tagged(name, s))
}

/// Adds the semaphore's four keys to an invocation.
fn with_keys<'a>(mut inv: ScriptInvocation<'a>, name: &str) -> ScriptInvocation<'a> {
    for k in sem_keys(name) {
        inv.key(k);
    }
    inv
}

/// A permit's id in Redis: `epoch:counter` of its token.
pub(crate) fn permit_id(token: i64) -> String {
    let (epoch, ctr) = token_parts(token);
    format!("{epoch}:{ctr}")
}

fn token_of(id: &str) -> Option<i64> {
    let (e, c) = id.split_once(':')?;
    Some(token_base(e.parse().ok()?) + c.parse::<i64>().ok()?)
}

fn int(items: &[Value], at: usize) -> Option<i64> {
    redis::from_redis_value_ref(items.get(at)?).ok()
}

/// Reads `{id, count, owner, pttl_ms}` starting at `items[at]`.
fn permit_at(items: &[Value], at: usize, now: i64) -> Option<Permit> {
    let id: String = redis::from_redis_value_ref(items.get(at)?).ok()?;
    Some(Permit {
        token: token_of(&id)?,
        count: int(items, at + 1)?,
        owner: redis::from_redis_value_ref(items.get(at + 2)?).ok()?,
        expires_at: now + int(items, at + 3)?.max(0),
    })
}

fn acquired(reply: &Value, now: i64) -> Option<PermitReply> {
    let Value::Array(items) = reply else {
        return None;
    };
    let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
    Some(match state.as_str() {
        "epoch" => {
            let found = int(items, 1)?;
            PermitReply::EpochMismatch {
                found: (found >= 0).then_some(found),
            }
        }
        "exhausted" => PermitReply::CounterExhausted,
        "mismatch" => PermitReply::LimitMismatch {
            limit: int(items, 1)?,
        },
        "full" => PermitReply::Full {
            held: int(items, 1)?,
            retry_after_ms: int(items, 2)?,
        },
        "granted" => PermitReply::Granted {
            permit: permit_at(items, 1, now)?,
            available: int(items, 5)?,
        },
        "held" => PermitReply::Held {
            permit: permit_at(items, 1, now)?,
            available: int(items, 5)?,
        },
        _ => return None,
    })
}

/// Parses the `{'done', count}` / `{'missed'[, permit…]}` reply of the extend and release
/// scripts.
fn touched(reply: &Value, done: Permit, now: i64) -> Option<Touched> {
    let Value::Array(items) = reply else {
        return None;
    };
    let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
    match state.as_str() {
        "done" => Some(Touched::Done(done.lease())),
        "missed" if items.len() == 1 => Some(Touched::Missed { current: None }),
        "missed" => Some(Touched::Missed {
            current: Some(permit_at(items, 1, now)?.lease()),
        }),
        _ => None,
    }
}

impl PermitCopy for RedisStore {
    async fn seed_permit(
        &self,
        name: &str,
        permit: &Permit,
        limit: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let remaining = permit.expires_at - now;
        if remaining <= 0 {
            return Ok(false);
        }
        let mut inv = with_keys(self.scripts.sem_seed.prepare_invoke(), name);
        inv.key(tagged(name, "semgone"))
            .arg(&permit.owner)
            .arg(permit_id(permit.token))
            .arg(permit.count)
            .arg(remaining)
            .arg(limit);
        self.eval::<i64>(&inv).await.map(|n| n == 1)
    }
}

impl PermitStore for RedisStore {
    /// `sem_acquire.lua` writes the rule itself (`tests/contracts/semaphore_rule.rs`).
    async fn acquire_permit(
        &self,
        ask: &PermitAsk<'_>,
        _rule: PermitRule,
        epoch: i64,
        now: i64,
    ) -> Result<PermitReply, StoreError> {
        let name = ask.name.as_str();
        let slot = slot_keys(&tagged(name, "sem"));
        let mut inv = with_keys(self.scripts.sem_acquire.prepare_invoke(), name);
        inv.key(slot.gate)
            .key(slot.counter)
            .arg(epoch)
            .arg(ask.owner)
            .arg(ask.limit)
            .arg(ask.count)
            .arg(ask.ttl_ms);
        let reply: Value = self.eval(&inv).await?;
        acquired(&reply, now).ok_or_else(|| unexpected(&reply))
    }

    async fn touch_permit(
        &self,
        holder: Holder<'_>,
        step: Step,
        epoch: i64,
        now: i64,
    ) -> Result<Touched, StoreError> {
        let name = holder.key.as_str();
        let id = permit_id(holder.token);
        let (inv, expires_at) = match step {
            Step::Extend { ttl_ms } => {
                let mut inv = with_keys(self.scripts.sem_extend.prepare_invoke(), name);
                inv.arg(holder.owner).arg(&id).arg(ttl_ms);
                (inv, now + ttl_ms)
            }
            Step::Release => {
                let mut inv = with_keys(self.scripts.sem_release.prepare_invoke(), name);
                inv.key(tagged(name, "semgone"))
                    .arg(holder.owner)
                    .arg(&id)
                    .arg(epoch)
                    .arg(self.release_mark.as_millis() as u64);
                (inv, now)
            }
        };
        let reply: Value = self.eval(&inv).await?;
        let done = Permit {
            owner: holder.owner.to_owned(),
            token: holder.token,
            count: 0,
            expires_at,
        };
        touched(&reply, done, now).ok_or_else(|| unexpected(&reply))
    }

    async fn census(&self, name: &Key, _now: i64) -> Result<Census, StoreError> {
        let inv = with_keys(self.scripts.sem_read.prepare_invoke(), name.as_str());
        let (limit, held, holders): (i64, i64, i64) = self.eval(&inv).await?;
        Ok(Census {
            limit: (limit >= 0).then_some(limit),
            held,
            holders,
        })
    }
}
