//! `warden bench streams`: 1 000 streams (contacts), each client driving its own share of them
//! with intake + in-order commit pairs (every sequence and commit durable in SQL before its
//! answer). After each row, every stream is read back: all its intents must be committed, in
//! order (`last_committed = next_sequence - 1 = version`, nothing parked). The baseline is the
//! one Redis step of streams (the copy raise, made only when a batch applies a parked commit;
//! the in-order commits here make none) run raw on the same Redis.

use serde_json::json;

use super::client::Conn;
use super::drive::{drive, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};
use warden::store::redis::STREAM_RAISE_LUA;

/// Streams driven per row unless a scaling row says otherwise.
pub(crate) const STREAMS: usize = 1_000;

/// Rows with at most this many streams are read back after the run.
const AUDITED: usize = 1_000;

/// One intent on one of the client's streams, then its commit.
#[derive(Clone)]
struct IntakeCommit {
    prefix: String,
    clients: usize,
    streams: usize,
}

impl IntakeCommit {
    fn stream(&self, s: usize) -> String {
        format!("{}-{s}", self.prefix)
    }
}

impl Step for IntakeCommit {
    async fn step(&self, http: &mut Conn, c: usize, n: u64, run: &mut Run) -> Result<(), String> {
        // Client c owns streams c, c + clients, c + 2·clients, … (below `streams`); with fewer
        // streams than clients, clients share stream c mod streams and some commits park.
        let s = if self.streams <= self.clients {
            c % self.streams
        } else {
            let owned = (self.streams - c).div_ceil(self.clients);
            c + ((n as usize - 1) % owned) * self.clients
        };
        let stream = self.stream(s);
        let id = format!("c{c}i{n}");
        let body = json!({"intent_id": id, "intent_type": "message", "dispatch_priority": n % 3,
            "payload": {"text": "appointment confirmed", "n": n}});
        let intake = (format!("/v1/streams/{stream}/intents"), body);
        run.pair(http, intake, 201, |v| {
            let body = json!({"commit_sequence": v["commit_sequence"], "intent_id": id});
            (format!("/v1/streams/{stream}/commits"), body)
        })
        .await
    }
}

/// Reads every stream back: how many are fully committed in order, and the intents committed.
async fn audit(url: &str, op: &IntakeCommit) -> Result<String, String> {
    let mut http = Conn::connect(url).await?;
    let (mut in_order, mut committed, mut untouched) = (0, 0, 0);
    for s in 0..op.streams {
        let (status, v) = http.get(&format!("/v1/streams/{}", op.stream(s))).await?;
        if status == 404 {
            untouched += 1;
            continue;
        }
        let last = v["last_committed"].as_i64().unwrap_or(-1);
        let done = v["next_sequence"].as_i64() == Some(last + 1)
            && v["version"].as_i64() == Some(last)
            && v["waiting"].as_array().is_some_and(Vec::is_empty);
        in_order += usize::from(done);
        committed += last.max(0);
    }
    let touched = op.streams - untouched;
    Ok(format!(
        "streams fully committed in order {in_order}/{touched}, intents committed {committed}"
    ))
}

/// Intake+commit pairs over `streams` streams, with the copy raise run raw as baseline.
pub(crate) async fn pairs(
    args: &BenchArgs,
    mode: &str,
    tag: &str,
    c: usize,
    streams: usize,
) -> Result<Row, String> {
    let op = IntakeCommit {
        prefix: format!("bench-{tag}-c{c}-s{streams}"),
        clients: c,
        streams,
    };
    let mut r = drive(args, c, op.clone()).await;
    let mut row = Row::named(
        "streams intake+commit",
        "intents/s",
        mode,
        c,
        &mut r,
        &["intake", "commit"],
    );
    row.keys = Some(streams);
    if streams <= AUDITED {
        row.check = Some(audit(&args.url, &op).await?);
    }
    let base = args.redis_port.map(|p| {
        let keys = ["warden:{bs}:__rand_int__:stream".to_owned()];
        let argv = ["__rand_int__", "__rand_int__", "__rand_int__", "86400000"].map(String::from);
        let n = baseline::requests(row.rate);
        baseline::eval(p, c, n, "stream_raise.lua", STREAM_RAISE_LUA, &keys, &argv)
    });
    baseline::attach(&mut row, base);
    Ok(row)
}

/// Runs the streams suite.
pub(crate) async fn run(args: &BenchArgs, mode: &str, tag: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &c in &args.clients {
        rows.push(pairs(args, mode, tag, c, STREAMS).await?);
    }
    Ok(rows)
}
