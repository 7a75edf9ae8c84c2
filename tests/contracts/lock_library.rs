//! `Locks::with_lock` in-process on real Redis: the lease outlives its TTL while renewals
//! succeed and is released after the work; when Redis stops answering, the guard is signalled
//! before the lease could lapse, counted from the send time of the last successful renewal.

use std::time::Duration;

use crate::support::{Postgres, Redis};
use tokio::time::Instant;
use warden::key::Key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_lives_while_renewed_and_the_guard_hears_before_it_can_lapse() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let set = ["redis.timeout_ms=100", "breaker.failures=1000"];
    let (_dir, w) = crate::support::in_process::service_on_redis(pg.url(), redis.url(), &set).await;
    let key = Key::parse("report").unwrap();

    // Work three times as long as the TTL: renewed throughout, released after.
    let locks = w.locks.clone();
    let token = locks
        .with_lock(&key, "me", (600, 0), |guard| {
            let locks = locks.clone();
            let key = key.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1_800)).await;
                assert!(!guard.is_lost());
                let (read, _) = locks.get(&key).await.unwrap();
                match read {
                    warden::lock::Read::Held(l) => assert_eq!(l[0].token, guard.token()),
                    other => panic!("not held mid-work: {other:?}"),
                }
                guard.token()
            }
        })
        .await
        .unwrap();
    assert!(token > 0);
    let (read, _) = w.locks.get(&key).await.unwrap();
    assert_eq!(read, warden::lock::Read::NotHeld, "released after the work");

    // Redis stops answering mid-work: the guard is signalled within the TTL of the last
    // renewal that succeeded — before the lease could lapse and another owner take it.
    let started = Instant::now();
    let signalled = w
        .locks
        .with_lock(&key, "me", (900, 0), |mut guard| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            redis.stall(true);
            let stalled = Instant::now();
            guard.lost().await;
            let heard = Instant::now();
            redis.stall(false);
            (stalled, heard)
        })
        .await
        .unwrap();
    let (stalled, heard) = signalled;
    // The last renewal that succeeded was sent at most ttl/3 (300 ms) before the stall; the
    // signal comes at its send + ttl − ttl/10 (810 ms): between 510 and 810 ms after the
    // stall (slack for scheduling) — never after the lease could lapse, never while renewals
    // still worked.
    let after_stall = heard - stalled;
    assert!(
        after_stall >= Duration::from_millis(450) && after_stall <= Duration::from_millis(860),
        "heard {after_stall:?} after the stall"
    );
    assert!(
        heard - started < Duration::from_millis(400 + 900 + 100),
        "{:?}",
        heard - started
    );
}
