//! The shipped Prometheus alert rules (`deploy/prometheus`) are valid, behave as their unit
//! tests say (`promtool test rules`), and name only metrics Warden exports.

use std::path::Path;
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");

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
    let Some(promtool) = crate::support::tool("PROMTOOL", "promtool") else {
        return;
    };
    run(&promtool, &["check", "rules", "warden.rules.yml"]);
    run(&promtool, &["test", "rules", "warden.rules.test.yml"]);
}

#[test]
fn the_rules_name_only_metrics_warden_exports() {
    let rules = std::fs::read_to_string(Path::new(DIR).join("warden.rules.yml")).unwrap();
    let exported = include_str!("../../src/metrics_names.rs");
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
