//! One acquire rule, three writings: who an acquire finds on a key is decided by
//! `lock::rules::on_acquire`, and enforced inside the atomic grant steps — `acquire.lua` and
//! the SQL grant with the read that explains a refusal. Every case (no lease, the caller's live
//! lease, another owner's, an expired or released one) goes through all three on real SQLite,
//! PostgreSQL and Redis, and they must agree: an owner's retry gets its grant back everywhere,
//! and nobody else's does.

use std::time::Duration;

use warden::key::Key;
use warden::lock::{on_acquire, OnAcquire};
use warden::store::redis::RedisStore;
use warden::store::sql::SqlStore;
use warden::store::{AcquireReply, Holder, Lease, LeaseAsk, LockStore, Step, Touched};

/// What is on the key before the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    Nothing,
    Live,
    Expired,
    Released,
}

const CASES: [(Before, &str); 7] = [
    (Before::Nothing, "a"),
    (Before::Live, "a"),
    (Before::Live, "b"),
    (Before::Expired, "a"),
    (Before::Expired, "b"),
    (Before::Released, "a"),
    (Before::Released, "b"),
];

/// The rule's verdict for a lease of owner `a` in state `before`, probed by `owner`.
fn by_rule(before: Before, owner: &str) -> OnAcquire {
    let now = 1_000_000;
    let lease = |expires_at| Lease {
        owner: "a".into(),
        token: 1,
        expires_at,
        hold_until: None,
        shared: false,
    };
    let current = match before {
        Before::Nothing => None,
        Before::Live => Some(lease(now + 10_000)),
        Before::Expired => Some(lease(now - 1)),
        // A release ends the lease: what is left (SQL keeps the row) expires at once.
        Before::Released => Some(lease(0)),
    };
    on_acquire(current.as_ref(), owner, now)
}

fn verdict(reply: AcquireReply) -> OnAcquire {
    match reply {
        AcquireReply::Granted(_) => OnAcquire::Grant,
        AcquireReply::Held(_) => OnAcquire::Held,
        AcquireReply::Busy { .. } => OnAcquire::Busy,
        other => panic!("the store refused the epoch or counter: {other:?}"),
    }
}

/// Puts `before` on `key` in `store` at `epoch`, then probes it with `owner`'s acquire.
async fn by_store(
    store: &impl LockStore,
    clock: impl Fn() -> i64,
    epoch: i64,
    key: &Key,
    before: Before,
    owner: &str,
) -> OnAcquire {
    let ttl = if before == Before::Expired {
        30
    } else {
        60_000
    };
    if before != Before::Nothing {
        let first = store
            .acquire(&LeaseAsk::exclusive(key, "a", ttl), epoch, clock())
            .await
            .unwrap();
        let AcquireReply::Granted(lease) = first else {
            panic!("{key}: first acquire not granted: {first:?}");
        };
        if before == Before::Released {
            let holder = Holder {
                key,
                owner: "a",
                token: lease.token,
            };
            let released = store.touch(holder, Step::Release, epoch, clock()).await;
            assert!(matches!(released, Ok(Touched::Done(_))), "{released:?}");
        }
        if before == Before::Expired {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    verdict(
        store
            .acquire(&LeaseAsk::exclusive(key, owner, 60_000), epoch, clock())
            .await
            .unwrap(),
    )
}

fn now() -> i64 {
    warden::runtime::clock::now_ms()
}

async fn agree(sql: SqlStore) {
    let epoch = sql.tier_row().await.unwrap().epoch;
    let redis = crate::support::Redis::start();
    let hot = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();
    hot.arm_epoch(epoch).await.unwrap();
    let mut seen = Vec::new();
    for (i, (before, owner)) in CASES.into_iter().enumerate() {
        let key = Key::parse(&format!("case-{i}")).unwrap();
        let rule = by_rule(before, owner);
        let on_sql = by_store(&sql, now, epoch, &key, before, owner).await;
        let on_lua = by_store(&hot, now, epoch, &key, before, owner).await;
        assert_eq!(
            on_sql, rule,
            "sql disagrees with the rule on {before:?} probed by {owner}"
        );
        assert_eq!(
            on_lua, rule,
            "lua disagrees with the rule on {before:?} probed by {owner}"
        );
        seen.push(rule);
    }
    for verdict in [OnAcquire::Grant, OnAcquire::Held, OnAcquire::Busy] {
        assert!(seen.contains(&verdict), "no case answers {verdict:?}");
    }
}

#[tokio::test]
async fn sqlite_and_lua_grant_hand_back_and_refuse_as_the_rule_does() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    agree(sql).await;
}

#[tokio::test]
async fn postgres_and_lua_grant_hand_back_and_refuse_as_the_rule_does() {
    let (_pg, sql) = crate::support::postgres_store().await;
    agree(sql).await;
}
