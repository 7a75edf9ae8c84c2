//! Redis idempotency steps: the hot copy of durable records, read by `peek` (one `HMGET`) and
//! written by `seed` from SQL. Redis never claims a key: SQL arbitrates and draws every claim,
//! and the copy serves replays of completed keys.

use redis::Value;

use super::{tagged, RedisStore};
use crate::key::Key;
use crate::runtime::correlation::Correlation;
use crate::store::idem::{IdemCopy, IdemRecord, IdemState};
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
    async fn idem_peek(&self, key: &Key) -> Result<Option<IdemRecord>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(record_key(key.as_str()))
            .arg(&["st", "ep", "ctr", "fp", "lu", "ex", "resp", "cid", "tp"]);
        let items: Vec<Value> = self.query(&cmd).await?;
        let state = match text(&items, 0).as_str() {
            "" => return Ok(None),
            "c" => IdemState::Completed,
            "i" => IdemState::InProgress,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "idempotency copy in state {other:?}"
                )))
            }
        };
        let field =
            |i| int(&items, i).ok_or_else(|| StoreError::Corrupt("idempotency copy".into()));
        let response = text(&items, 6);
        Ok(Some(IdemRecord {
            key: key.as_str().to_owned(),
            state,
            token: token_base(field(1)?) + field(2)?,
            fingerprint: text(&items, 3),
            lease_until: field(4)?,
            expires_at: field(5)?,
            response: (state == IdemState::Completed).then_some(response),
            correlation: Correlation {
                id: text(&items, 7),
                traceparent: text(&items, 8),
            },
        }))
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
