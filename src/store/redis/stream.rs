//! Redis stream steps: the hot copy of each stream's counters. SQL assigns and commits; the
//! copy is only raised to values SQL has committed, so it may lag but never leads, and a
//! reader may trust "already committed" from it without asking SQL.

use super::{tagged, RedisStore};
use crate::store::stream::{Counters, StreamCopy};
use crate::store::StoreError;

/// How long an idle stream's copy is kept, ms (it is rebuilt by the next raise).
const IDLE_MS: i64 = 86_400_000;

fn copy_key(stream: &str) -> String {
    tagged(stream, "stream")
}

impl StreamCopy for RedisStore {
    async fn stream_raise(&self, stream: &str, c: Counters) -> Result<(), StoreError> {
        let mut inv = self.scripts.stream_raise.key(copy_key(stream));
        inv.arg(c.assigned)
            .arg(c.last_committed)
            .arg(c.version)
            .arg(IDLE_MS);
        self.eval::<i64>(&inv).await.map(drop)
    }

    async fn stream_copy(&self, stream: &str) -> Result<Option<Counters>, StoreError> {
        let mut get = redis::cmd("HMGET");
        get.arg(copy_key(stream))
            .arg("assigned")
            .arg("last")
            .arg("version");
        let v: Vec<Option<i64>> = self.query(&get).await?;
        Ok(match v[..] {
            [Some(assigned), Some(last_committed), Some(version)] => Some(Counters {
                assigned,
                last_committed,
                version,
            }),
            _ => None,
        })
    }
}
