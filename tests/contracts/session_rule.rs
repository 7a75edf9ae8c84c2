//! One session rule, written twice: `session::rules::standing` says which sessions are live,
//! and the SQL store's queries say it again in SQL — the principal's list, the live-session
//! gauge, and the count a limited create evicts from. Sessions in every standing (live, idle
//! expired, past their absolute expiry, revoked, rotated, evicted, and one left of a
//! generation a logout everywhere ended) are made on real SQLite or PostgreSQL, and every
//! query must find exactly the sessions the rule calls live; a limited create must refuse or
//! end exactly the oldest the rule's `on_create` names.

use std::collections::BTreeSet;

use warden::session::rules::{on_create, standing, RULES};
use warden::store::session::{
    CreateJob, CreatedRow, NewSession, OnCreate, OnLimit, SessionRow, Standing,
};
use warden::store::sql::SqlStore;

const T: i64 = 1_000_000_000_000;
const NOW: i64 = T + 1_000;

fn job(id: &str, principal: &str, at: i64, idle: i64, absolute: i64) -> CreateJob {
    CreateJob {
        new: NewSession {
            id_hash: id.into(),
            tenant: "t".into(),
            principal: principal.into(),
            data: "{}".into(),
            idle_ttl_ms: idle,
            absolute_ttl_ms: absolute,
        },
        limit: None,
        now: at,
        correlation_id: "c".into(),
    }
}

async fn create(sql: &SqlStore, jobs: Vec<CreateJob>) -> Vec<CreatedRow> {
    sql.session_create_batch(jobs, RULES).await.unwrap()
}

async fn row(sql: &SqlStore, id: &str) -> SessionRow {
    sql.session("t", id).await.unwrap().expect("a session row")
}

/// The ids of `ids` the rule calls live at `NOW`.
async fn live_by_rule(sql: &SqlStore, ids: &[&str]) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for id in ids {
        if standing(&row(sql, id).await, NOW) == Standing::Active {
            live.insert((*id).to_owned());
        }
    }
    live
}

async fn agree(sql: SqlStore) {
    // Principal p: one session in each standing.
    create(
        &sql,
        vec![
            job("live", "p", T, 60_000, 120_000),
            job("idle", "p", T - 70_000, 60_000, 120_000),
            job("absolute", "p", T - 130_000, 200_000, 100_000),
            job("revoked", "p", T, 60_000, 120_000),
            job("rotated", "p", T, 60_000, 120_000),
        ],
    )
    .await;
    sql.session_revoke("t", "revoked", T + 10, "c")
        .await
        .unwrap();
    let rotated = sql
        .session_rotate("t", "rotated", "successor", T + 20, "c", RULES)
        .await
        .unwrap();
    assert!(
        matches!(rotated, warden::store::session::Changed::Done(_)),
        "{rotated:?}"
    );
    // Principal q: a session left `active` but expired when q logged out everywhere (its
    // generation is behind), and one made after.
    create(
        &sql,
        vec![job("old-generation", "q", T - 70_000, 60_000, 120_000)],
    )
    .await;
    sql.session_revoke_all("t", "q", T + 30, "c").await.unwrap();
    create(
        &sql,
        vec![job("new-generation", "q", T + 40, 60_000, 120_000)],
    )
    .await;
    let p = [
        "live",
        "idle",
        "absolute",
        "revoked",
        "rotated",
        "successor",
    ];
    let q = ["old-generation", "new-generation"];
    for (principal, ids) in [("p", &p[..]), ("q", &q[..])] {
        let listed: BTreeSet<String> = sql
            .sessions_of("t", principal, NOW, 1_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id_hash)
            .collect();
        assert_eq!(
            listed,
            live_by_rule(&sql, ids).await,
            "principal {principal}"
        );
    }
    let standings: Vec<Standing> = {
        let mut all = Vec::new();
        for id in p.iter().chain(&q) {
            all.push(standing(&row(&sql, id).await, NOW));
        }
        all
    };
    for s in [Standing::Active, Standing::Expired] {
        assert!(standings.contains(&s), "no session {s:?}: {standings:?}");
    }
    assert!(standings.iter().any(|s| matches!(s, Standing::Ended(_))));
    let all: Vec<&str> = p.iter().chain(&q).copied().collect();
    let gauge: i64 = sql
        .sessions_live(NOW)
        .await
        .unwrap()
        .into_iter()
        .filter(|(tenant, _)| tenant == "t")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        gauge as usize,
        live_by_rule(&sql, &all).await.len(),
        "the live gauge"
    );

    // Principal r: three live sessions and an expired one; a create limited to 2 ends the
    // oldest the rule names, and one that rejects refuses.
    create(
        &sql,
        vec![
            job("r0", "r", T - 70_000, 60_000, 120_000),
            job("r1", "r", T, 60_000, 120_000),
            job("r2", "r", T + 1, 60_000, 120_000),
            job("r3", "r", T + 2, 60_000, 120_000),
        ],
    )
    .await;
    let r = ["r0", "r1", "r2", "r3"];
    let live = live_by_rule(&sql, &r).await;
    let mut reject = job("r-rejected", "r", NOW, 60_000, 120_000);
    reject.limit = Some((2, OnLimit::Reject));
    assert_eq!(on_create(live.len(), 2, OnLimit::Reject), OnCreate::Refuse);
    assert_eq!(create(&sql, vec![reject]).await, [CreatedRow::LimitReached]);
    let OnCreate::Evict(n) = on_create(live.len(), 2, OnLimit::EvictOldest) else {
        panic!("{} live under a limit of 2 is not an eviction", live.len());
    };
    let mut evict = job("r4", "r", NOW, 60_000, 120_000);
    evict.limit = Some((2, OnLimit::EvictOldest));
    let created = create(&sql, vec![evict]).await;
    let [CreatedRow::Created { evicted, .. }] = &created[..] else {
        panic!("{created:?}");
    };
    let ended: Vec<&str> = evicted.iter().map(|(id, _)| id.as_str()).collect();
    let oldest: Vec<&str> = ["r1", "r2", "r3"]
        .into_iter()
        .filter(|id| live.contains(*id))
        .take(n)
        .collect();
    assert_eq!(ended, oldest);
}

#[tokio::test]
async fn sqlite_finds_live_exactly_the_sessions_the_rule_does() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    agree(sql).await;
}

#[tokio::test]
async fn postgres_finds_live_exactly_the_sessions_the_rule_does() {
    let (_pg, sql) = crate::support::postgres_store().await;
    agree(sql).await;
}
