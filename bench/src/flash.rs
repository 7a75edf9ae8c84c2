//! `warden bench flash-sale`: reservations on one hot SKU with a million units by distinct
//! buyers, then the 1 000-buyers-for-100-units burst. Every hold is durable in SQL before its
//! answer. Each row prints how many holds were answered beyond the stock (oversells, which
//! must be 0) and whether the inventory agrees with the answers.

use std::time::Instant;

use serde_json::json;

use super::client::Conn;
use super::{baseline, drive, BenchArgs, Run, Samples, Step};
use warden::store::redis::RESERVE_LUA;

/// Reserve one unit of the SKU for a buyer nobody used before.
#[derive(Clone)]
struct Buy(String);

impl Step for Buy {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let path = format!("/v1/inventory/{}/reservations", self.0);
        let body = json!({"user_id": format!("c{c}-{n}"), "quantity": 1});
        run.single(http, &path, &body, 201).await
    }
}

/// Holds answered, the inventory's view of them, and the oversell count.
async fn audit(url: &str, sku: &str, total: i64, answered: usize) -> Result<String, String> {
    let (_, v) = Conn::connect(url)
        .await?
        .get(&format!("/v1/inventory/{sku}"))
        .await?;
    let reserved = v["reserved"].as_i64().unwrap_or(-1);
    let oversells = (answered as i64 - total).max(0) + (reserved - total).max(0);
    let agrees = if reserved == answered as i64 {
        "yes"
    } else {
        "NO"
    };
    Ok(format!(
        "oversells {oversells}  inventory reserved {reserved} = answered {answered}: {agrees}"
    ))
}

async fn create(url: &str, sku: &str, total: i64) -> Result<(), String> {
    let path = format!("/v1/inventory/{sku}");
    match Conn::connect(url)
        .await?
        .put(&path, &json!({ "total": total }))
        .await?
    {
        (200, _) => Ok(()),
        (s, v) => Err(format!("cannot create {sku}: {s} {v}")),
    }
}

/// Seeds a baseline SKU on Redis directly (so the raw script takes its reserve path) and
/// returns its keys.
fn seed_baseline(port: u16, epoch: i64) -> Result<Vec<String>, String> {
    let keys: Vec<String> = ["inv", "inv_users", "inv_holds"]
        .iter()
        .map(|k| format!("warden:{{fb}}:{k}"))
        .collect();
    let big = "1000000000000";
    let status = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "HSET",
            &keys[0],
            "ep",
            &epoch.to_string(),
        ])
        .args([
            "total",
            big,
            "avail",
            big,
            "reserved",
            "0",
            "confirmed",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("redis-cli: {e}"))?;
    status
        .success()
        .then_some(keys)
        .ok_or("redis-cli failed".into())
}

/// Runs the flash-sale suite.
pub(crate) async fn run(args: &BenchArgs, mode: &str, epoch: i64, tag: &str) -> Result<(), String> {
    for &c in &args.clients {
        let sku = format!("bench-hot-{tag}-{c}");
        create(&args.url, &sku, 1_000_000).await?;
        let mut r = drive(args, c, Buy(sku.clone())).await;
        let rate = r.rate();
        let base = args.redis_port.map(|p| {
            seed_baseline(p, epoch).and_then(|keys| {
                let argv = [
                    epoch.to_string(),
                    "u__rand_int__".into(),
                    "1".into(),
                    "h__rand_int__".into(),
                ];
                baseline::eval(p, c, baseline::requests(rate), RESERVE_LUA, &keys, &argv)
            })
        });
        println!(
            "{mode:8} hot sku (1M units) clients {c:3}: {rate:9.0} reservations/s  refused {:5}  {}  {}{}",
            r.refused,
            r.first.line(),
            audit(&args.url, &sku, 1_000_000, r.ops).await?,
            baseline::column(base, rate)
        );
    }
    let sku = format!("bench-burst-{tag}");
    create(&args.url, &sku, 100).await?;
    let started = Instant::now();
    let buyers: Vec<_> = (0..1000)
        .map(|b| {
            let url = args.url.clone();
            let path = format!("/v1/inventory/{sku}/reservations");
            tokio::spawn(async move {
                let mut http = Conn::connect(&url).await?;
                let t = Instant::now();
                let body = json!({"user_id": format!("burst-{b}"), "quantity": 1});
                let (status, _) = http.post(&path, &body).await?;
                Ok::<_, String>((status, t.elapsed().as_micros() as u64))
            })
        })
        .collect();
    let mut latency = Samples::default();
    let (mut reserved, mut refused, mut failed) = (0, 0, 0);
    for b in buyers {
        match b.await.map_err(|e| e.to_string())? {
            Ok((201, us)) => {
                reserved += 1;
                latency.0.push(us);
            }
            Ok((409, us)) => {
                refused += 1;
                latency.0.push(us);
            }
            _ => failed += 1,
        }
    }
    let wall = started.elapsed();
    println!(
        "{mode:8} burst 1000 buyers for 100: reserved {reserved}  out_of_stock {refused}  failed {failed}  all answered in {:.0} ms  {}  {}",
        wall.as_secs_f64() * 1000.0,
        latency.line(),
        audit(&args.url, &sku, 100, reserved).await?
    );
    Ok(())
}
