//! Twelve clients contend for one key through a Redis SIGKILL and an empty restart, on tight
//! settings, five times in a row; the invariants are checked over each recorded history:
//! no grant hands back a token at or below one answered earlier (the owner's retry of a lease
//! it still holds excepted), every release of a live lease answers `released` unless its tier
//! died under it, and every 503 carries a stable reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::history::{contend, History};
use crate::support::{Postgres, Redis, Warden};
use warden::tier::Blocked;

const TTL_MS: i64 = 2_000;

fn tight(pg: &Postgres, redis: &Redis) -> Vec<(&'static str, String)> {
    vec![
        ("WARDEN_DATABASE_URL", pg.url()),
        ("WARDEN_REDIS_URL", redis.url()),
        ("WARDEN_BREAKER_FAILURES", "3".into()),
        ("WARDEN_BREAKER_OPEN_MS", "1000".into()),
        // The kill is seen at once (refused connections); a short timeout would only turn a
        // slow answer on a loaded lane into a spurious 503 before the kill.
        ("WARDEN_REDIS_TIMEOUT_MS", "250".into()),
        ("WARDEN_FAILOVER_GRACE_MS", "2500".into()),
        ("WARDEN_TIER_LEASE_MS", "1000".into()),
    ]
}

async fn one_run(run: usize) {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Arc::new(Warden::start(&tight(&pg, &redis)));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..12)
        .map(|c| {
            tokio::spawn(contend(
                w.clone(),
                0,
                c,
                vec!["hot".into()],
                TTL_MS,
                Duration::from_millis(2),
                history.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep_until((started + Duration::from_secs(3)).into()).await;
    // Taken before the kill: the process dies inside `kill`, before it returns.
    let killed = Instant::now();
    redis.kill();
    tokio::time::sleep_until((started + Duration::from_secs(11)).into()).await;
    redis.restart(); // empty
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(20);
    while history.count_mode_after("primary", restarted) < 20 {
        assert!(
            Instant::now() < deadline,
            "run {run}: no fail-back\n{}",
            w.tail_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = history
        .grants()
        .iter()
        .filter(|g| g.mode == "primary" && g.requested > restarted)
        .map(|g| g.requested)
        .min()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let grants = history.grants();
    history.assert_tokens_grow();
    history.assert_no_overlap();
    for mode in ["primary", "fallback"] {
        assert!(history.count_mode(mode) > 0, "run {run}: no {mode} grant");
    }
    assert!(
        history.count_mode_after("fallback", killed) > 0,
        "run {run}: served on sql"
    );
    for g in &grants {
        let r = g.release.as_ref().expect("every release was answered");
        let live = g.release_sent.unwrap() < g.requested + g.ttl;
        // A Redis lease answered before the kill may die with Redis: its release, answered
        // while Redis was down or before the fail-back, may say so.
        let lost_with_redis = g.mode == "primary"
            && g.answered < restarted
            && r.answered > killed
            && r.answered < back
            && ((r.status, r.state.as_str()) == (409, "lock_lost") && r.reason == "tier_switched"
                || r.status == 503);
        assert!(
            !live || r.state == "released" || lost_with_redis,
            "run {run}: release of a live lease answered {r:?}\n {g:?}"
        );
    }
    for v in history.refusals() {
        let reason = v["reason"].as_str().unwrap_or_default();
        assert!(Blocked::REASONS.contains(&reason), "run {run}: {v}");
    }
    let released = grants
        .iter()
        .filter(|g| g.release.as_ref().is_some_and(|r| r.state == "released"))
        .count();
    eprintln!(
        "run {run}: {} grants ({} primary, {} fallback), {released} released, {} refusals",
        grants.len(),
        history.count_mode("primary"),
        history.count_mode("fallback"),
        history.refusals().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_clients_through_a_redis_kill_and_empty_restart_five_times() {
    for run in 1..=5 {
        one_run(run).await;
    }
}
