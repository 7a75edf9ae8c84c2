//! A lock group whose keys share one slot, taken in one Lua step (`lua/lock_group.lua`): every
//! member is checked before any is written, so the group is taken whole or not at all.

use redis::Value;

use super::lock::{grant_at, share_keys, step_refused};
use super::{slot_keys, tagged, unexpected, RedisStore};
use crate::store::{GroupReply, LeaseAsk, StoreError};

impl RedisStore {
    /// Takes every member of `asks` (one owner, one TTL, plain keys) in one step when their
    /// keys share a slot; `None` when they do not (the caller takes them one by one).
    pub async fn acquire_group(
        &self,
        asks: &[LeaseAsk<'_>],
        epoch: i64,
        now: i64,
    ) -> Result<Option<GroupReply>, StoreError> {
        let Some(first) = asks.first() else {
            return Ok(Some(GroupReply::Taken(Vec::new())));
        };
        let locks: Vec<String> = asks
            .iter()
            .map(|a| tagged(a.key.as_str(), "lock"))
            .collect();
        let slot = slot_keys(&locks[0]);
        if asks.iter().any(|a| a.key.is_tree())
            || locks.iter().any(|l| slot_keys(l).counter != slot.counter)
        {
            return Ok(None);
        }
        let mut inv = self.scripts.lock_group.key(slot.gate);
        inv.key(slot.counter)
            .arg(epoch)
            .arg(first.owner)
            .arg(first.ttl_ms);
        for (ask, lock) in asks.iter().zip(locks) {
            inv.key(lock);
            inv = share_keys(inv, ask.key.as_str());
            inv.key(tagged(ask.key.as_str(), "wwait"))
                .arg(if ask.shared { "1" } else { "0" });
        }
        let reply: Value = self.eval(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected(&reply));
        };
        let parsed = (|| {
            if let Some(refused) = step_refused(items) {
                return Some(GroupReply::Refused {
                    index: 0,
                    reply: refused,
                });
            }
            let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
            if state == "busy" {
                let member: usize = redis::from_redis_value_ref(items.get(1)?).ok()?;
                let index = member.checked_sub(1)?;
                let mut rest = items.clone();
                rest.remove(1);
                let reply = grant_at(&rest, 0, asks.get(index)?.shared, now)?;
                return Some(GroupReply::Refused { index, reply });
            }
            let taken = asks
                .iter()
                .enumerate()
                .map(|(i, a)| grant_at(items, 1 + 6 * i, a.shared, now))
                .collect::<Option<Vec<_>>>()?;
            Some(GroupReply::Taken(taken))
        })();
        parsed.map(Some).ok_or_else(|| unexpected(&reply))
    }
}
