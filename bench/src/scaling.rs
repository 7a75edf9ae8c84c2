//! Scaling rows of `warden bench all`: each path's throughput as clients grow (1, 16, 64, 256,
//! on its headline operation) and as its working set grows (1, 1 000, 100 000 keys, streams
//! or SKUs, at 64 clients), in both modes, on a fresh database per mode and round.

use super::all::{against, bar, say, warden};
use super::row::Row;
use super::servers::Servers;
use super::{flash, idem, locks, streams, target, BenchArgs};

/// Client counts of the clients dimension.
pub const CLIENTS: [usize; 4] = [1, 16, 64, 256];
/// Working-set sizes of the keys dimension.
pub const KEYS: [usize; 3] = [1, 1_000, 100_000];
/// The paths, by suite name.
pub const PATHS: [&str; 4] = ["locks", "idempotency", "streams", "flash-sale"];
/// Clients of the keys dimension.
const KEY_CLIENTS: usize = 64;

/// One point: the headline operation at `c` clients, or the keyed one over `keys`.
async fn point(
    path: &str,
    args: &BenchArgs,
    mode: &str,
    epoch: i64,
    tag: &str,
    (c, keys): (usize, Option<usize>),
) -> Result<Row, String> {
    let tag = format!("{tag}-{c}-{}", keys.unwrap_or(0));
    Ok(match (path, keys) {
        ("locks", None) => locks::new_keys(args, mode, epoch, &tag, c).await,
        ("locks", Some(k)) => locks::pairs(args, mode, &tag, c, Some(k)).await,
        ("idempotency", None) => idem::pairs(args, mode, &tag, c).await,
        ("idempotency", Some(k)) => idem::replays(args, mode, &tag, c, Some(k)).await?,
        ("streams", k) => {
            let k = k.unwrap_or(streams::STREAMS);
            streams::pairs(args, mode, &tag, c, k).await?
        }
        ("flash-sale", None) => flash::hot(args, mode, epoch, &tag, c).await?,
        ("flash-sale", Some(k)) => flash::spread(args, mode, &tag, c, k).await?,
        (other, _) => return Err(format!("no scaling for {other}")),
    })
}

/// Every point of every path `args` wants, in `args.rounds` rounds, with
/// `args.scaling_seconds` per point and no baselines (the headline rows carry those).
pub(crate) async fn run(servers: &Servers, args: &BenchArgs) -> Result<Vec<Row>, String> {
    let points: Vec<(usize, Option<usize>)> = CLIENTS
        .iter()
        .map(|&c| (c, None))
        .chain(KEYS.iter().map(|&k| (KEY_CLIENTS, Some(k))))
        .collect();
    let paths: Vec<&str> = PATHS.into_iter().filter(|p| args.wants(p)).collect();
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let bar = bar((args.rounds * 2 * paths.len() * points.len()) as u64);
    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        for primary in [true, false] {
            let mode = if primary { "primary" } else { "fallback" };
            let w = warden(servers, args, &format!("s{round}_{mode}"), primary).await?;
            let (_, epoch) = target(&w.url).await?;
            let mut run = against(&w, args, 1, None);
            run.seconds = args.scaling_seconds;
            for &path in &paths {
                for &(c, keys) in &points {
                    let dim = if keys.is_some() { "keys" } else { "clients" };
                    bar.set_message(format!("scaling round {round}: {path} {mode}, {dim}"));
                    let tag = format!("{}-s{round}", warden::runtime::clock::now_ms());
                    let mut row = point(path, &run, mode, epoch, &tag, (c, keys)).await?;
                    row.round = Some(round);
                    row.database = Some(format!("scaling-{dim}"));
                    say(&bar, &row.line());
                    rows.push(row);
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}
