//! The SQL tier through the library, on real SQLite and PostgreSQL: the epoch check inside the
//! grant, per-epoch counters, and the reaper that keeps the lease table bounded.

mod support;

use std::time::Duration;

use warden::clock::now_ms;
use warden::key::Key;
use warden::store::sql::SqlStore;
use warden::store::{AcquireReply, LockStore};

async fn reaper_keeps_tokens_growing(sql: SqlStore) {
    let row = sql.tier_row().await.unwrap();
    let e1 = row.epoch;
    let now = now_ms();
    let k = |s: &str| Key::parse(s).unwrap();
    let AcquireReply::Granted(old) = sql.acquire(&k("r1"), "a", 1, e1, now).await.unwrap() else {
        panic!("grant")
    };
    // A stale epoch cannot grant on SQL.
    let stale = sql.acquire(&k("r2"), "a", 1000, e1 - 1, now).await.unwrap();
    assert!(
        matches!(stale, AcquireReply::EpochMismatch { .. }),
        "{stale:?}"
    );

    let switched = sql
        .switch_tier(e1, "sql", "test", now, now)
        .await
        .unwrap()
        .unwrap();
    let e2 = switched.epoch;
    assert_eq!(e2, e1 + 1);
    let live = sql.acquire(&k("r3"), "a", 60_000, e2, now).await.unwrap();
    assert!(matches!(live, AcquireReply::Granted(_)));

    let later = now + 10;
    let reaped = sql.reap_leases(e2, later).await.unwrap();
    assert_eq!(reaped, 1, "only the expired row of the older epoch goes");
    assert!(
        sql.get(&k("r3"), later).await.unwrap().is_some(),
        "live lease kept"
    );

    let AcquireReply::Granted(new) = sql.acquire(&k("r1"), "b", 1000, e2, later).await.unwrap()
    else {
        panic!("grant after reaping")
    };
    assert!(new.token > old.token, "{} > {}", new.token, old.token);
    assert_eq!(
        new.token & 0xffff_ffff,
        1,
        "counter restarts in the new epoch"
    );
}

#[tokio::test]
async fn sqlite_reaper() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/w.db", dir.path().display());
    reaper_keeps_tokens_growing(
        SqlStore::connect(&url, 2, Duration::from_secs(2))
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres_reaper() {
    let pg = support::Postgres::start();
    reaper_keeps_tokens_growing(
        SqlStore::connect(&pg.url(), 2, Duration::from_secs(2))
            .await
            .unwrap(),
    )
    .await;
}
