//! Medians over rounds: rows of the same path, mode, clients, keys and database state are one
//! group; each figure is the median of that group's runs, and the targets are judged on it.

use serde::Serialize;

use super::cpu::CpuShare;
use super::row::{Baseline, Row, StepLatency};
use super::targets;

/// The medians of one group of runs, judged against its target.
#[derive(Serialize, Clone, Debug)]
pub struct Summary {
    /// Path, as in rows.
    pub path: String,
    /// `primary` or `fallback`.
    pub mode: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Working set, if the path has one.
    pub keys: Option<usize>,
    /// `fresh`, `warmed` or `scaling`.
    pub database: String,
    /// Unit of `rate`.
    pub unit: String,
    /// Every run's throughput, in round order.
    pub rates: Vec<f64>,
    /// Median throughput.
    pub rate: f64,
    /// Median of the slowest step's p50, ms.
    pub p50_ms: f64,
    /// Median of the slowest step's p99, ms.
    pub p99_ms: f64,
    /// The baseline's name and median throughput, if measured.
    pub baseline: Option<Baseline>,
    /// Median of the runs' ratios to their own same-run baselines.
    pub ratio: Option<f64>,
    /// Throughput against the bare server's (same path, clients and database state), for
    /// primary rows where it was measured.
    pub vs_bare: Option<f64>,
    /// Median CPU per party, in cores.
    pub cpu: Option<CpuShare>,
    /// The target as the issue states it.
    pub target: Option<String>,
    /// Each criterion's attainment (≥ 1 met), on the medians.
    pub attainment: Vec<(String, f64)>,
    /// Whether the medians meet the target.
    pub met: Option<bool>,
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Groups `rows` and takes medians, in the order groups first appear.
pub fn medians(rows: &[Row]) -> Vec<Summary> {
    let key = |r: &Row| {
        (
            r.path.clone(),
            r.mode.clone(),
            r.clients,
            r.keys,
            r.database.clone().unwrap_or_default(),
        )
    };
    let mut order = Vec::new();
    for r in rows {
        if !order.contains(&key(r)) {
            order.push(key(r));
        }
    }
    let mut out: Vec<Summary> = order
        .into_iter()
        .map(|k| {
            let group: Vec<&Row> = rows.iter().filter(|r| key(r) == k).collect();
            summarize(&group)
        })
        .collect();
    let bare: Vec<Summary> = out.iter().filter(|s| s.mode == "bare").cloned().collect();
    for s in out.iter_mut().filter(|s| s.mode == "primary") {
        s.vs_bare = bare
            .iter()
            .find(|b| {
                (&b.path, b.clients, b.keys, &b.database)
                    == (&s.path, s.clients, s.keys, &s.database)
            })
            .filter(|b| b.rate > 0.0)
            .map(|b| s.rate / b.rate);
        let target = targets::of(&s.path, &s.mode).filter(|_| s.target.is_some());
        if let Some(a) = target.and_then(|t| t.vs_bare_attainment(s.vs_bare)) {
            s.attainment.push(("throughput vs bare".into(), a));
            s.met = s.met.map(|m| m && a >= 1.0);
        }
    }
    out
}

fn summarize(group: &[&Row]) -> Summary {
    let first = group[0];
    let of = |f: &dyn Fn(&Row) -> f64| median(group.iter().map(|r| f(r)).collect());
    let bases: Vec<&Baseline> = group.iter().filter_map(|r| r.baseline.as_ref()).collect();
    let baseline = bases.first().map(|b| Baseline {
        what: b.what.clone(),
        rate: median(bases.iter().map(|b| b.rate).collect()),
        p99_ms: median(bases.iter().map(|b| b.p99_ms).collect()),
    });
    let ratios: Vec<f64> = group.iter().filter_map(|r| r.ratio()).collect();
    let ratio = (!ratios.is_empty()).then(|| median(ratios));
    let cpus: Vec<CpuShare> = group.iter().filter_map(|r| r.cpu).collect();
    let cpu = (!cpus.is_empty()).then(|| CpuShare {
        generator: median(cpus.iter().map(|c| c.generator).collect()),
        warden: median(cpus.iter().map(|c| c.warden).collect()),
        redis: median(cpus.iter().map(|c| c.redis).collect()),
        postgres: median(cpus.iter().map(|c| c.postgres).collect()),
    });
    let (rate, p50_ms, p99_ms) = (of(&|r| r.rate), of(&Row::p50_ms), of(&Row::p99_ms));
    // The target is judged on a row made of the medians; its ratio is the median ratio.
    let judged = Row {
        rate,
        steps: vec![StepLatency {
            name: "median".into(),
            p50_ms,
            p95_ms: None,
            p99_ms,
        }],
        baseline: ratio.map(|r| Baseline {
            what: String::new(),
            rate: rate / r,
            p99_ms: 0.0,
        }),
        ..first.clone()
    };
    // Targets are set for the headline rows; scaling rows only show the shape.
    let headline = matches!(first.database.as_deref(), Some("fresh" | "warmed"));
    let target = targets::of(&first.path, &first.mode).filter(|_| headline);
    Summary {
        path: first.path.clone(),
        mode: first.mode.clone(),
        clients: first.clients,
        keys: first.keys,
        database: first.database.clone().unwrap_or_default(),
        unit: first.unit.clone(),
        rates: group.iter().map(|r| r.rate).collect(),
        rate,
        p50_ms,
        p99_ms,
        baseline,
        ratio,
        vs_bare: None,
        cpu,
        target: target.as_ref().map(|t| t.text.to_owned()),
        attainment: target
            .as_ref()
            .map(|t| {
                let a = t.attainment(&judged);
                a.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
            })
            .unwrap_or_default(),
        met: target.as_ref().map(|t| t.met(&judged)),
    }
}

/// Thousands separated by a thin space, as the docs write them.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

/// The summary as a Markdown table: headline groups first, then scaling groups.
pub fn table(rows: &[Summary]) -> String {
    let mut out = String::from(
        "| path | mode | database | clients | keys | throughput: median (runs) | p50 / p99 ms | baseline (median) | ratio | vs bare | cpu gen / warden / redis / pg | target | met |\n|---|---|---|---:|---:|---|---|---|---:|---:|---|---|---|\n",
    );
    for s in rows {
        let runs: Vec<String> = s.rates.iter().map(|r| thousands(*r)).collect();
        let base = s.baseline.as_ref().map_or("–".into(), |b| {
            format!("{} {}/s", b.what, thousands(b.rate))
        });
        let cpu = s.cpu.map_or("–".into(), |c| {
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                c.generator, c.warden, c.redis, c.postgres
            )
        });
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} {} ({}) | {:.2} / {:.2} | {base} | {} | {} | {cpu} | {} | {} |\n",
            s.path,
            s.mode,
            s.database,
            s.clients,
            s.keys.map_or("–".into(), |k| k.to_string()),
            thousands(s.rate),
            s.unit,
            runs.join(" / "),
            s.p50_ms,
            s.p99_ms,
            s.ratio.map_or("–".into(), |r| format!("{r:.2}")),
            s.vs_bare.map_or("–".into(), |r| format!("{r:.2}")),
            s.target.as_deref().unwrap_or("–"),
            match s.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_runs() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(thousands(12872.4), "12 872");
        assert_eq!(thousands(999.0), "999");
    }
}
