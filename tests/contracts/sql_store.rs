//! The SQL tier through the library, on real SQLite and PostgreSQL: the epoch check inside the
//! grant, per-epoch counters, the reaper that keeps the lease table bounded, and the batched
//! idempotency writes.

use std::time::Duration;

use warden::key::Key;
use warden::runtime::clock::now_ms;
use warden::store::idem::{IdemState, IdemWrite, IdemWritten};
use warden::store::sql::SqlStore;
use warden::store::{AcquireReply, LeaseAsk, LockStore};
use warden::token::token_base;

fn claim(key: &str, token: Option<i64>, base: i64, now: i64, ttl: i64) -> IdemWrite {
    IdemWrite::Claim {
        key: key.into(),
        token,
        base,
        fingerprint: String::new(),
        lease_until: now + ttl,
        expires_at: now + ttl,
        now,
        correlation: Default::default(),
    }
}

fn applied_token(w: &IdemWritten) -> i64 {
    match w {
        IdemWritten::Applied(r) => r.token,
        other => panic!("not applied: {other:?}"),
    }
}

/// One batch holds several writes per key (applied in order), conditional claims and
/// completions; reaping raises the token floor so a key begun again never reuses a token.
async fn idempotency_batches_and_floor(sql: SqlStore) {
    let base = token_base(sql.tier_row().await.unwrap().epoch);
    let now = now_ms();
    let out = sql
        .apply_idem(vec![
            claim("b1", None, base, now, 60_000),
            claim("b1", None, base, now, 60_000),
            IdemWrite::Complete {
                key: "b1".into(),
                token: base + 99,
                response: "1".into(),
                now,
            },
            claim("b2", Some(base + 7), base, now, 60_000),
            claim("b3", None, base, now, 5),
        ])
        .await
        .unwrap();
    let t1 = applied_token(&out[0]);
    assert!(t1 > base);
    let IdemWritten::Refused(Some(rec)) = &out[1] else {
        panic!("second claim of a live key: {:?}", out[1])
    };
    assert_eq!((rec.state, rec.token), (IdemState::InProgress, t1));
    assert!(matches!(out[2], IdemWritten::Refused(_)), "wrong token");
    assert_eq!(
        applied_token(&out[3]),
        base + 7,
        "a Redis-drawn token is kept"
    );
    let t3 = applied_token(&out[4]);

    let out = sql
        .apply_idem(vec![
            IdemWrite::Complete {
                key: "b1".into(),
                token: t1,
                response: r#"{"a": 1}"#.into(),
                now,
            },
            claim("b2", Some(base + 6), base, now + 120_000, 60_000),
        ])
        .await
        .unwrap();
    let IdemWritten::Applied(done) = &out[0] else {
        panic!("{:?}", out[0])
    };
    assert_eq!(done.response.as_deref(), Some(r#"{"a": 1}"#));
    assert!(
        matches!(out[1], IdemWritten::Refused(_)),
        "a lower token never replaces a higher one"
    );

    let reaped = sql.reap_idem(now + 10, 100).await.unwrap();
    assert_eq!(reaped, 1, "only b3 expired");
    assert!(sql.idem_record("b1").await.unwrap().is_some());
    let out = sql
        .apply_idem(vec![claim("b3", None, base, now + 20, 60_000)])
        .await
        .unwrap();
    assert!(
        applied_token(&out[0]) > t3,
        "the floor outlives the reaped row"
    );
}

async fn reaper_keeps_tokens_growing(sql: SqlStore) {
    let row = sql.tier_row().await.unwrap();
    let e1 = row.epoch;
    let now = now_ms();
    let k = |s: &str| Key::parse(s).unwrap();
    let AcquireReply::Granted(old) = sql
        .acquire(&LeaseAsk::exclusive(&k("r1"), "a", 1), e1, now)
        .await
        .unwrap()
    else {
        panic!("grant")
    };
    // A stale epoch cannot grant on SQL.
    let stale = sql
        .acquire(&LeaseAsk::exclusive(&k("r2"), "a", 1000), e1 - 1, now)
        .await
        .unwrap();
    assert!(
        matches!(stale, AcquireReply::EpochMismatch { .. }),
        "{stale:?}"
    );

    let switched = sql
        .switch_tier(e1, warden::store::TierName::Sql, "test", now, now)
        .await
        .unwrap()
        .unwrap();
    let e2 = switched.epoch;
    assert_eq!(e2, e1 + 1);
    let live = sql
        .acquire(&LeaseAsk::exclusive(&k("r3"), "a", 60_000), e2, now)
        .await
        .unwrap();
    assert!(matches!(live, AcquireReply::Granted(_)));

    let later = now + 10;
    let reaped = sql.reap_leases(e2, later).await.unwrap();
    assert_eq!(reaped, 1, "only the expired row of the older epoch goes");
    assert!(
        sql.get(&k("r3"), later).await.unwrap().len() == 1,
        "live lease kept"
    );

    let AcquireReply::Granted(new) = sql
        .acquire(&LeaseAsk::exclusive(&k("r1"), "b", 1000), e2, later)
        .await
        .unwrap()
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
async fn sqlite_idempotency_batches() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/w.db", dir.path().display());
    let sql = SqlStore::connect(&url, 2, Duration::from_secs(2));
    idempotency_batches_and_floor(sql.await.unwrap()).await;
}

#[tokio::test]
async fn postgres_idempotency_batches() {
    let pg = crate::support::Postgres::database();
    let sql = SqlStore::connect(&pg.url(), 2, Duration::from_secs(2)).await;
    idempotency_batches_and_floor(sql.unwrap()).await;
}

#[tokio::test]
async fn postgres_reaper() {
    let pg = crate::support::Postgres::database();
    reaper_keeps_tokens_growing(
        SqlStore::connect(&pg.url(), 2, Duration::from_secs(2))
            .await
            .unwrap(),
    )
    .await;
}

/// A store on `pg` and the token base of its current epoch.
async fn postgres_store(pg: &crate::support::Postgres) -> (SqlStore, i64) {
    let sql = SqlStore::connect(&pg.url(), 2, Duration::from_secs(5))
        .await
        .unwrap();
    let base = token_base(sql.tier_row().await.unwrap().epoch);
    (sql, base)
}

/// A table that doubles is analyzed once, and not again until it doubles again: plans made
/// while it was tiny do not outlive its growth.
#[tokio::test]
async fn postgres_planner_stats_follow_table_growth() {
    let pg = crate::support::Postgres::database();
    let (sql, base) = postgres_store(&pg).await;
    assert!(sql.refresh_planner_stats().await.unwrap().is_empty());
    let now = now_ms();
    let mut n = 0;
    let mut grow = |rows: usize| {
        let batch: Vec<IdemWrite> = (0..rows)
            .map(|_| {
                n += 1;
                claim(&format!("grow-{n}"), None, base, now, 60_000)
            })
            .collect();
        sql.apply_idem(batch)
    };
    for _ in 0..6 {
        grow(500).await.unwrap();
    }
    assert_eq!(sql.refresh_planner_stats().await.unwrap(), ["warden_idem"]);
    assert!(
        sql.refresh_planner_stats().await.unwrap().is_empty(),
        "fresh statistics are not taken again"
    );
    for _ in 0..16 {
        grow(500).await.unwrap();
    }
    assert_eq!(sql.refresh_planner_stats().await.unwrap(), ["warden_idem"]);
}

/// A claim that races the reaper (its floor raise and its delete of an expired row) never
/// draws a token at or below the deleted row's: modelled as the worst interleaving, a claim
/// whose snapshot predates both, while they commit together.
#[tokio::test]
async fn postgres_claim_racing_the_reaper_stays_above_the_reaped_token() {
    let pg = crate::support::Postgres::database();
    let (sql, base) = postgres_store(&pg).await;
    let now = now_ms();
    let old = claim("k", Some(base + 5), base, now - 60_000, 1_000);
    assert_eq!(
        applied_token(&sql.apply_idem(vec![old]).await.unwrap()[0]),
        base + 5
    );

    let reaper = sqlx::AnyPool::connect(&pg.url()).await.unwrap();
    let mut tx = reaper.begin().await.unwrap();
    sqlx::query("UPDATE warden_counters SET value = $1 WHERE name = 'idem_floor'")
        .bind(base + 5)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM warden_idem WHERE idem_key = 'k'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let racing = {
        let sql = sql.clone();
        tokio::spawn(async move {
            sql.apply_idem(vec![claim("k", None, base, now, 60_000)])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!racing.is_finished(), "the claim waits for the reaper");
    tx.commit().await.unwrap();
    let out = racing.await.unwrap().unwrap();
    let token = applied_token(&out[0]);
    assert!(
        token > base + 5,
        "token {token} not above the reaped {}",
        base + 5
    );
}

fn hold(id: &str, sku: &str, user: &str, quantity: i64) -> warden::store::reserve::Hold {
    warden::store::reserve::Hold {
        id: id.into(),
        sku: sku.into(),
        user_id: user.into(),
        quantity,
        state: warden::store::reserve::HoldState::Held,
        expires_at: now_ms() + 60_000,
        correlation: Default::default(),
    }
}

/// One batch of fallback reserves: units split in arrival order and never beyond stock, one
/// live hold per user (within the batch too), an unknown SKU and a stale epoch refused.
async fn reserve_batches_split_stock_in_order(sql: SqlStore) {
    use warden::store::reserve::ReserveReply;
    use warden::store::sql::ReserveAsk;
    let epoch = sql.tier_row().await.unwrap().epoch;
    sql.set_total("hot", 5).await.unwrap().unwrap();
    let now = now_ms();
    let ask = |h, e| ReserveAsk {
        hold: h,
        epoch: e,
        now,
    };
    let asks = vec![
        ask(hold("h1", "hot", "u1", 2), epoch),
        ask(hold("h2", "hot", "u1", 1), epoch),
        ask(hold("h3", "hot", "u2", 4), epoch),
        ask(hold("h4", "hot", "u3", 3), epoch),
        ask(hold("h5", "nope", "u4", 1), epoch),
        ask(hold("h6", "hot", "u5", 1), epoch + 1),
    ];
    let replies = sql.reserve_batch(asks).await.unwrap();
    let kinds: Vec<String> = replies
        .iter()
        .map(|r| match r {
            ReserveReply::Reserved(s) => format!("reserved {}", s.available()),
            ReserveReply::AlreadyReserved(id) => format!("already {id}"),
            ReserveReply::OutOfStock(s) => format!("out {:?}", s.map(|s| s.available())),
            ReserveReply::Stale => "stale".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "reserved 3",
            "already h1",
            "out Some(3)",
            "reserved 0",
            "out None",
            "stale"
        ]
    );
    let stock = sql.stock("hot").await.unwrap().unwrap();
    assert_eq!((stock.total, stock.reserved, stock.confirmed), (5, 5, 0));
    assert_eq!(sql.live_holds("hot").await.unwrap().len(), 2);
}

#[tokio::test]
async fn sqlite_reserve_batches() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    reserve_batches_split_stock_in_order(sql).await;
}

#[tokio::test]
async fn postgres_reserve_batches() {
    let (_pg, sql) = crate::support::postgres_store().await;
    reserve_batches_split_stock_in_order(sql).await;
}

/// One batch of KV writes: several writes of one key apply in the order submitted, each
/// seeing the ones before it (so two creates of one key have one winner, and a version named
/// twice wins once); a key never written answers as absent and leaves no live record.
async fn kv_batches_apply_in_order(sql: SqlStore) {
    use warden::store::kv::{KvExpect, KvJob, KvRecords, KvWritten};
    let now = now_ms();
    let put = |key: &str, value: &str, expect| KvJob::Put {
        key: key.into(),
        value: value.into(),
        expires_at: 0,
        expect,
        now,
        correlation_id: "c".into(),
    };
    let delete = |key: &str, expected| KvJob::Delete {
        key: key.into(),
        expected,
        now,
        correlation_id: "c".into(),
    };
    let jobs = vec![
        put("x", "1", KvExpect::Absent),
        put("y", "1", KvExpect::Any),
        put("x", "2", KvExpect::Absent),
        put("x", "3", KvExpect::Version(1)),
        put("x", "4", KvExpect::Version(1)),
        delete("z", None),
        put("z", "1", KvExpect::Version(1)),
        delete("x", Some(2)),
        put("x", "5", KvExpect::Absent),
    ];
    let said: Vec<String> = sql
        .kv_apply(jobs, warden::kv::rules::on_write)
        .await
        .unwrap()
        .iter()
        .map(|w| match w {
            KvWritten::Done(r) if r.deleted => format!("deleted {}", r.version),
            KvWritten::Done(r) => format!("{} at {}", r.value, r.version),
            KvWritten::Conflict(v) => format!("conflict {v:?}"),
            KvWritten::Nothing => "nothing".into(),
        })
        .collect();
    let expected = [
        "1 at 1",
        "1 at 1",
        "conflict Some(1)",
        "3 at 2",
        "conflict Some(2)",
        "nothing",
        "conflict None",
        "deleted 3",
        "5 at 4",
    ];
    assert_eq!(said, expected);
    let x = sql.kv_get("x").await.unwrap().unwrap();
    assert_eq!((x.value.as_str(), x.version, x.deleted), ("5", 4, false));
    let z = sql.kv_get("z").await.unwrap();
    assert!(z.as_ref().is_none_or(|z| !z.live(now)), "{z:?}");
    // The next batch sees what the first wrote.
    let again = sql
        .kv_apply(
            vec![
                put("x", "6", KvExpect::Version(4)),
                put("z", "1", KvExpect::Absent),
            ],
            warden::kv::rules::on_write,
        )
        .await
        .unwrap();
    let versions: Vec<_> = again
        .iter()
        .map(|w| match w {
            KvWritten::Done(r) => r.version,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(versions, [5, 1]);
}

#[tokio::test]
async fn sqlite_kv_batches() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    kv_batches_apply_in_order(sql).await;
}

#[tokio::test]
async fn postgres_kv_batches() {
    let (_pg, sql) = crate::support::postgres_store().await;
    kv_batches_apply_in_order(sql).await;
}

/// A create of session `id` for `principal` ("" for none) in tenant `t`, with no limit.
fn create_job(id: &str, principal: &str, now: i64) -> warden::store::session::CreateJob {
    use warden::store::session::{CreateJob, NewSession};
    CreateJob {
        new: NewSession {
            id_hash: id.into(),
            tenant: "t".into(),
            principal: principal.into(),
            data: "{}".into(),
            idle_ttl_ms: 60_000,
            absolute_ttl_ms: 120_000,
        },
        limit: None,
        now,
        correlation_id: "c".into(),
    }
}

/// One batch of session changes: several changes of one session apply in turn (each sees
/// the one before), a refused change writes nothing, an unknown id or another tenant's
/// session is not found, and what the batch answered is what SQL holds after it.
async fn session_changes_apply_in_order(sql: SqlStore) {
    use warden::store::session::{ChangeJob, Changed, CreatedRow};
    let now = now_ms();
    let create = |id: &str| create_job(id, "p", now);
    let created = sql
        .session_create_batch(
            vec![create("s1"), create("s2")],
            warden::session::rules::RULES,
        )
        .await
        .unwrap();
    assert!(created
        .iter()
        .all(|c| matches!(c, CreatedRow::Created { .. })));
    // A second batch after the first: the feed numbers every event from one counter, gapless,
    // in the order the creates were submitted.
    sql.session_create_batch(
        vec![create("s3"), create("s4"), create("s5")],
        warden::session::rules::RULES,
    )
    .await
    .unwrap();
    let feed: Vec<(i64, String)> = sql
        .session_events("t", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.id_hash))
        .collect();
    let first = feed[0].0;
    let expected: Vec<(i64, String)> = (first..)
        .zip(["s1", "s2", "s3", "s4", "s5"].map(String::from))
        .collect();
    assert_eq!(feed, expected);
    let change = |tenant: &str, id: &str, expect: i64, data: &'static str| ChangeJob {
        tenant: tenant.into(),
        id_hash: id.into(),
        now,
        change: Box::new(move |row| (row.version == expect).then(|| (data.to_owned(), true))),
    };
    let said: Vec<String> = sql
        .session_change_batch(
            vec![
                change("t", "s1", 1, r#"{"a":1}"#),
                change("t", "s1", 1, r#"{"lost":1}"#),
                change("t", "s1", 2, r#"{"a":2}"#),
                change("t", "nope", 1, "{}"),
                change("other", "s2", 1, "{}"),
                change("t", "s2", 1, r#"{"b":1}"#),
            ],
            warden::session::rules::RULES,
        )
        .await
        .unwrap()
        .iter()
        .map(|c| match c {
            Changed::Done(r) => format!("{} at {}", r.data, r.version),
            Changed::Refused(Some(r)) => format!("refused at {}", r.version),
            Changed::Refused(None) => "not found".into(),
        })
        .collect();
    let expected = [
        r#"{"a":1} at 2"#,
        "refused at 2",
        r#"{"a":2} at 3"#,
        "not found",
        "not found",
        r#"{"b":1} at 2"#,
    ];
    assert_eq!(said, expected);
    for (id, data, version) in [("s1", r#"{"a":2}"#, 3), ("s2", r#"{"b":1}"#, 2)] {
        let row = sql.session("t", id).await.unwrap().unwrap();
        assert_eq!((row.data.as_str(), row.version), (data, version), "{id}");
    }
}

/// Creates take their principal's generation (0 without a principal), also in a batch that
/// mixes principals, and a create after "log out everywhere" takes the new one.
async fn session_creates_take_generations(sql: SqlStore) {
    use warden::store::session::CreatedRow;
    let now = now_ms();
    let create = |id: &str, principal: &str| create_job(id, principal, now);
    let generations = |created: Vec<CreatedRow>| -> Vec<i64> {
        created
            .into_iter()
            .map(|c| match c {
                CreatedRow::Created { row, .. } => row.generation,
                CreatedRow::LimitReached => -1,
            })
            .collect()
    };
    let first = sql
        .session_create_batch(
            vec![create("p-a", "p"), create("n-a", ""), create("q-a", "q")],
            warden::session::rules::RULES,
        )
        .await
        .unwrap();
    assert_eq!(generations(first), [1, 0, 1]);
    let revoked = sql.session_revoke_all("t", "p", now, "c").await.unwrap();
    assert_eq!(revoked.len(), 1);
    let second = sql
        .session_create_batch(
            vec![create("q-b", "q"), create("p-b", "p")],
            warden::session::rules::RULES,
        )
        .await
        .unwrap();
    assert_eq!(generations(second), [1, 2]);
    for (id, generation, state) in [
        ("p-a", 1, "revoked"),
        ("p-b", 2, "active"),
        ("n-a", 0, "active"),
    ] {
        let row = sql.session("t", id).await.unwrap().unwrap();
        assert_eq!(
            (row.generation, row.state.as_str()),
            (generation, state),
            "{id}"
        );
    }
}

#[tokio::test]
async fn sqlite_session_generations() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    session_creates_take_generations(sql).await;
}

#[tokio::test]
async fn postgres_session_generations() {
    let (_pg, sql) = crate::support::postgres_store().await;
    session_creates_take_generations(sql).await;
}

/// Concurrent batches changing one session lose nothing: each adds its own attributes, and
/// the row ends with every attribute and one version per change (on PostgreSQL a batch whose
/// read went stale reads and applies again).
async fn concurrent_session_changes_all_land(sql: SqlStore) {
    use warden::store::session::{ChangeJob, Changed};
    let now = now_ms();
    let job = create_job("hot", "", now);
    sql.session_create_batch(vec![job], warden::session::rules::RULES)
        .await
        .unwrap();
    let add = |name: String| ChangeJob {
        tenant: "t".into(),
        id_hash: "hot".into(),
        now,
        change: Box::new(move |row| {
            let mut doc: serde_json::Value = serde_json::from_str(&row.data).ok()?;
            doc[name.as_str()] = serde_json::json!(true);
            Some((doc.to_string(), true))
        }),
    };
    let batches = (0..8).map(|b| {
        let sql = sql.clone();
        let jobs: Vec<ChangeJob> = (0..5).map(|k| add(format!("b{b}k{k}"))).collect();
        async move {
            sql.session_change_batch(jobs, warden::session::rules::RULES)
                .await
                .unwrap()
        }
    });
    for answers in futures::future::join_all(batches).await {
        assert!(answers.iter().all(|a| matches!(a, Changed::Done(_))));
    }
    let row = sql.session("t", "hot").await.unwrap().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&row.data).unwrap();
    assert_eq!(doc.as_object().unwrap().len(), 40, "{doc}");
    assert_eq!(row.version, 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_session_changes() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    concurrent_session_changes_all_land(sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_session_changes() {
    let (_pg, sql) = crate::support::postgres_store().await;
    concurrent_session_changes_all_land(sql).await;
}

#[tokio::test]
async fn sqlite_session_changes() {
    let (_dir, sql) = crate::support::sqlite_store().await;
    session_changes_apply_in_order(sql).await;
}

#[tokio::test]
async fn postgres_session_changes() {
    let (_pg, sql) = crate::support::postgres_store().await;
    session_changes_apply_in_order(sql).await;
}
