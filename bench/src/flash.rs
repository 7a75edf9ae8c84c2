//! `warden bench flash-sale`: reservations on one hot SKU with a million units by distinct
//! buyers, then the 1 000-buyers-for-100-units burst. Every hold is durable in SQL before its
//! answer. Each row prints how many holds were answered beyond the stock (oversells, which
//! must be 0) and whether the inventory agrees with the answers.

use std::time::Instant;

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, pick, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};
use warden::store::redis::RESERVE_LUA;

/// Reserve one unit for a buyer nobody used before, of the hot SKU or one of `skus`.
#[derive(Clone)]
struct Buy {
    sku: String,
    skus: Option<usize>,
}

impl Step for Buy {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        let sku = match self.skus {
            None => self.sku.clone(),
            Some(k) => format!("{}-{}", self.sku, pick(c, n, k)),
        };
        let path = format!("/v1/inventory/{sku}/reservations");
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

async fn create(http: &mut Conn, sku: &str, total: i64) -> Result<(), String> {
    let path = format!("/v1/inventory/{sku}");
    match http.put(&path, &json!({ "total": total })).await? {
        (200, _) => Ok(()),
        (s, v) => Err(format!("cannot create {sku}: {s} {v}")),
    }
}

/// Creates SKUs `{prefix}-0` … `{prefix}-{k-1}` with 64 connections.
async fn create_many(url: &str, prefix: &str, k: usize, total: i64) -> Result<(), String> {
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let (url, prefix) = (url.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                let mut http = Conn::connect(&url).await?;
                for i in (t..k).step_by(64) {
                    create(&mut http, &format!("{prefix}-{i}"), total).await?;
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

/// Reservations on one hot SKU of a million units, with the raw reserve script as baseline.
pub(crate) async fn hot(
    args: &BenchArgs,
    mode: &str,
    epoch: i64,
    tag: &str,
    c: usize,
) -> Result<Row, String> {
    let sku = format!("bench-hot-{tag}-{c}");
    create(&mut Conn::connect(&args.url).await?, &sku, 1_000_000).await?;
    let op = Buy {
        sku: sku.clone(),
        skus: None,
    };
    let mut r = drive(args, c, op).await;
    let mut row = Row::named(
        "flash sale hot SKU",
        "reservations/s",
        mode,
        c,
        &mut r,
        &["reserve"],
    );
    row.keys = Some(1);
    row.check = Some(audit(&args.url, &sku, 1_000_000, r.ops).await?);
    let base = args.redis_port.map(|p| {
        seed_baseline(p, epoch).and_then(|keys| {
            let argv = [
                epoch.to_string(),
                "u__rand_int__".into(),
                "1".into(),
                "h__rand_int__".into(),
            ];
            let n = baseline::requests(row.rate);
            baseline::eval(p, c, n, "reserve.lua", RESERVE_LUA, &keys, &argv)
        })
    });
    baseline::attach(&mut row, base);
    Ok(row)
}

/// Reservations spread over `skus` SKUs of a million units each.
pub(crate) async fn spread(
    args: &BenchArgs,
    mode: &str,
    tag: &str,
    c: usize,
    skus: usize,
) -> Result<Row, String> {
    let sku = format!("bench-spread-{tag}-{c}-{skus}");
    create_many(&args.url, &sku, skus, 1_000_000).await?;
    let op = Buy {
        sku,
        skus: Some(skus),
    };
    let mut r = drive(args, c, op).await;
    let mut row = Row::named(
        "flash sale",
        "reservations/s",
        mode,
        c,
        &mut r,
        &["reserve"],
    );
    row.keys = Some(skus);
    Ok(row)
}

/// 1 000 buyers at once, each on a new connection, for 100 units.
async fn burst(args: &BenchArgs, mode: &str, tag: &str) -> Result<Row, String> {
    let sku = format!("bench-burst-{tag}");
    create(&mut Conn::connect(&args.url).await?, &sku, 100).await?;
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
    let mut run = Run::default();
    let (mut reserved, mut refused) = (0, 0);
    for b in buyers {
        match b.await.map_err(|e| e.to_string())? {
            Ok((201, us)) => {
                reserved += 1;
                run.first.0.push(us);
            }
            Ok((409, us)) => {
                refused += 1;
                run.first.0.push(us);
            }
            _ => run.refused += 1,
        }
    }
    run.elapsed = started.elapsed();
    run.ops = reserved + refused;
    let mut row = Row::named(
        "flash sale burst 1000 buyers for 100",
        "answers/s",
        mode,
        1000,
        &mut run,
        &["reserve"],
    );
    row.check = Some(format!(
        "reserved {reserved}  out_of_stock {refused}  all answered in {:.0} ms  {}",
        run.elapsed.as_secs_f64() * 1000.0,
        audit(&args.url, &sku, 100, reserved).await?
    ));
    Ok(row)
}

/// Runs the flash-sale suite.
pub(crate) async fn run(
    args: &BenchArgs,
    mode: &str,
    epoch: i64,
    tag: &str,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &c in &args.clients {
        rows.push(hot(args, mode, epoch, tag, c).await?);
    }
    rows.push(burst(args, mode, tag).await?);
    Ok(rows)
}
