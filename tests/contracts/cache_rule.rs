//! One read-through rule, two writings: `cache::rules` (how an entry stands, when it is
//! recomputed early, what a fetch answers given the lease) and `cache_fetch.lua`. Each case
//! writes entries, invalidates, lets time pass and fetches on real Redis, while a model that is
//! nothing but the rule follows the same steps; every fetch must answer as the rule says —
//! a hit, a hit handed out for early recompute, a lease to compute a miss, the stale value,
//! or a wait for another caller's lease.

use std::time::{Duration, Instant};

use warden::cache::rules::{on_fetch, recompute_early, standing, Entry, OnFetch};
use warden::store::cache::{CacheCopy, CacheEntry, CacheFetched, CacheRead};
use warden::store::redis::RedisStore;

const LEASE_MS: i64 = 60_000;
const BETA: f64 = 1.0;
/// A draw that makes any entry with a known compute time due for early recompute.
const EARLY: f64 = 1e-300;
/// A draw that never does (ln 1 = 0): only an expired entry would be due.
const NEVER: f64 = 1.0;

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Writes the entry (no lease) in `epoch`: fresh for `ttl`, then stale for `stale` ms.
    Put {
        ttl: i64,
        stale: i64,
        compute: i64,
        epoch: i64,
    },
    /// Invalidates the entry's tag.
    Invalidate,
    /// Lets `ms` pass.
    Sleep(u64),
    /// A read-through read in `epoch`.
    Fetch {
        epoch: i64,
        allow_stale: bool,
        draw: f64,
    },
}

use Step::*;

const fn put(ttl: i64, stale: i64) -> Step {
    Put {
        ttl,
        stale,
        compute: 100,
        epoch: 1,
    }
}

const fn fetch(allow_stale: bool, draw: f64) -> Step {
    Fetch {
        epoch: 1,
        allow_stale,
        draw,
    }
}

const CASES: &[&[Step]] = &[
    // Nothing stored: the first caller leases, the next waits (stale or not).
    &[fetch(true, NEVER), fetch(true, NEVER), fetch(false, NEVER)],
    // Fresh: a hit; handed out early to one caller only.
    &[
        put(60_000, 60_000),
        fetch(false, NEVER),
        fetch(false, EARLY),
        fetch(false, EARLY),
    ],
    // An unknown compute time is never recomputed early.
    &[
        Put {
            ttl: 60_000,
            stale: 0,
            compute: 0,
            epoch: 1,
        },
        fetch(false, EARLY),
    ],
    // Stale by time: the first caller leases; then stale for who accepts it, else a wait.
    &[
        put(1, 60_000),
        Sleep(20),
        fetch(true, NEVER),
        fetch(true, NEVER),
        fetch(false, NEVER),
    ],
    // Stale by epoch: written under epoch 1, read in epoch 2.
    &[
        put(60_000, 60_000),
        Fetch {
            epoch: 2,
            allow_stale: true,
            draw: NEVER,
        },
        Fetch {
            epoch: 2,
            allow_stale: true,
            draw: NEVER,
        },
    ],
    // Invalidated: a miss, whatever its TTLs; nothing stale to serve.
    &[
        put(60_000, 60_000),
        Invalidate,
        fetch(true, NEVER),
        fetch(true, NEVER),
    ],
    // Past its stale TTL too: a miss.
    &[put(1, 1), Sleep(20), fetch(true, NEVER), fetch(true, NEVER)],
];

/// The model: the entry's facts on the test's clock, and whether a lease is out.
#[derive(Default)]
struct Model {
    entry: Option<(Entry, i64, i64)>,
    lease_out: bool,
}

fn kind(f: &CacheFetched) -> OnFetch {
    match f {
        CacheFetched::Lease(_) => OnFetch::MissLease,
        CacheFetched::Wait(_) => OnFetch::MissWait,
        CacheFetched::Found {
            read: CacheRead::Hit { .. },
            refresh: Some(_),
        } => OnFetch::Refresh,
        CacheFetched::Found {
            read: CacheRead::Hit { .. },
            refresh: None,
        } => OnFetch::Hit,
        CacheFetched::Found {
            read: CacheRead::Stale { .. },
            ..
        } => OnFetch::Stale,
        other => panic!("a fetch answered {other:?}"),
    }
}

#[tokio::test]
async fn redis_fetches_as_the_rule_says() {
    let redis = crate::support::Redis::start();
    let hot = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as i64;
    let tags = vec!["t".to_owned()];
    let mut seen = Vec::new();
    for (i, steps) in CASES.iter().enumerate() {
        let ns = format!("rule{i}");
        let mut model = Model::default();
        for (j, step) in steps.iter().enumerate() {
            match *step {
                Put {
                    ttl,
                    stale,
                    compute,
                    epoch,
                } => {
                    let entry = CacheEntry {
                        value: b"\"v\"",
                        compressed: false,
                        raw_len: 3,
                        ttl_ms: ttl,
                        stale_ttl_ms: stale,
                        compute_ms: compute,
                        tags: &tags,
                    };
                    let at = now();
                    hot.cache_put(&ns, "k", epoch, &entry, None, (1 << 30, LEASE_MS))
                        .await
                        .unwrap();
                    let facts = Entry {
                        fresh_until: at + ttl,
                        stale_until: at + ttl + stale,
                        this_epoch: true,
                        invalidated: false,
                    };
                    model.entry = Some((facts, epoch, compute));
                }
                Invalidate => {
                    hot.cache_invalidate(&ns, Some("t"), LEASE_MS)
                        .await
                        .unwrap();
                    if let Some((e, _, _)) = &mut model.entry {
                        e.invalidated = true;
                    }
                }
                Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Fetch {
                    epoch,
                    allow_stale,
                    draw,
                } => {
                    let at = now();
                    let facts = model.entry.map(|(e, written, compute)| {
                        let e = Entry {
                            this_epoch: written == epoch,
                            ..e
                        };
                        (e, compute)
                    });
                    let stands = standing(facts.as_ref().map(|(e, _)| e), at);
                    let early = facts.is_some_and(|(e, compute)| {
                        recompute_early(at, e.fresh_until, compute, BETA, draw)
                    });
                    let rule = on_fetch(stands, early, model.lease_out, allow_stale);
                    let got = hot
                        .cache_fetch(&ns, "k", epoch, allow_stale, LEASE_MS, draw, BETA)
                        .await
                        .unwrap();
                    assert_eq!(kind(&got), rule, "case {i}, step {j}: {got:?}");
                    if matches!(rule, OnFetch::MissLease | OnFetch::Refresh) {
                        model.lease_out = true;
                    }
                    seen.push(rule);
                }
            }
        }
    }
    for verdict in [
        OnFetch::Hit,
        OnFetch::Refresh,
        OnFetch::MissLease,
        OnFetch::Stale,
        OnFetch::MissWait,
    ] {
        assert!(seen.contains(&verdict), "no case answers {verdict:?}");
    }
}
