//! Redis rate-limit steps: `lua/rl_check.lua`, `lua/rl_peek.lua`, `lua/rl_refund.lua` (each
//! with the shared `lua/rl_state.lua`), one slot per subject, so every step is atomic on a
//! Cluster too.

use redis::Value;

use super::{unexpected, RedisStore};
use crate::store::ratelimit::{Applied, Counted, Left, LimitCopy, Step};
use crate::store::StoreError;

fn parse(reply: &Value, n: usize) -> Option<Counted> {
    let Value::Array(items) = reply else {
        return None;
    };
    let int = |i: usize| -> Option<i64> { redis::from_redis_value_ref(items.get(i)?).ok() };
    if items.len() != 2 + 2 * n {
        return None;
    }
    let limits = (0..n)
        .map(|i| {
            Some(Left {
                remaining: int(2 + 2 * i)?,
                reset_us: int(3 + 2 * i)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Counted {
        admitted: int(0)? == 1,
        retry_us: int(1)?,
        limits,
    })
}

impl LimitCopy for RedisStore {
    async fn count(
        &self,
        step: Step,
        keys: &[String],
        limits: &[Applied],
        cost: i64,
        fresh_after_us: i64,
    ) -> Result<Counted, StoreError> {
        let script = match step {
            Step::Check => &self.scripts.rl_check,
            Step::Peek => &self.scripts.rl_peek,
            Step::Refund => &self.scripts.rl_refund,
        };
        let mut call = script.prepare_invoke();
        for k in keys {
            call.key(k);
        }
        call.arg(cost).arg(fresh_after_us);
        for l in limits {
            call.arg(l.algorithm)
                .arg(l.rate.to_string())
                .arg(l.period_us)
                .arg(l.capacity);
        }
        let reply: Value = self.eval(&call).await?;
        parse(&reply, limits.len()).ok_or_else(|| unexpected(&reply))
    }

    async fn clear(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut del = redis::cmd("DEL");
        for k in keys {
            del.arg(k);
        }
        self.query::<i64>(&del).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_the_wrong_shape_are_refused() {
        let ok = Value::Array(vec![
            Value::Int(0),
            Value::Int(3_333_334),
            Value::Int(0),
            Value::Int(60_000_000),
        ]);
        let c = parse(&ok, 1).unwrap();
        assert!(!c.admitted);
        assert_eq!(c.retry_us, 3_333_334);
        assert_eq!(c.limits[0].reset_us, 60_000_000);
        assert!(parse(&ok, 2).is_none());
        assert!(parse(&Value::Int(1), 1).is_none());
    }
}
