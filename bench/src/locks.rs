//! `warden-bench locks`: acquire+release pairs on one key per client, and acquires of new keys
//! against the raw acquire script.

use serde_json::json;

use super::client::Conn;
use super::{baseline, drive, BenchArgs, Run, Step};
use warden::store::redis::ACQUIRE_LUA;

/// Acquire then release the client's own key.
#[derive(Clone)]
struct Pairs(String);

impl Step for Pairs {
    async fn step(&self, http: &mut Conn, c: usize, _n: u64, run: &mut Run) -> Result<(), String> {
        let key = format!("bench-{}-{c}", self.0);
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

/// Runs the lock suite.
pub(crate) async fn run(args: &BenchArgs, mode: &str, epoch: i64, tag: &str) -> Result<(), String> {
    for &c in &args.clients {
        let mut r = drive(args, c, Pairs(format!("{tag}-p{c}"))).await;
        println!(
            "{mode:8} acquire+release clients {c:3}: {:9.0} pairs/s  refused {:5}  acquire {}  release {}",
            r.rate(), r.refused, r.first.line(), r.second.line()
        );
    }
    for &c in &args.clients {
        let mut r = drive(args, c, NewKeys(format!("{tag}-a{c}"))).await;
        let rate = r.rate();
        let argv = [epoch.to_string(), "owner".into(), "1000".into()];
        let base = args.redis_port.map(|p| {
            let key = "warden:{rb}:__rand_int__:lock";
            baseline::eval(
                p,
                c,
                baseline::requests(rate),
                ACQUIRE_LUA,
                &baseline::slot_layout(key),
                &argv,
            )
        });
        println!(
            "{mode:8} acquire (new keys) clients {c:3}: {rate:9.0} acquires/s  refused {:5}  {}{}",
            r.refused,
            r.first.line(),
            baseline::column(base, rate)
        );
    }
    Ok(())
}
