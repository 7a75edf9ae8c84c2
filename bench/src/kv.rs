//! `warden-bench kv`: hot reads and durable writes of KV records over 10 000 keys, with the
//! raw `redis-benchmark` of the Redis commands each uses (`HMGET` of the copy; the hold and
//! seed scripts of a write) as the same-run baseline.

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};

/// Keys the clients spread over.
pub(crate) const KEYS: usize = 10_000;

fn key(tag: &str, i: usize) -> String {
    format!("bench-kv-{tag}-{i}")
}

/// A value of about 200 bytes, like a small profile or a feature flag set.
fn value(n: u64) -> serde_json::Value {
    json!({"n": n, "name": "a user of the benchmark", "flags": ["a", "b", "c"],
        "note": "x".repeat(120)})
}

#[derive(Clone)]
struct Reads(String);

impl Step for Reads {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let path = format!("/v1/kv/{}", key(&self.0, pick(c, n, KEYS)));
        run.get(http, &path, 200).await
    }
}

#[derive(Clone)]
struct Writes(String);

impl Step for Writes {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let path = format!("/v1/kv/{}", key(&self.0, pick(c, n, KEYS)));
        run.put(http, &path, &json!({ "value": value(n) }), 200)
            .await
    }
}

/// Writes every key once, so reads find them.
pub(crate) async fn fill(url: &str, tag: &str) -> Result<(), String> {
    let mut conn = Conn::connect(url).await?;
    for i in 0..KEYS {
        let (s, v) = conn
            .put(
                &format!("/v1/kv/{}", key(tag, i)),
                &json!({"value": value(0)}),
            )
            .await?;
        if s != 200 {
            return Err(format!("kv fill: {s} {v}"));
        }
    }
    Ok(())
}

/// Hot reads at `c` clients, with `HMGET` of a copy as the baseline when Redis is known.
pub(crate) async fn reads(args: &BenchArgs, mode: &str, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, Reads(tag.to_owned())).await;
    let mut row = Row::named("kv get (hot)", "reads/s", mode, c, &mut r, &["get"]);
    row.keys = Some(KEYS);
    if mode == "primary" {
        let base = args.redis_port.map(|p| {
            let n = baseline::requests(row.rate);
            let cmd = [
                "HMGET",
                "warden:{bench-kv-__rand_int__}:kv",
                "p",
                "ep",
                "v",
                "d",
                "e",
                "t",
            ];
            baseline::command(p, c, n, &cmd)
        });
        baseline::attach(&mut row, base);
    }
    row
}

/// Durable writes at `c` clients, with the hold script as the baseline when Redis is known
/// (a write runs it and the seed script, around its SQL statement).
pub(crate) async fn writes(args: &BenchArgs, mode: &str, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, Writes(tag.to_owned())).await;
    let mut row = Row::named("kv put", "writes/s", mode, c, &mut r, &["put"]);
    row.keys = Some(KEYS);
    if mode == "primary" {
        let base = args.redis_port.map(|p| {
            let n = baseline::requests(row.rate);
            let keys = ["warden:{bench-kv-__rand_int__}:kv".to_owned()];
            let argv = ["300000".to_owned()];
            baseline::eval(
                p,
                c,
                n,
                "copy_hold.lua",
                warden::store::redis::COPY_HOLD_LUA,
                &keys,
                &argv,
            )
        });
        baseline::attach(&mut row, base);
    }
    row
}

/// Runs the suite: fill, then reads and writes at every client count.
pub(crate) async fn run(args: &BenchArgs, mode: &str, tag: &str) -> Result<Vec<Row>, String> {
    fill(&args.url, tag).await?;
    let mut rows = Vec::new();
    for &c in &args.clients {
        rows.push(reads(args, mode, tag, c).await);
    }
    for &c in &args.clients {
        rows.push(writes(args, mode, tag, c).await);
    }
    Ok(rows)
}
