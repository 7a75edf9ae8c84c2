//! `warden bench all`: every suite in both modes, on throwaway Redis and PostgreSQL, in
//! `--rounds` rounds; each round measures on a fresh database and again on the same, now
//! warmed, database. Prints every row as it lands, then one summary of medians against the
//! targets, and writes the runs and the summary as JSON and the charts as PNG. Figures are
//! measured, never asserted.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::row::Row;
use super::servers::{Server, Servers, Warden};
use super::summary::{self, Summary};
use super::{
    chart, cpu, flash, groups, idem, kv, locks, pgbench, scaling, sessions, streams, target, wrk,
    BenchArgs,
};

/// The suites `all` runs, in order.
pub const SUITES: [&str; 7] = [
    "locks",
    "locks-wrk",
    "idempotency",
    "flash-sale",
    "streams",
    "kv",
    "sessions",
];

/// Everything one `bench all` measured, as written to JSON.
#[derive(Serialize)]
struct Report<'a> {
    date: String,
    command: String,
    machine: String,
    rounds: usize,
    seconds: u64,
    clients: usize,
    summary: &'a [Summary],
    runs: &'a [Row],
}

/// The headline rows of `suite` at the run's client count.
pub(crate) async fn suite_rows(
    suite: &str,
    args: &BenchArgs,
    mode: &str,
    epoch: i64,
    tag: &str,
) -> Result<Vec<Row>, String> {
    let c = args.clients[0];
    Ok(match suite {
        "locks" => vec![
            locks::new_keys(args, mode, epoch, tag, c).await,
            locks::pairs(args, mode, tag, c, None).await,
            locks::shared(args, mode, epoch, tag, c).await,
            locks::permits(args, mode, epoch, tag, c).await,
            groups::pairs(args, mode, epoch, tag, c, true).await,
            groups::pairs(args, mode, epoch, tag, c, false).await,
        ],
        "locks-wrk" => vec![wrk::acquire(args, mode, epoch, c)?],
        "idempotency" => vec![
            idem::pairs(args, mode, tag, c).await,
            idem::replays(args, mode, tag, c, None).await?,
        ],
        "flash-sale" => vec![flash::hot(args, mode, epoch, tag, c).await?],
        "streams" => vec![streams::pairs(args, mode, tag, c, streams::STREAMS).await?],
        "kv" => kv_rows(args, mode, tag, c).await?,
        "sessions" => session_rows(args, mode, tag, c).await?,
        other => return Err(format!("unknown suite {other}")),
    })
}

/// Hot reads and durable writes of KV records (after writing every key once).
async fn kv_rows(args: &BenchArgs, mode: &str, tag: &str, c: usize) -> Result<Vec<Row>, String> {
    kv::fill(&args.url, tag).await?;
    Ok(vec![
        kv::reads(args, mode, tag, c).await,
        kv::writes(args, mode, tag, c).await,
    ])
}

/// Session creates, then hot reads and `PUT`s of 10 000 sessions.
async fn session_rows(
    args: &BenchArgs,
    mode: &str,
    tag: &str,
    c: usize,
) -> Result<Vec<Row>, String> {
    let created = sessions::creates(args, mode, tag, c).await;
    let ids = sessions::fill(&args.url, tag).await?;
    let read = sessions::reads(args, mode, &ids, c).await;
    let versions = sessions::fresh_versions(ids.len());
    let put = sessions::puts(args, mode, &ids, &versions, c).await;
    Ok(vec![created, read, put])
}

/// Suites measured against the bare server too (it serves their headline calls).
const BARE: [&str; 6] = [
    "locks",
    "idempotency",
    "flash-sale",
    "streams",
    "kv",
    "sessions",
];

/// The headline rows the bare server serves: new-key acquires, begin+complete pairs, hot-SKU
/// reservations, stream intake+commit pairs.
async fn bare_rows(
    suite: &str,
    args: &BenchArgs,
    epoch: i64,
    tag: &str,
) -> Result<Vec<Row>, String> {
    let c = args.clients[0];
    match suite {
        "kv" => return kv_rows(args, "bare", tag, c).await,
        "sessions" => return session_rows(args, "bare", tag, c).await,
        _ => {}
    }
    Ok(vec![match suite {
        "locks" => locks::new_keys(args, "bare", epoch, tag, c).await,
        "idempotency" => idem::pairs(args, "bare", tag, c).await,
        "flash-sale" => flash::hot(args, "bare", epoch, tag, c).await?,
        _ => streams::pairs(args, "bare", tag, c, streams::STREAMS).await?,
    }])
}

/// Starts a Warden in `mode` on a new database named `db`.
pub(crate) async fn warden(
    servers: &Servers,
    args: &BenchArgs,
    db: &str,
    primary: bool,
) -> Result<Warden, String> {
    serve(Server::Warden, servers, args, db, primary).await
}

/// Starts `server` in `mode` on a new database named `db`.
async fn serve(
    server: Server,
    servers: &Servers,
    args: &BenchArgs,
    db: &str,
    primary: bool,
) -> Result<Warden, String> {
    let url = servers.fresh_db(db)?;
    let redis = if primary {
        servers.flush_redis()?;
        Some(servers.redis_url())
    } else {
        None
    };
    let w = Warden::start(server, servers, &url, redis, &args.warden_env).await?;
    cpu::watch_warden(Some(w.pid()));
    Ok(w)
}

/// The args of one measurement against `w`.
pub(crate) fn against(
    w: &Warden,
    base: &BenchArgs,
    clients: usize,
    redis: Option<u16>,
) -> BenchArgs {
    BenchArgs {
        url: w.url.clone(),
        clients: vec![clients],
        redis_port: redis,
        ..base.clone()
    }
}

/// A progress bar of `len` steps.
pub(crate) fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    bar
}

/// Prints `line` above the bar, or plainly when the bar is hidden (output not a terminal).
pub(crate) fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

/// Runs the headline suites `args.rounds` times.
async fn headline(
    servers: &Servers,
    args: &BenchArgs,
    suites: &[&str],
) -> Result<Vec<Row>, String> {
    let c = args.clients.iter().copied().max().unwrap_or(64);
    let bare_suites = suites.iter().filter(|s| BARE.contains(s)).count();
    let bar = bar((args.rounds * (suites.len() + bare_suites) * 4) as u64);
    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        for suite in suites {
            let bare = BARE.contains(suite).then_some((Server::Bare, true, "bare"));
            let plans = [
                Some((Server::Warden, true, "primary")),
                Some((Server::Warden, false, "fallback")),
                bare,
            ];
            for (server, primary, mode) in plans.into_iter().flatten() {
                let db = format!("r{round}_{}_{mode}", suite.replace('-', "_"));
                let w = serve(server, servers, args, &db, primary).await?;
                let (_, epoch) = target(&w.url).await?;
                let redis = (server == Server::Warden && primary).then_some(servers.redis_port);
                let run = against(&w, args, c, redis);
                for state in ["fresh", "warmed"] {
                    bar.set_message(format!("round {round}: {suite} {mode}, {state} database"));
                    let tag = format!("{}-{round}-{state}", warden::runtime::clock::now_ms());
                    let measured = if server == Server::Bare {
                        bare_rows(suite, &run, epoch, &tag).await?
                    } else {
                        suite_rows(suite, &run, mode, epoch, &tag).await?
                    };
                    for mut row in measured {
                        if mode == "fallback" {
                            pgbench::attach(servers, &db, args.seconds, &mut row);
                        }
                        row.round = Some(round);
                        row.database = Some(state.into());
                        say(&bar, &row.line());
                        rows.push(row);
                    }
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// One line about this machine and the servers' versions.
fn machine() -> String {
    let out = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mem = out("sh", &["-c", "free -g | awk '/Mem:/{print $2}'"]);
    let pg = out("sh", &["-c", "ls -d /usr/lib/postgresql/*/bin | tail -1"]);
    format!(
        "{} cores, {mem} GiB; {}; {}",
        out("nproc", &[]),
        out("redis-server", &["--version"]),
        out(&format!("{pg}/postgres"), &["--version"])
    )
}

/// Runs `warden bench all`.
pub(crate) async fn run(args: &BenchArgs) -> Result<(), String> {
    let servers = Servers::start()?;
    let have_wrk = std::process::Command::new("wrk").arg("-v").output().is_ok();
    let suites: Vec<&str> = SUITES
        .iter()
        .copied()
        .filter(|s| *s != "locks-wrk" || have_wrk)
        .filter(|s| args.wants(s))
        .collect();
    println!("# warden bench all: {}", machine());
    let mut rows = headline(&servers, args, &suites).await?;
    if !args.no_scaling {
        rows.extend(scaling::run(&servers, args).await?);
    }
    let summary = summary::medians(&rows);
    println!("\n{}", summary::table(&summary));
    let date = out_date();
    let dir = std::path::Path::new(&args.out);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let report = Report {
        date: date.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        rounds: args.rounds,
        seconds: args.seconds,
        clients: args.clients.iter().copied().max().unwrap_or(64),
        summary: &summary,
        runs: &rows,
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
    let file = dir.join(format!("all-{date}.json"));
    std::fs::write(&file, json).map_err(|e| e.to_string())?;
    draw(&summary, &file)?;
    println!("# wrote {} and its charts", file.display());
    Ok(())
}

/// Draws the charts of `summary` next to the report `file`.
fn draw(summary: &[Summary], file: &std::path::Path) -> Result<(), String> {
    chart::targets(summary, &file.with_extension("targets.png"))?;
    if summary.iter().any(|s| s.database.starts_with("scaling")) {
        chart::scaling(summary, &file.with_extension("scaling.png"))?;
    }
    Ok(())
}

/// Reads the runs of a report written by `all`, prints its summary again and redraws its
/// charts.
pub(crate) fn redraw(file: &std::path::Path) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Runs {
        runs: Vec<Row>,
    }
    let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let runs: Runs = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let summary = summary::medians(&runs.runs);
    println!("{}", summary::table(&summary));
    draw(&summary, file)
}

/// Today's date and time, UTC, as `YYYY-MM-DDTHHMM` (a file name part).
fn out_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "undated".into())
}
