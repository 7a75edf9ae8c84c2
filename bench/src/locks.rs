//! `warden-bench locks`: acquire+release pairs on one key per client, acquires of new keys
//! (exclusive and shared) against the raw acquire scripts, and semaphore acquire+release pairs
//! against the raw semaphore script; for scaling, pairs over a shared set of keys.

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};

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

/// A shared acquire of a key nobody used before.
#[derive(Clone)]
struct NewShared(String);

impl Step for NewShared {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let path = format!("/v1/locks/bench-{}-{c}-{n}/acquire", self.0);
        let body = json!({"owner": format!("c{c}"), "ttl_ms": 10_000, "mode": "shared"});
        run.single(http, &path, &body, 200).await
    }
}

/// Acquire then release a permit of the client's own semaphore (limit 4).
#[derive(Clone)]
struct Permits(String);

impl Step for Permits {
    async fn step(&self, http: &mut Conn, c: usize, _: u64, run: &mut Run) -> Result<(), String> {
        let name = format!("bench-{}-{c}", self.0);
        let owner = format!("c{c}");
        let acquire = (
            format!("/v1/semaphores/{name}/acquire"),
            json!({"owner": owner, "limit": 4, "ttl_ms": 10_000}),
        );
        run.pair(http, acquire, 200, |v| {
            let id = v["permit_id"].as_str().unwrap_or("0");
            let path = format!("/v1/semaphores/{name}/permits/{id}/release");
            (path, json!({"owner": owner}))
        })
        .await
    }
}

/// Shared acquires of new keys, with the raw shared-acquire script as baseline.
pub(crate) async fn shared(args: &BenchArgs, mode: &str, epoch: i64, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, NewShared(format!("{tag}-s{c}"))).await;
    let name = "lock shared acquire (new keys)";
    let mut row = Row::named(name, "acquires/s", mode, c, &mut r, &["acquire"]);
    let base = args.redis_port.map(|p| {
        baseline::lock_eval(
            baseline::LockStep::Shared,
            p,
            c,
            baseline::requests(row.rate),
            epoch,
        )
    });
    baseline::attach(&mut row, base);
    row
}

/// Semaphore acquire+release pairs, with the raw acquire script as baseline.
pub(crate) async fn permits(args: &BenchArgs, mode: &str, epoch: i64, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, Permits(format!("{tag}-m{c}"))).await;
    let name = "semaphore acquire+release";
    let mut row = Row::named(name, "pairs/s", mode, c, &mut r, &["acquire", "release"]);
    let base = args.redis_port.map(|p| {
        baseline::lock_eval(
            baseline::LockStep::Permit,
            p,
            c,
            baseline::requests(row.rate),
            epoch,
        )
    });
    baseline::attach(&mut row, base);
    row
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
    let base = args.redis_port.map(|p| {
        baseline::lock_eval(
            baseline::LockStep::Acquire,
            p,
            c,
            baseline::requests(row.rate),
            epoch,
        )
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
        rows.push(shared(args, mode, epoch, tag, c).await);
        rows.push(permits(args, mode, epoch, tag, c).await);
    }
    Ok(rows)
}
