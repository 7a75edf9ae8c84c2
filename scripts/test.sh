#!/usr/bin/env bash
# Runs the whole test suite against real servers. Installs redis-server and PostgreSQL from
# Debian's packages when they are missing, unpacks promtool (for the alert rules) and installs
# schemathesis from PyPI into a throwaway virtualenv (for the OpenAPI conformance run); the
# tests start their own throwaway instances on free ports in temporary directories.
set -Eeuo pipefail
# Say which step failed: CI keeps only this script's output.
trap 'echo "scripts/test.sh: line $LINENO failed (exit $?): $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
echo "scripts/test.sh: $(date -u +%FT%TZ) on $(uname -srm), user $(id -un), $(cargo --version)"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# The benchmark tool's own test draws a chart with DejaVu Sans.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# promtool (for the alert rules' tests) comes from Debian's prometheus package: only its
# binaries are unpacked, under target/tools, so no Prometheus service is installed or started.
if [ -z "${PROMTOOL:-}" ]; then
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL=$(command -v promtool)
  else
    tools="$PWD/target/tools"
    if [ ! -x "$tools/usr/bin/promtool" ]; then
      mkdir -p "$tools"
      fetch() { (cd "$tools" && apt-get download -q prometheus >/dev/null 2>&1); }
      fetch || { $sudo apt-get update -qq; fetch; }
      dpkg-deb -x "$tools"/prometheus_*.deb "$tools" && rm -f "$tools"/prometheus_*.deb
    fi
    PROMTOOL="$tools/usr/bin/promtool"
  fi
fi
export PROMTOOL

# schemathesis (the OpenAPI conformance test) from PyPI, in a virtualenv under target/.
if [ -z "${SCHEMATHESIS:-}" ]; then
  venv="$PWD/target/schemathesis"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
  fi
  SCHEMATHESIS="$venv/bin/schemathesis"
fi
export SCHEMATHESIS

export CI="${CI:-}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Build every test target once, then run the test binaries two at a time: most of the suite's
# wall time is waiting (servers starting, leases lapsing, failovers detected), and each binary
# starts its own servers on ports spread by process id. The slowest binaries go first so the
# two lanes end together; each binary's output is printed whole when it ends. The tier-switch
# tests run a newcomer's defaults (a 50 ms Redis timeout, which a debug build beside another
# binary outlasts), so they run alone, last. The benchmark tool's smoke run is not part of the
# suite: scripts/bench.sh smoke.
lanes="${WARDEN_TEST_LANES:-2}"
slow_first="conformance switch_history failover ratelimit cache openapi_conformance deadlock"
alone="tier_switch"
runs="$PWD/target/test-runs"
rm -rf "$runs" && mkdir -p "$runs"
cargo test --workspace --all-targets --no-run --message-format=json-render-diagnostics \
  | python3 -c '
import json, sys
slow = sys.argv[1].split()
rows = []
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name, kind = m["target"]["name"], m["target"]["kind"][0]
        rank = slow.index(name) if kind == "test" and name in slow else len(slow)
        rows.append((rank, name, kind, m["manifest_path"].rsplit("/", 1)[0], m["executable"]))
for rank, name, kind, dir, exe in sorted(rows, key=lambda r: r[0]):
    print(f"{name}-{kind}\t{dir}\t{exe}")
' "$slow_first" > "$runs/list"
grep -v -E "^($(echo $alone | tr ' ' '|'))-test"$'\t' "$runs/list" > "$runs/shared" || true
grep -E "^($(echo $alone | tr ' ' '|'))-test"$'\t' "$runs/list" > "$runs/alone" || true

run_one() {
  local label=$1 dir=$2 exe=$3 runs=$4 started
  # Each binary runs in its package's folder: a relative or empty runs folder would leave the
  # run's marks and logs there (an earlier version did, at the root and in bench/).
  case "$runs" in /*/test-runs) ;; *) echo "run_one: bad runs folder '$runs'" >&2; return 1 ;; esac
  started=$(date +%s)
  if (cd "$dir" && "$exe") > "$runs/$label.log" 2>&1; then status=ok; else status=FAILED; fi
  {
    echo "     Running $label ($(( $(date +%s) - started )) s, $status): $exe"
    cat "$runs/$label.log"
  } | flock "$runs/list" cat
  touch "$runs/$label.$status"
}
export -f run_one
tr '\t' '\n' < "$runs/shared" | xargs -d '\n' -n 3 -P "$lanes" bash -c 'run_one "$2" "$3" "$4" "$1"' _ "$runs" \
  || true
tr '\t' '\n' < "$runs/alone" | xargs -d '\n' -n 3 -P 1 bash -c 'run_one "$2" "$3" "$4" "$1"' _ "$runs" \
  || true
# Passed means every listed binary left an "ok" mark: one that never ran counts as failed.
passed=$(find "$runs" -name '*.ok' | wc -l)
listed=$(wc -l < "$runs/list")
if [ "$passed" -ne "$listed" ]; then
  echo "scripts/test.sh: $passed of $listed test binaries passed; failed or not run:" >&2
  cut -f1 "$runs/list" | while read -r label; do [ -e "$runs/$label.ok" ] || echo "  $label" >&2; done
  exit 1
fi
echo "scripts/test.sh: all $listed test binaries passed"

