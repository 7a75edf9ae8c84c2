//! One acquire rule for permits, two writings: what an ask finds on a semaphore is decided by
//! `semaphore::rules::on_permit`, which the SQL store applies inside its transaction, and which
//! `sem_acquire.lua` writes again for Redis. Every case (nothing held, room left, exactly
//! full, over, the owner's own permit, a limit that differs, an expired permit) goes through
//! the rule, real SQLite or PostgreSQL, and real Redis, and all three must agree — a mismatch
//! first, then the owner's permit, then whether the ask fits.

use std::time::Duration;

use warden::key::Key;
use warden::semaphore::rules::on_permit;
use warden::store::redis::RedisStore;
use warden::store::semaphore::{OnPermit, Permit, PermitAsk, PermitReply, PermitStore};
use warden::store::sql::SqlStore;

/// A grant made before the probe: owner, permits, and whether it has expired by then.
type Before = (&'static str, i64, bool);

/// One case: the grants before (all under `limit`), and the probe (owner, limit, count).
struct Case {
    limit: i64,
    before: &'static [Before],
    probe: (&'static str, i64, i64),
}

const CASES: &[Case] = &[
    Case {
        limit: 5,
        before: &[],
        probe: ("b", 5, 2),
    },
    Case {
        limit: 5,
        before: &[("a", 2, false)],
        probe: ("b", 5, 3),
    },
    Case {
        limit: 5,
        before: &[("a", 2, false)],
        probe: ("b", 5, 4),
    },
    Case {
        limit: 5,
        before: &[("a", 2, false)],
        probe: ("a", 5, 1),
    },
    Case {
        limit: 5,
        before: &[("a", 2, false)],
        probe: ("b", 4, 1),
    },
    Case {
        limit: 5,
        before: &[("a", 2, false)],
        probe: ("a", 4, 1),
    },
    Case {
        limit: 5,
        before: &[("a", 2, false), ("b", 2, false)],
        probe: ("a", 5, 4),
    },
    Case {
        limit: 5,
        before: &[("a", 5, false)],
        probe: ("b", 5, 1),
    },
    Case {
        limit: 5,
        before: &[("a", 4, true)],
        probe: ("b", 5, 5),
    },
    Case {
        limit: 5,
        before: &[("a", 4, true)],
        probe: ("b", 3, 1),
    },
];

/// What an ask found, as the rule and the stores can both say it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// A new grant, leaving this many free.
    Grant { available: i64 },
    /// The owner's live permit of this many, handed back.
    Held { owner: String, count: i64 },
    /// Does not fit; this many are held.
    Full { held: i64 },
    /// Live permits were granted under this other limit.
    Mismatch(i64),
}

fn by_rule(case: &Case) -> Verdict {
    let live: Vec<Permit> = case
        .before
        .iter()
        .enumerate()
        .filter(|(_, (_, _, expired))| !expired)
        .map(|(i, (owner, count, _))| Permit {
            owner: (*owner).into(),
            token: i as i64 + 1,
            count: *count,
            expires_at: i64::MAX,
        })
        .collect();
    let name = Key::parse("rule").unwrap();
    let (owner, limit, count) = case.probe;
    let ask = PermitAsk {
        name: &name,
        owner,
        limit,
        count,
        ttl_ms: 60_000,
    };
    match on_permit(&live, Some(case.limit), &ask) {
        OnPermit::Mismatch(l) => Verdict::Mismatch(l),
        OnPermit::Held(p) => Verdict::Held {
            owner: p.owner,
            count: p.count,
        },
        OnPermit::Full { held } => Verdict::Full { held },
        OnPermit::Grant { held } => Verdict::Grant {
            available: limit - held - count,
        },
    }
}

fn verdict(reply: PermitReply) -> Verdict {
    match reply {
        PermitReply::Granted { available, .. } => Verdict::Grant { available },
        PermitReply::Held { permit, .. } => Verdict::Held {
            owner: permit.owner,
            count: permit.count,
        },
        PermitReply::Full { held, .. } => Verdict::Full { held },
        PermitReply::LimitMismatch { limit } => Verdict::Mismatch(limit),
        other => panic!("the store refused the epoch or counter: {other:?}"),
    }
}

fn now() -> i64 {
    warden::runtime::clock::now_ms()
}

/// Puts the case's grants on `name` in `store` at `epoch`, then probes it.
async fn by_store(store: &impl PermitStore, epoch: i64, name: &Key, case: &Case) -> Verdict {
    for (owner, count, expired) in case.before {
        let ask = PermitAsk {
            name,
            owner,
            limit: case.limit,
            count: *count,
            ttl_ms: if *expired { 30 } else { 60_000 },
        };
        let reply = store.acquire_permit(&ask, on_permit, epoch, now()).await;
        assert!(
            matches!(reply, Ok(PermitReply::Granted { .. })),
            "{name}: setting up {owner} got {reply:?}"
        );
    }
    if case.before.iter().any(|(_, _, expired)| *expired) {
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let (owner, limit, count) = case.probe;
    let ask = PermitAsk {
        name,
        owner,
        limit,
        count,
        ttl_ms: 60_000,
    };
    verdict(
        store
            .acquire_permit(&ask, on_permit, epoch, now())
            .await
            .unwrap(),
    )
}

async fn agree(sql: SqlStore) {
    let epoch = sql.tier_row().await.unwrap().epoch;
    let redis = crate::support::Redis::start();
    let hot = RedisStore::connect(&redis.url(), Duration::from_secs(2)).unwrap();
    hot.arm_epoch(epoch).await.unwrap();
    let mut seen = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let name = Key::parse(&format!("sem-case-{i}")).unwrap();
        let rule = by_rule(case);
        let on_sql = by_store(&sql, epoch, &name, case).await;
        let on_lua = by_store(&hot, epoch, &name, case).await;
        assert_eq!(on_sql, rule, "sql disagrees with the rule on case {i}");
        assert_eq!(on_lua, rule, "lua disagrees with the rule on case {i}");
        seen.push(std::mem::discriminant(&rule));
    }
    let kinds = [
        Verdict::Grant { available: 0 },
        Verdict::Held {
            owner: String::new(),
            count: 0,
        },
        Verdict::Full { held: 0 },
        Verdict::Mismatch(0),
    ];
    for kind in kinds {
        let d = std::mem::discriminant(&kind);
        assert!(seen.contains(&d), "no case answers {kind:?}");
    }
}

#[tokio::test]
async fn sqlite_and_lua_grant_hand_back_and_refuse_permits_as_the_rule_does() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    agree(sql).await;
}

#[tokio::test]
async fn postgres_and_lua_grant_hand_back_and_refuse_permits_as_the_rule_does() {
    let (_pg, sql) = crate::support::postgres_store().await;
    agree(sql).await;
}
