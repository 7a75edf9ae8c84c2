//! The in-process library API (`Idempotency::run`) against real PostgreSQL and Redis: the work
//! runs once per key, errors release the claim, and a claim is kept alive while work outlasts
//! its lease.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Postgres, Redis};
use serde::{Deserialize, Serialize};
use warden::config::Flags;
use warden::idem::{BeginRequest, Begun, Ran, RunError, RunOptions};
use warden::key::Key;
use warden::service::Warden;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    charge: String,
    cents: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_executes_once_releases_on_error_and_keeps_long_work_claimed() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Flags {
        database_url: Some(pg.url()),
        redis_url: Some(redis.url()),
        set: vec!["tier.lease_ms=400".into()],
        config: dir.path().join("none.toml"),
        ..Flags::default()
    }
    .resolve()
    .unwrap();
    let warden = Warden::start(&config).await.unwrap();
    let idem = warden.idempotency.clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let charge = |runs: Arc<AtomicUsize>| {
        move |claim: warden::idem::Claim| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Receipt {
                charge: format!("ch_{}", claim.token),
                cents: 4200,
            })
        }
    };

    let first = idem.run("pay-1", "fp", charge(runs.clone())).await.unwrap();
    let Ran::Executed(receipt) = first else {
        panic!("first run must execute: {first:?}")
    };
    let again = idem.run("pay-1", "fp", charge(runs.clone())).await.unwrap();
    assert_eq!(again, Ran::Replayed(receipt.clone()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let other = idem.run("pay-1", "other", charge(runs.clone())).await;
    assert!(
        matches!(other, Err(RunError::FingerprintMismatch)),
        "{other:?}"
    );

    // An error releases the claim; the next run executes.
    let failed = idem
        .run("pay-2", "", |_| async {
            Err::<Receipt, _>("card declined")
        })
        .await;
    assert!(
        matches!(failed, Err(RunError::Failed("card declined"))),
        "{failed:?}"
    );
    let retried = idem.run("pay-2", "", charge(runs.clone())).await.unwrap();
    assert!(matches!(retried, Ran::Executed(_)));
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // Work four times longer than its lease stays claimed: nobody else may start it.
    let opts = RunOptions {
        lease_ms: 300,
        ..RunOptions::default()
    };
    let slow_runs = runs.clone();
    let slow = idem.run_with("pay-3", "", opts, move |claim| async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        slow_runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(Receipt {
            charge: format!("ch_{}", claim.token),
            cents: 1,
        })
    });
    let intruder = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let req = BeginRequest {
            key: Key::parse("pay-3").unwrap(),
            fingerprint: String::new(),
            lease_ms: 300,
            ttl_ms: 60_000,
            wait_ms: 0,
        };
        idem.begin(&req).await.unwrap().0
    };
    let (slow, intruder) = tokio::join!(slow, intruder);
    assert!(matches!(intruder, Begun::InProgress { .. }), "{intruder:?}");
    assert!(matches!(slow, Ok(Ran::Executed(_))), "{slow:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    warden.shutdown().await;
}
