//! `warden-bench sessions`: session creates and `PUT`s (durable writes) and reads of live
//! sessions (hot reads, answered from the Redis copy on the primary tier) over 10 000 sessions, with the raw
//! `redis-benchmark` of the copy's `HMGET` as the same-run baseline of a read (and, in
//! `bench all`, the bare server doing the same service calls).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};

/// Sessions the readers spread over.
pub(crate) const SESSIONS: usize = 10_000;

fn login(tag: &str, n: u64) -> serde_json::Value {
    json!({"principal": format!("user-{tag}-{}", n % 1000), "data": {"user": n, "roles": ["reader"]},
        "idle_ttl_ms": 1_800_000, "absolute_ttl_ms": 43_200_000})
}

#[derive(Clone)]
struct Creates(String);

impl Step for Creates {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let body = login(&self.0, n + c as u64 * 1_000_000);
        run.single(http, "/v1/sessions", &body, 201).await
    }
}

#[derive(Clone)]
struct Reads(Arc<Vec<String>>);

impl Step for Reads {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let id = &self.0[pick(c, n, self.0.len())];
        run.get(http, &format!("/v1/sessions/{id}"), 200).await
    }
}

/// `PUT`s of whole data at the version last answered: client `c` of `clients` writes only
/// sessions `c`, `c + clients`, …, so no two clients race one session.
#[derive(Clone)]
struct Puts {
    ids: Arc<Vec<String>>,
    versions: Arc<Vec<AtomicI64>>,
    clients: usize,
}

impl Step for Puts {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let owned = (self.ids.len() / self.clients).max(1);
        let i = (c + self.clients * (n as usize % owned)) % self.ids.len();
        let version = self.versions[i].load(Ordering::Relaxed);
        let body = json!({"data": {"user": i, "roles": ["reader"], "n": n},
            "expected_version": version});
        let path = format!("/v1/sessions/{}", self.ids[i]);
        let (status, v) = run.first.time(http.put(&path, &body)).await?;
        run.count(status == 200);
        if let Some(next) = v["version"].as_i64().filter(|_| status == 200) {
            self.versions[i].store(next, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Creates the sessions the readers read: their ids.
pub(crate) async fn fill(url: &str, tag: &str) -> Result<Arc<Vec<String>>, String> {
    let mut conn = Conn::connect(url).await?;
    let mut ids = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS as u64 {
        let (s, v) = conn.post("/v1/sessions", &login(tag, n)).await?;
        match v["session_id"].as_str() {
            Some(id) if s == 201 => ids.push(id.to_owned()),
            _ => return Err(format!("session fill: {s} {v}")),
        }
    }
    Ok(Arc::new(ids))
}

/// Creates at `c` clients.
pub(crate) async fn creates(args: &BenchArgs, mode: &str, tag: &str, c: usize) -> Row {
    let mut r = drive(args, c, Creates(tag.to_owned())).await;
    Row::named("session create", "creates/s", mode, c, &mut r, &["create"])
}

/// Hot reads of `ids` at `c` clients, with `HMGET` of a copy as the baseline when Redis is
/// known.
pub(crate) async fn reads(args: &BenchArgs, mode: &str, ids: &Arc<Vec<String>>, c: usize) -> Row {
    let mut r = drive(args, c, Reads(ids.clone())).await;
    let mut row = Row::named("session get (hot)", "reads/s", mode, c, &mut r, &["get"]);
    row.keys = Some(ids.len());
    if mode == "primary" {
        let base = args.redis_port.map(|p| {
            let n = baseline::requests(row.rate);
            let key = "warden:{session/default/__rand_int__}:copy";
            let mut cmd = vec!["HMGET", key, "p", "ep", "v"];
            cmd.extend(warden::store::session::COPY_FIELDS);
            baseline::command(p, c, n, &cmd)
        });
        baseline::attach(&mut row, base);
    }
    row
}

/// `PUT`s at `c` clients over `ids` (created by [`fill`], each at version 1 or as `versions`
/// last saw it).
pub(crate) async fn puts(
    args: &BenchArgs,
    mode: &str,
    ids: &Arc<Vec<String>>,
    versions: &Arc<Vec<AtomicI64>>,
    c: usize,
) -> Row {
    let step = Puts {
        ids: ids.clone(),
        versions: versions.clone(),
        clients: c,
    };
    let mut r = drive(args, c, step).await;
    let mut row = Row::named("session put", "writes/s", mode, c, &mut r, &["put"]);
    row.keys = Some(ids.len());
    row
}

/// Versions of `n` sessions just created.
pub(crate) fn fresh_versions(n: usize) -> Arc<Vec<AtomicI64>> {
    Arc::new((0..n).map(|_| AtomicI64::new(1)).collect())
}

/// Runs the suite: creates at every client count, then reads, then puts.
pub(crate) async fn run(args: &BenchArgs, mode: &str, tag: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &c in &args.clients {
        rows.push(creates(args, mode, tag, c).await);
    }
    let ids = fill(&args.url, tag).await?;
    for &c in &args.clients {
        rows.push(reads(args, mode, &ids, c).await);
    }
    let versions = fresh_versions(ids.len());
    for &c in &args.clients {
        rows.push(puts(args, mode, &ids, &versions, c).await);
    }
    Ok(rows)
}
