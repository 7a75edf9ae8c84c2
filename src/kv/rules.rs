//! The KV write rule, decided once over a key's stored record: a conditional write applies only
//! when its expectation holds of the *live* record (an expired record or a tombstone is no live
//! record), every applied write or delete moves the version on by one — a delete leaves a
//! tombstone that keeps it — and a delete that finds nothing writes nothing. The SQL store
//! applies it to each write of a batch in order (`kv_apply`); `tests/contracts/kv_rule.rs`
//! holds the store to it over random histories.

use crate::store::kv::{KvExpect, KvJob, KvRecord, KvWritten};

/// What `job` does to `current` (a version-0 tombstone where the key has no record).
pub fn on_write(current: &KvRecord, job: &KvJob) -> KvWritten {
    let (now, next) = match job {
        KvJob::Put { now, .. } | KvJob::Delete { now, .. } => (*now, current.version + 1),
    };
    let live = current.live(now).then_some(current.version);
    match job {
        KvJob::Put {
            value,
            expires_at,
            expect,
            ..
        } => {
            let holds = match expect {
                KvExpect::Any => true,
                KvExpect::Absent => live.is_none(),
                KvExpect::Version(v) => live == Some(*v),
            };
            if !holds {
                return KvWritten::Conflict(live);
            }
            KvWritten::Done(KvRecord {
                value: value.clone(),
                version: next,
                expires_at: *expires_at,
                deleted: false,
            })
        }
        KvJob::Delete { expected, .. } => match (live, expected) {
            (None, None) => KvWritten::Nothing,
            (None, Some(_)) => KvWritten::Conflict(None),
            (Some(v), Some(e)) if v != *e => KvWritten::Conflict(live),
            _ => KvWritten::Done(KvRecord {
                value: String::new(),
                version: next,
                expires_at: 0,
                deleted: true,
            }),
        },
    }
}
