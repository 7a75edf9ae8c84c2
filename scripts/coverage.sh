#!/usr/bin/env bash
# Line coverage of src/ for the whole suite, the `warden serve` processes the tests start
# included. Builds everything with `-C instrument-coverage` into target/coverage (apart from
# the ordinary build), runs the suite as scripts/test.sh does (cargo nextest, profile ci) with
# every process writing its own profile, merges the profiles with Debian's llvm-22 tools (the
# toolchain's LLVM is 22: the older llvm-19 cannot read its profiles) and prints the figure
# per file and per module. A Warden a test drops is stopped with SIGTERM first under
# WARDEN_TEST_COVERAGE, so it exits and writes its profile; one a test SIGKILLs on purpose
# leaves none. Usage: scripts/coverage.sh [nextest filter arguments]
set -Eeuo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v llvm-profdata-22 >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq llvm-22 >/dev/null
fi
# promtool and schemathesis as scripts/test.sh provides them (it installs them when missing).
export PROMTOOL="${PROMTOOL:-$(command -v promtool || echo "$PWD/target/tools/usr/bin/promtool")}"
export SCHEMATHESIS="${SCHEMATHESIS:-$PWD/target/schemathesis/bin/schemathesis}"

out="$PWD/target/coverage"
rm -rf "$out/prof" && mkdir -p "$out/prof"
export CARGO_TARGET_DIR="$out"
export RUSTFLAGS="-C instrument-coverage"
export LLVM_PROFILE_FILE="$out/prof/%p-%m.profraw"
export WARDEN_TEST_COVERAGE=1
export CI="${CI:-1}"
# A failing test still leaves its profile: report what ran.
cargo nextest run --workspace --profile ci "$@" || echo "coverage.sh: some tests failed"

llvm-profdata-22 merge -sparse "$out"/prof/*.profraw -o "$out/warden.profdata"
objects=()
for exe in "$out"/debug/warden "$out"/debug/deps/{contracts,faults,tools,warden}-*; do
  [ -x "$exe" ] && [ -f "$exe" ] && objects+=(--object "$exe")
done
llvm-cov-22 report --instr-profile "$out/warden.profdata" "${objects[@]}" \
  --ignore-filename-regex='/(\.cargo|rustc|tests|bench)/|/tests\.rs$' > "$out/report.txt"
cat "$out/report.txt"
# Per module (the first folder under src/, or the file at its root): lines covered of lines.
awk '$1 ~ /\.rs$/ && $8 ~ /^[0-9]+$/ {
  m = $1; sub(/^.*src\//, "", m); sub(/\/.*$/, "", m); sub(/\.rs$/, "", m);
  lines[m] += $8; missed[m] += $9
} END {
  for (m in lines) printf "%-14s %6d lines %6.1f %%\n", m, lines[m], 100 * (lines[m] - missed[m]) / lines[m]
}' "$out/report.txt" | sort -k4 -n
