//! The in-process read-through (`Cache::get_or_load`) on real Redis: many concurrent callers in
//! one process run the loader once, callers that give up (their futures dropped mid-load)
//! cancel nothing for the others, and the value lands in the cache for the next reader.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Postgres, Redis};
use warden::cache::load::LoadSpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_load_for_many_callers_and_a_dropped_caller_cancels_nothing() {
    let pg = Postgres::database();
    let redis = Redis::start();
    let (_dir, w) = crate::support::in_process::service_on_redis(pg.url(), redis.url(), &[]).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let spec = LoadSpec {
        tenant: "default".into(),
        ns: "lib".into(),
        key: "k".into(),
        ttl_ms: 60_000,
        stale_ttl_ms: 0,
        tags: vec!["t".into()],
    };
    let call = |loads: Arc<AtomicUsize>| {
        let (cache, spec) = (w.cache.clone(), spec.clone());
        async move {
            cache
                .get_or_load(spec, move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, String>("{\"v\":1}".to_owned())
                })
                .await
        }
    };
    // The first caller gives up after 50 ms, mid-load.
    let dropped = tokio::time::timeout(Duration::from_millis(50), call(loads.clone())).await;
    assert!(dropped.is_err(), "the first caller gave up");
    let tasks: Vec<_> = (0..50).map(|_| tokio::spawn(call(loads.clone()))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "{\"v\":1}");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for every caller");
    let (read, _) = w.cache.get("default", "lib", "k", false).await.unwrap();
    assert_eq!(
        read,
        warden::cache::Read::Hit("{\"v\":1}".into(), read_age(&read))
    );
    // A later call is a hit: no load.
    assert_eq!(call(loads.clone()).await.unwrap(), "{\"v\":1}");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    w.shutdown().await;
}

fn read_age(r: &warden::cache::Read) -> i64 {
    match r {
        warden::cache::Read::Hit(_, age) | warden::cache::Read::Stale(_, age) => *age,
        warden::cache::Read::Miss => -1,
    }
}
