//! One KV write rule, held against the SQL store that applies it: random histories of
//! conditional puts and deletes on a few keys (expected versions right, wrong and absent,
//! records that expire) run through a model that is nothing but `kv::rules::on_write` applied
//! in order, and through real SQLite or PostgreSQL in batches of random size. Every outcome
//! and every key's final record must be the model's: the store presents each write with the
//! record the writes before it left (a version-0 tombstone for a new key) and keeps what the
//! rule decided.

use std::collections::HashMap;

use crate::support::Rng;
use warden::kv::rules::on_write;
use warden::store::kv::{KvExpect, KvJob, KvRecord, KvRecords, KvWritten};
use warden::store::sql::SqlStore;

const KEYS: [&str; 3] = ["a", "b", "c"];

/// One random write at `now`: versions drawn near what the keys have reached, so expectations
/// hold and fail alike; some puts expire before later writes arrive.
fn job(rng: &mut Rng, n: usize, now: i64) -> KvJob {
    let key = KEYS[rng.below(KEYS.len() as u64) as usize].to_owned();
    let version = rng.below(5) as i64;
    let correlation_id = format!("h{n}");
    if rng.below(4) == 0 {
        let expected = (version > 0).then_some(version);
        return KvJob::Delete {
            key,
            expected,
            now,
            correlation_id,
        };
    }
    let expect = match rng.below(3) {
        0 => KvExpect::Any,
        1 => KvExpect::Absent,
        _ => KvExpect::Version(version.max(1)),
    };
    let expires_at = if rng.below(5) == 0 { now + 3 } else { 0 };
    KvJob::Put {
        key,
        value: format!("\"v{n}\""),
        expires_at,
        expect,
        now,
        correlation_id,
    }
}

fn key_of(job: &KvJob) -> &str {
    match job {
        KvJob::Put { key, .. } | KvJob::Delete { key, .. } => key,
    }
}

/// A key's record before any write: what the store presents for a new key.
fn none() -> KvRecord {
    KvRecord {
        value: String::new(),
        version: 0,
        expires_at: 0,
        deleted: true,
    }
}

async fn agree(sql: SqlStore, seed: u64) {
    let mut rng = Rng(seed);
    let mut model: HashMap<String, KvRecord> = HashMap::new();
    let mut now = 1_000_000;
    let (mut n, mut seen) = (0, [0usize; 3]);
    for _ in 0..40 {
        let size = 1 + rng.below(8) as usize;
        let jobs: Vec<KvJob> = (0..size)
            .map(|_| {
                n += 1;
                now += rng.below(3) as i64;
                job(&mut rng, n, now)
            })
            .collect();
        let expected: Vec<KvWritten> = jobs
            .iter()
            .map(|j| {
                let current = model.entry(key_of(j).to_owned()).or_insert_with(none);
                let written = on_write(current, j);
                if let KvWritten::Done(r) = &written {
                    *current = r.clone();
                }
                written
            })
            .collect();
        let got = sql.kv_apply(jobs.clone(), on_write).await.unwrap();
        assert_eq!(got, expected, "seed {seed}: the batch {jobs:#?}");
        for w in &got {
            seen[match w {
                KvWritten::Done(_) => 0,
                KvWritten::Conflict(_) => 1,
                KvWritten::Nothing => 2,
            }] += 1;
        }
    }
    for (key, record) in &model {
        let stored = sql.kv_get(key).await.unwrap().unwrap_or_else(none);
        assert_eq!(&stored, record, "seed {seed}: key {key}");
    }
    assert!(
        seen.iter().all(|c| *c > 0),
        "a history without every outcome: {seen:?}"
    );
}

#[tokio::test]
async fn sqlite_applies_every_write_as_the_rule_does() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    agree(sql, 0x9e37_79b9_7f4a_7c15).await;
}

#[tokio::test]
async fn postgres_applies_every_write_as_the_rule_does() {
    let (_pg, sql) = crate::support::postgres_store().await;
    agree(sql, 0x2545_f491_4f6c_dd1d).await;
}
