//! `warden-bench idempotency`: begin+complete pairs on new keys (each completion durable in SQL
//! before its answer), and replays of completed keys; the baseline is the one read a begin makes
//! on the hot copy, run raw.

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};

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

/// Begins and completes `key`.
async fn complete(http: &mut Conn, key: &str) -> Result<(), String> {
    let (_, v) = http
        .post(
            &format!("/v1/idempotency/{key}/begin"),
            &json!({"fingerprint": "f"}),
        )
        .await?;
    let done = json!({"token": v["token"], "response": {"ok": true}});
    http.post(&format!("/v1/idempotency/{key}/complete"), &done)
        .await?;
    Ok(())
}

/// Begin a completed key again: the saved response comes back. Keys are the client's own one
/// (`keys: None`, completed on its first call) or one of `keys` completed beforehand.
#[derive(Clone)]
struct Replays {
    tag: String,
    keys: Option<usize>,
}

impl Step for Replays {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let key = match self.keys {
            None => format!("bench-{}-{c}", self.tag),
            Some(k) => format!("bench-{}-{}", self.tag, pick(c, n, k)),
        };
        if self.keys.is_none() && n == 1 {
            return complete(http, &key).await;
        }
        let path = format!("/v1/idempotency/{key}/begin");
        run.single(http, &path, &json!({"fingerprint": "f"}), 200)
            .await
    }
}

/// Completes keys `0..k` of `tag` with 64 connections.
async fn seed(url: &str, tag: &str, k: usize) -> Result<(), String> {
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let (url, tag) = (url.to_owned(), tag.to_owned());
            tokio::spawn(async move {
                let mut http = Conn::connect(&url).await?;
                for i in (t..k).step_by(64) {
                    complete(&mut http, &format!("bench-{tag}-{i}")).await?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// The read a `begin` makes on the hot copy, as one script for `redis-benchmark`.
const PEEK: &str =
    "return redis.call('HMGET', KEYS[1], 'st', 'ep', 'ctr', 'fp', 'lu', 'ex', 'resp', 'cid', 'tp')";

/// Begin+complete pairs on new keys, with the raw hot-copy read as baseline.
pub(crate) async fn pairs(args: &BenchArgs, mode: &str, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, Pairs(format!("{tag}-p{c}"))).await;
    let mut row = Row::named(
        "idempotency begin+complete",
        "pairs/s",
        mode,
        c,
        &mut r,
        &["begin", "complete"],
    );
    let base = args.redis_port.map(|p| {
        let key = "warden:{ib}:__rand_int__:idem".to_owned();
        baseline::eval(
            p,
            c,
            baseline::requests(row.rate),
            "HMGET",
            PEEK,
            &[key],
            &[],
        )
    });
    baseline::attach(&mut row, base);
    row
}

/// Replays of completed keys: each client's own one, or `keys` completed beforehand.
pub(crate) async fn replays(
    args: &BenchArgs,
    mode: &str,
    tag: &str,
    c: usize,
    keys: Option<usize>,
) -> Result<Row, String> {
    let tag = format!("{tag}-r{c}-{}", keys.unwrap_or(0));
    if let Some(k) = keys {
        seed(&args.url, &tag, k).await?;
    }
    let mut r = drive(args, c, Replays { tag, keys }).await;
    let mut row = Row::named(
        "idempotency replay (completed)",
        "begins/s",
        mode,
        c,
        &mut r,
        &["begin"],
    );
    row.keys = keys;
    Ok(row)
}

/// Runs the idempotency suite.
pub(crate) async fn run(args: &BenchArgs, mode: &str, tag: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &c in &args.clients {
        rows.push(pairs(args, mode, tag, c).await);
    }
    for &c in &args.clients {
        rows.push(replays(args, mode, tag, c, None).await?);
    }
    Ok(rows)
}
