//! `warden-bench locks` group rows: acquire+release pairs of a 4-key lock group per client,
//! its keys in one Redis slot (one Lua step) or across slots (one step per member), against
//! the raw group script and the raw acquire script (one EVAL per member).

use serde_json::{json, Value};

use super::client::Conn;
use super::drive::{drive, Run, Step};
use super::row::Row;
use super::{baseline, BenchArgs};

/// Members of a benchmarked group.
pub(crate) const MEMBERS: usize = 4;

/// Acquire then release (by id) the client's own group.
#[derive(Clone)]
struct Groups {
    tag: String,
    one_slot: bool,
}

impl Step for Groups {
    async fn step(&self, http: &mut Conn, c: usize, _: u64, run: &mut Run) -> Result<(), String> {
        let locks: Vec<Value> = (0..MEMBERS)
            .map(|m| match self.one_slot {
                true => json!({"key": format!("{{bench-{}-{c}}}:{m}", self.tag)}),
                false => json!({"key": format!("bench-{}-{c}-{m}", self.tag)}),
            })
            .collect();
        let owner = format!("c{c}");
        let acquire = (
            "/v1/lock-groups/acquire".to_owned(),
            json!({"owner": owner, "ttl_ms": 10_000, "locks": locks}),
        );
        run.pair(http, acquire, 200, |v| {
            let id = v["group_id"].as_str().unwrap_or("none");
            let path = format!("/v1/lock-groups/{id}/release");
            (path, json!({"owner": owner}))
        })
        .await
    }
}

/// Group acquire+release pairs; the baseline is the raw group script (one slot) or the raw
/// acquire script's rate divided by the members (across slots: one EVAL each).
pub(crate) async fn pairs(
    args: &BenchArgs,
    mode: &str,
    epoch: i64,
    tag: &str,
    c: usize,
    one_slot: bool,
) -> Row {
    let (where_, suffix) = if one_slot {
        ("one slot", "g1")
    } else {
        ("across slots", "gn")
    };
    let tag = format!("{tag}-{suffix}{c}");
    let mut r = drive(args, c, Groups { tag, one_slot }).await;
    let name = format!("lock group of {MEMBERS} acquire+release ({where_})");
    let mut row = Row::named(&name, "pairs/s", mode, c, &mut r, &["acquire", "release"]);
    let base = args.redis_port.map(|p| {
        let step = if one_slot {
            baseline::LockStep::Group(MEMBERS)
        } else {
            baseline::LockStep::Acquire
        };
        let base = baseline::lock_eval(step, p, c, baseline::requests(row.rate), epoch);
        base.map(|mut b| {
            if !one_slot {
                b.rate /= MEMBERS as f64;
                b.what = format!("{} / {MEMBERS} (one EVAL per member)", b.what);
            }
            b
        })
    });
    baseline::attach(&mut row, base);
    row
}
