//! `warden-bench locks`: acquire+release pairs on one key per client, and acquires of new keys
//! against the raw acquire script; for scaling, pairs over a shared set of keys.

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};
use warden::store::redis::ACQUIRE_LUA;

/// Acquire then release a key: the client's own one, or one of `keys` shared by all clients
/// (a busy key counts as refused).
#[derive(Clone)]
struct Pairs {
    tag: String,
    keys: Option<usize>,
}

impl Step for Pairs {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let key = match self.keys {
            None => format!("bench-{}-{c}", self.tag),
            Some(k) => format!("bench-{}-k{}", self.tag, pick(c, n, k)),
        };
        let owner = format!("c{c}");
        let acquire = (
            format!("/v1/locks/{key}/acquire"),
            json!({"owner": owner, "ttl_ms": 10_000}),
        );
        run.pair(http, acquire, 200, |v| {
            let body = json!({"owner": owner, "fencing_token": v["fencing_token"]});
            (format!("/v1/locks/{key}/release"), body)
        })
        .await
    }
}

/// Acquire a key nobody used before.
#[derive(Clone)]
struct NewKeys(String);

impl Step for NewKeys {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let path = format!("/v1/locks/bench-{}-{c}-{n}/acquire", self.0);
        let body = json!({"owner": format!("c{c}"), "ttl_ms": 10_000});
        run.single(http, &path, &body, 200).await
    }
}

/// Acquire+release pairs, each client on its own key (`keys: None`) or over `keys` shared keys.
pub(crate) async fn pairs(
    args: &BenchArgs,
    mode: &str,
    tag: &str,
    c: usize,
    keys: Option<usize>,
) -> Row {
    let tag = format!("{tag}-p{c}-{}", keys.unwrap_or(0));
    let mut r = drive(args, c, Pairs { tag, keys }).await;
    let mut row = Row::named(
        "lock acquire+release",
        "pairs/s",
        mode,
        c,
        &mut r,
        &["acquire", "release"],
    );
    row.keys = keys;
    row
}

/// Acquires of new keys, with the raw acquire script as baseline when Redis is known.
pub(crate) async fn new_keys(args: &BenchArgs, mode: &str, epoch: i64, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, NewKeys(format!("{tag}-a{c}"))).await;
    let mut row = Row::named(
        "lock acquire (new keys)",
        "acquires/s",
        mode,
        c,
        &mut r,
        &["acquire"],
    );
    let argv = [epoch.to_string(), "owner".into(), "1000".into(), "0".into()];
    let base = args.redis_port.map(|p| {
        let key = "warden:{rb}:__rand_int__:lock";
        let n = baseline::requests(row.rate);
        let layout = baseline::slot_layout(key);
        baseline::eval(p, c, n, "acquire.lua", ACQUIRE_LUA, &layout, &argv)
    });
    baseline::attach(&mut row, base);
    row
}

/// Runs the lock suite.
pub(crate) async fn run(
    args: &BenchArgs,
    mode: &str,
    epoch: i64,
    tag: &str,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &c in &args.clients {
        rows.push(pairs(args, mode, tag, c, None).await);
    }
    for &c in &args.clients {
        rows.push(new_keys(args, mode, epoch, tag, c).await);
    }
    Ok(rows)
}
