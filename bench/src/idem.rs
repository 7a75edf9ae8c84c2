//! `warden bench idempotency`: begin+complete pairs on new keys (each completion durable in SQL
//! before its answer), and replays of completed keys, against the raw begin script.

use serde_json::json;

use super::client::Conn;
use super::{baseline, drive, BenchArgs, Run, Step};

/// Begin a new key, then complete it.
#[derive(Clone)]
struct Pairs(String);

impl Step for Pairs {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let key = format!("bench-{}-{c}-{n}", self.0);
        let begin = (
            format!("/v1/idempotency/{key}/begin"),
            json!({"fingerprint": "f"}),
        );
        run.pair(http, begin, 201, |v| {
            let body = json!({"token": v["token"], "response": {"charge": n, "ok": true}});
            (format!("/v1/idempotency/{key}/complete"), body)
        })
        .await
    }
}

/// Begin the client's completed key again: the saved response comes back.
#[derive(Clone)]
struct Replays(String);

impl Step for Replays {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let key = format!("bench-{}-{c}", self.0);
        let path = format!("/v1/idempotency/{key}/begin");
        let body = json!({"fingerprint": "f"});
        if n == 1 {
            let (_, v) = http.post(&path, &body).await?;
            let done = json!({"token": v["token"], "response": {"ok": true}});
            http.post(&format!("/v1/idempotency/{key}/complete"), &done)
                .await?;
            return Ok(());
        }
        run.single(http, &path, &body, 200).await
    }
}

/// Runs the idempotency suite.
/// The read a `begin` makes on the hot copy, as one script for `redis-benchmark`.
const PEEK: &str =
    "return redis.call('HMGET', KEYS[1], 'st', 'ep', 'ctr', 'fp', 'lu', 'ex', 'resp', 'cid', 'tp')";

pub(crate) async fn run(args: &BenchArgs, mode: &str, tag: &str) -> Result<(), String> {
    for &c in &args.clients {
        let mut r = drive(args, c, Pairs(format!("{tag}-p{c}"))).await;
        let rate = r.rate();
        // A begin reads the hot copy once (one HMGET) before SQL decides: its raw cost.
        let base = args.redis_port.map(|p| {
            let key = "warden:{ib}:__rand_int__:idem".to_owned();
            baseline::eval(p, c, baseline::requests(rate), PEEK, &[key], &[])
        });
        println!(
            "{mode:8} begin+complete clients {c:3}: {rate:9.0} pairs/s  refused {:5}  begin {}  complete {}{}",
            r.refused,
            r.first.line(),
            r.second.line(),
            baseline::column(base, rate)
        );
    }
    for &c in &args.clients {
        let mut r = drive(args, c, Replays(format!("{tag}-r{c}"))).await;
        println!(
            "{mode:8} replay (completed) clients {c:3}: {:9.0} begins/s  refused {:5}  {}",
            r.rate(),
            r.refused,
            r.first.line()
        );
    }
    Ok(())
}
