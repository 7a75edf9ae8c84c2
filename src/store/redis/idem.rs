//! Redis idempotency steps: the hot copy. `begin` answers from a live copy or claims the key
//! with a token from its slot's counter (behind the epoch gate); `seed` replaces a copy with
//! the durable record. Neither is ever the last word: SQL arbitrates every claim.

use redis::Value;

use super::{slot_keys, tagged, unexpected, RedisStore};
use crate::key::Key;
use crate::runtime::correlation::Correlation;
use crate::store::idem::{ClaimAsk, IdemBegin, IdemCopy, IdemRecord, IdemState};
use crate::store::StoreError;
use crate::token::{token_base, token_parts};

fn record_key(key: &str) -> String {
    tagged(key, "idem")
}

fn state_code(s: IdemState) -> &'static str {
    match s {
        IdemState::InProgress => "i",
        IdemState::Completed => "c",
        IdemState::Released => "r",
    }
}

/// Item `i` as text; empty when absent (copies written before a field existed).
fn text(items: &[Value], i: usize) -> String {
    items
        .get(i)
        .and_then(|v| redis::from_redis_value_ref(v).ok())
        .unwrap_or_default()
}

fn int(items: &[Value], i: usize) -> Option<i64> {
    redis::from_redis_value_ref(items.get(i)?).ok()
}

impl IdemCopy for RedisStore {
    async fn idem_begin(
        &self,
        key: &Key,
        epoch: i64,
        now: i64,
        ask: &ClaimAsk<'_>,
    ) -> Result<IdemBegin, StoreError> {
        let rec = record_key(key.as_str());
        let slot = slot_keys(&rec);
        let mut inv = self.scripts.idem_begin.key(slot.gate);
        inv.key(rec)
            .key(slot.counter)
            .arg(epoch)
            .arg(now)
            .arg(ask.fingerprint)
            .arg(ask.lease_ms)
            .arg(ask.ttl_ms)
            .arg(&ask.correlation.id)
            .arg(&ask.correlation.traceparent);
        let reply: Value = self.eval(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected(&reply));
        };
        let token = |i: usize| Some(token_base(int(items, i)?) + int(items, i + 1)?);
        let parsed = (|| {
            let state: String = redis::from_redis_value_ref(items.first()?).ok()?;
            Some(match state.as_str() {
                "epoch" => {
                    let found = int(items, 1)?;
                    IdemBegin::EpochMismatch {
                        found: (found >= 0).then_some(found),
                    }
                }
                "exhausted" => IdemBegin::CounterExhausted,
                "mismatch" => IdemBegin::Mismatch,
                "started" => IdemBegin::Started { token: token(1)? },
                "completed" => IdemBegin::Completed {
                    token: token(1)?,
                    response: redis::from_redis_value_ref(items.get(3)?).ok()?,
                    correlation: Correlation {
                        id: text(items, 4),
                        traceparent: text(items, 5),
                    },
                },
                "in_progress" => IdemBegin::InProgress {
                    token: token(1)?,
                    lease_until: int(items, 3)?,
                },
                _ => return None,
            })
        })();
        parsed.ok_or_else(|| unexpected(&reply))
    }

    async fn idem_seed(
        &self,
        rec: &IdemRecord,
        replace: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (ep, ctr) = token_parts(rec.token);
        let (rep, rctr) = replace.map_or((0, 0), token_parts);
        let mut inv = self.scripts.idem_seed.key(record_key(&rec.key));
        inv.arg(state_code(rec.state))
            .arg(ep)
            .arg(ctr)
            .arg(&rec.fingerprint)
            .arg(rec.lease_until)
            .arg(rec.expires_at)
            .arg(rec.response.as_deref().unwrap_or(""))
            .arg(rep)
            .arg(rctr)
            .arg(now)
            .arg(&rec.correlation.id)
            .arg(&rec.correlation.traceparent);
        self.eval::<i64>(&inv).await.map(|n| n == 1)
    }
}
