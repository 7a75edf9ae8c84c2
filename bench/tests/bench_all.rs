//! `warden-bench all` end to end on the throwaway servers it starts itself: one round of the
//! lock suite, one second per row. It must write a report whose rows cover the primary and
//! fallback tiers and the bare server, each with a same-run baseline where one exists, and a
//! PNG chart. Throughput and latency are not asserted (benchmarks live in docs/benchmarks.md).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
#[ignore = "a smoke run of the benchmark tool, outside the default suite: scripts/bench.sh smoke"]
fn bench_all_measures_every_mode_and_writes_a_report_and_a_chart() {
    let out = std::env::temp_dir().join(format!("warden-bench-test-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_warden-bench"))
        .args([
            "all",
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--suites",
            "locks",
        ])
        .arg("--no-scaling")
        .arg("--out")
        .arg(&out)
        .status()
        .expect("warden-bench runs");
    assert!(status.success(), "warden-bench all failed");
    let file: PathBuf = std::fs::read_dir(&out)
        .expect("the report directory")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let report: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let runs = report["runs"].as_array().expect("runs");
    for mode in ["primary", "fallback", "bare"] {
        let row = runs
            .iter()
            .find(|r| r["mode"] == mode && r["path"] == "lock acquire (new keys)")
            .unwrap_or_else(|| panic!("no {mode} acquire row in {report}"));
        assert!(row["rate"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["refused"], 0, "{row}");
        assert_eq!(row["database"], "fresh", "{row}");
        let baseline = &row["baseline"]["what"];
        match mode {
            "primary" => assert!(baseline.as_str().unwrap().starts_with("redis-benchmark")),
            "fallback" => assert!(baseline.as_str().unwrap().starts_with("pgbench")),
            _ => assert!(baseline.is_null()),
        }
    }
    let summary = report["summary"].as_array().expect("summary");
    let judged = summary
        .iter()
        .find(|s| s["mode"] == "primary" && s["database"] == "fresh" && s["target"].is_string())
        .expect("the primary acquire row is judged against its target");
    assert!(
        judged["met"].is_boolean() && judged["vs_bare"].is_number(),
        "{judged}"
    );
    let png = std::fs::read(file.with_extension("targets.png")).expect("the targets chart");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let _ = std::fs::remove_dir_all(&out);
}
