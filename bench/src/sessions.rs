//! `warden-bench sessions`: session creates (durable writes) and reads of live sessions (hot
//! reads) over 10 000 sessions, with the raw `redis-benchmark` of what a hot read of a Redis
//! copy would cost (`HMGET`) as the same-run baseline. Today SQL answers every session read,
//! so the ratio shows the distance to that limit.

use std::sync::Arc;

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};

/// Sessions the readers spread over.
pub(crate) const SESSIONS: usize = 10_000;

fn login(n: u64) -> serde_json::Value {
    json!({"principal": format!("user-{}", n % 1000), "data": {"user": n, "roles": ["reader"]},
        "idle_ttl_ms": 1_800_000, "absolute_ttl_ms": 43_200_000})
}

#[derive(Clone)]
struct Creates;

impl Step for Creates {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        run.single(http, "/v1/sessions", &login(n + c as u64 * 1_000_000), 201)
            .await
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

/// Creates the sessions the readers read: their ids.
async fn fill(url: &str) -> Result<Vec<String>, String> {
    let mut conn = Conn::connect(url).await?;
    let mut ids = Vec::with_capacity(SESSIONS);
    for n in 0..SESSIONS as u64 {
        let (s, v) = conn.post("/v1/sessions", &login(n)).await?;
        match v["session_id"].as_str() {
            Some(id) if s == 201 => ids.push(id.to_owned()),
            _ => return Err(format!("session fill: {s} {v}")),
        }
    }
    Ok(ids)
}

/// Runs the suite: creates at every client count, then reads.
pub(crate) async fn run(args: &BenchArgs, mode: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &c in &args.clients {
        let mut r = drive(args, c, Creates).await;
        rows.push(Row::named(
            "session create",
            "creates/s",
            mode,
            c,
            &mut r,
            &["create"],
        ));
    }
    let ids = Arc::new(fill(&args.url).await?);
    for &c in &args.clients {
        let mut r = drive(args, c, Reads(ids.clone())).await;
        let mut row = Row::named("session get (hot)", "reads/s", mode, c, &mut r, &["get"]);
        row.keys = Some(SESSIONS);
        if mode == "primary" {
            let base = args.redis_port.map(|p| {
                let n = baseline::requests(row.rate);
                let cmd = [
                    "HMGET",
                    "warden:{s__rand_int__}:sess",
                    "p",
                    "ep",
                    "v",
                    "d",
                    "st",
                ];
                baseline::command(p, c, n, &cmd)
            });
            baseline::attach(&mut row, base);
        }
        rows.push(row);
    }
    Ok(rows)
}
