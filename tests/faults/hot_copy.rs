//! The hot-copy protocol (`copy_hold.lua`, `copy_seed.lua`) on a real Redis, step by step in
//! the interleavings that would serve a stale record if it were wrong: a reader's late seed
//! after a write, a reader's seed while a write is in flight, an end written over a write in
//! flight, and a copy of another epoch.

use std::time::Duration;

use crate::support::Redis;
use warden::store::copy::{HotCopy, Peeked, Seeder};
use warden::store::redis::RedisStore;

const EPOCH: i64 = 7;

fn live(v: &str) -> Vec<(&'static str, String)> {
    vec![("st", "active".into()), ("d", v.into())]
}

async fn seed(r: &RedisStore, version: i64, fields: &[(&str, String)], by: Seeder) -> bool {
    r.copy_seed("c", EPOCH, version, fields, by, 60_000)
        .await
        .expect("seed")
}

async fn peek(r: &RedisStore) -> Peeked {
    r.copy_peek("c", &["st", "d"]).await.expect("peek")
}

fn state_of(p: &Peeked) -> Option<(i64, String)> {
    match p {
        Peeked::Copy {
            version, fields, ..
        } => Some((*version, fields.get("st").cloned().unwrap_or_default())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interleaving_leaves_a_stale_copy() {
    let redis = Redis::start();
    let r = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();

    // A reader read v1 from SQL; a writer held, wrote v2, seeded. The reader's late seed of v1
    // is refused.
    r.copy_hold("c", 60_000).await.unwrap();
    assert_eq!(peek(&r).await, Peeked::Held);
    assert!(
        !seed(&r, 1, &live("old"), Seeder::Reader).await,
        "a reader seeds nothing while a write is in flight"
    );
    assert!(seed(&r, 2, &live("new"), Seeder::Writer).await);
    assert!(!seed(&r, 1, &live("old"), Seeder::Reader).await);
    assert_eq!(state_of(&peek(&r).await), Some((2, "active".into())));

    // Two writers in flight: the first to finish does not end the other's hold.
    r.copy_hold("c", 60_000).await.unwrap();
    r.copy_hold("c", 60_000).await.unwrap();
    assert!(!seed(&r, 3, &live("w1"), Seeder::Writer).await);
    assert_eq!(peek(&r).await, Peeked::Held);
    assert!(seed(&r, 4, &live("w2"), Seeder::Writer).await);
    assert_eq!(state_of(&peek(&r).await), Some((4, "active".into())));

    // Two writers in flight, the newer one (v6) finishing first: the copy ends at v6, not at
    // the older record of the writer that finished last (group commit makes this common).
    r.copy_hold("c", 60_000).await.unwrap();
    r.copy_hold("c", 60_000).await.unwrap();
    assert!(!seed(&r, 6, &live("newer"), Seeder::Writer).await);
    assert_eq!(peek(&r).await, Peeked::Held, "staged, not served");
    assert!(!seed(&r, 5, &live("older"), Seeder::Writer).await);
    match peek(&r).await {
        Peeked::Copy {
            version, fields, ..
        } => assert_eq!((version, fields["d"].as_str()), (6, "newer")),
        other => panic!("{other:?}"),
    }
    // A hold drops what was staged: a writer that held later seeds what SQL held after it.
    r.copy_hold("c", 60_000).await.unwrap();
    r.copy_hold("c", 60_000).await.unwrap();
    assert!(!seed(&r, 7, &live("w7"), Seeder::Writer).await);
    r.copy_hold("c", 60_000).await.unwrap();
    assert!(!seed(&r, 8, &live("w8"), Seeder::Writer).await);
    // The last writer's SQL statement was refused: it seeds the row it reread, v8.
    assert!(!seed(&r, 8, &live("w8"), Seeder::Writer).await);
    assert_eq!(state_of(&peek(&r).await), Some((8, "active".into())));

    // A logout everywhere ends the session (v16) while a writer (which will fail in SQL) holds
    // the copy: the end is written and the hold kept; the writer's seed of what SQL holds (the
    // end) ends the hold; a reader's late seed of the live v15 is refused.
    r.copy_hold("c", 60_000).await.unwrap();
    let end = vec![("st", "revoked".to_owned())];
    assert!(
        !seed(&r, 16, &end, Seeder::Ender).await,
        "written, not served while held"
    );
    assert_eq!(peek(&r).await, Peeked::Held, "the writer's hold is kept");
    assert!(!seed(&r, 15, &live("late"), Seeder::Reader).await);
    assert!(!seed(&r, 16, &end, Seeder::Writer).await);
    assert_eq!(state_of(&peek(&r).await), Some((16, "revoked".into())));
    assert!(!seed(&r, 15, &live("late"), Seeder::Reader).await);
    assert!(!seed(&r, 15, &live("late"), Seeder::Ender).await);
    assert_eq!(state_of(&peek(&r).await), Some((16, "revoked".into())));

    // The hold's expiry outlives a short copy TTL: an end never shortens a hold.
    r.copy_hold("c", 60_000).await.unwrap();
    assert!(!r
        .copy_seed("c", EPOCH, 19, &end, Seeder::Ender, 1)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(peek(&r).await, Peeked::Held);

    // A copy of an older epoch is replaced by any seed of the current one.
    assert!(r
        .copy_seed("e", EPOCH - 1, 50, &live("x"), Seeder::Reader, 60_000)
        .await
        .unwrap());
    assert!(r
        .copy_seed("e", EPOCH, 1, &live("y"), Seeder::Reader, 60_000)
        .await
        .unwrap());
    match r.copy_peek("e", &["d"]).await.unwrap() {
        Peeked::Copy {
            epoch,
            version,
            fields,
        } => assert_eq!((epoch, version, fields["d"].as_str()), (EPOCH, 1, "y")),
        other => panic!("{other:?}"),
    }
}
