//! The shipped Prometheus alert rules (`deploy/prometheus`) are valid, behave as their unit
//! tests say (`promtool test rules`), and name only metrics Warden exports.

use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");

/// `promtool`: `$PROMTOOL`, else the one on `PATH`. Without it the test fails under `CI` and
/// is skipped (with a message) elsewhere.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PROMTOOL").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "promtool not found (scripts/test.sh fetches it)"
        );
        eprintln!("skipped: promtool not found (scripts/test.sh fetches it)");
    }
    found
}

fn run(promtool: &Path, args: &[&str]) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(DIR)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    run(&promtool, &["check", "rules", "warden.rules.yml"]);
    run(&promtool, &["test", "rules", "warden.rules.test.yml"]);
}

#[test]
fn the_rules_name_only_metrics_warden_exports() {
    let rules = std::fs::read_to_string(Path::new(DIR).join("warden.rules.yml")).unwrap();
    let exported = include_str!("../src/metrics_names.rs");
    let mut named = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !word.starts_with("warden_") {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| word.strip_suffix(s))
            .unwrap_or(word);
        assert!(
            exported.contains(&format!("\"{base}\"")),
            "{word} is not a metric of src/metrics_names.rs"
        );
        named += 1;
    }
    assert!(named >= 12, "only {named} metric names found in the rules");
}
