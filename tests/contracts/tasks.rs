//! Every background task the code defines runs: each capability schedules its periodic work on
//! the instance's one scheduler (`runtime/tasks.rs`), and the tasks named anywhere in the
//! source (`s.every("…")`, `s.run("…")`) are exactly those a started instance runs — none
//! defined and never scheduled (the cache reaper once was), none twice; and a shutdown stops
//! them all.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::in_process::InProcess;

/// The task names the source schedules, found by reading it.
fn defined(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            defined(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for call in ["s.every(", "s.run("] {
            for (at, _) in text.match_indices(call) {
                // The name is the first argument, a literal (perhaps on the next line).
                let Some(rest) = text[at + call.len()..].trim_start().strip_prefix('"') else {
                    continue;
                };
                found.insert(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
    }
}

#[tokio::test]
async fn every_task_the_code_defines_is_scheduled_once_and_stops_with_the_instance() {
    let mut wanted = BTreeSet::new();
    defined(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut wanted,
    );
    assert!(wanted.len() >= 12, "tasks found in the source: {wanted:?}");
    let w = InProcess::start(1 << 20).await;
    let running = w.warden().tasks().await;
    let unique: BTreeSet<String> = running.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(
        unique.len(),
        running.len(),
        "a task scheduled twice: {running:?}"
    );
    assert_eq!(unique, wanted, "scheduled vs defined");
    for t in [
        "cache_replay",
        "cache_reclaim",
        "kv_reaper",
        "tier_supervisor",
    ] {
        assert!(unique.contains(t), "{t}");
    }
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), w.stop()).await;
    assert!(stopped.is_ok(), "a task did not stop with the instance");
}
