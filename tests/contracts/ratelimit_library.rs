//! The in-process rate-limit API (`RateLimits::check`) in `local` mode, as a Rust service
//! would call it in a tight loop: the checks keep to the instance's share of the limit, and
//! they never starve the runtime of the tier-lease renewal (which would turn every check into a
//! safe block).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden::key::Key;
use warden::ratelimit::{Checked, Policy};
use warden::store::sql::Expect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tight_local_loops_keep_their_share_and_never_starve_the_tier_lease() {
    let dir = tempfile::tempdir().unwrap();
    let flags = warden::config::Flags {
        database_url: Some(format!("sqlite://{}/w.db", dir.path().display())),
        set: vec!["tier.lease_ms=400".into()],
        config: dir.path().join("none.toml"),
        ..Default::default()
    };
    let config = flags.resolve().expect("valid settings");
    let w = warden::service::Warden::start(&config).await.unwrap();
    let name = Key::parse("api").unwrap();
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "limits": [{"name": "s", "algorithm": "gcra", "rate": 1000, "period_ms": 1000, "burst": 1000}],
        "degraded_factor": 0.5
    }))
    .unwrap();
    let saved = w
        .ratelimits
        .save_policy(&name, &policy, Expect::Anything, "test")
        .await
        .unwrap();
    assert_eq!(saved, warden::ratelimit::PolicySaved::Saved(1));

    let allowed = Arc::new(AtomicU64::new(0));
    let blocked = Arc::new(AtomicU64::new(0));
    let run = Duration::from_secs(2);
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (limits, name) = (w.ratelimits.clone(), name.clone());
            let (allowed, blocked) = (allowed.clone(), blocked.clone());
            tokio::spawn(async move {
                let subject = Key::parse("hot").unwrap();
                while started.elapsed() < run {
                    match limits.check(&name, &subject, 1).await {
                        Checked::Allowed(r) => {
                            assert_eq!(r.mode, warden::ratelimit::LimitMode::Local);
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                        Checked::Limited(_) => {}
                        _ => {
                            blocked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = allowed.load(Ordering::Relaxed);
    assert_eq!(
        blocked.load(Ordering::Relaxed),
        0,
        "checks were safe-blocked"
    );
    // One instance, factor 0.5: 500/s, starting with one unit and no burst.
    let bound = (500.0 * elapsed).ceil() as u64 + 1;
    assert!(allowed <= bound, "{allowed} admitted > {bound}");
    assert!(
        allowed as f64 >= 0.9 * 500.0 * elapsed,
        "{allowed} admitted: the share went unused"
    );
    assert!(w.tier.status().ready.is_ok(), "the tier lease ran out");
    w.shutdown().await;
}
