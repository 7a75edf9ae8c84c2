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
# The TypeScript client's tests (clients/typescript) run on Node >= 18.18 with npm.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
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
# A clean clone builds everything once: incremental compilation would only add its bookkeeping.
[ -z "$CI" ] || export CARGO_INCREMENTAL=0
# The clients' pinned dev tools come from the npm registry, and the clients are built (tsc),
# while Rust compiles. n8n-workflow is there for its types only, so its install scripts (a
# native ssh2 build) are skipped.
mkdir -p target
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run build \
  && cd ../n8n && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts && npm run build) \
  > target/npm-ci.log 2>&1 &
npm_pid=$!
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Three test binaries (contracts, faults, tools) plus the unit tests. cargo-nextest (on this
# machine kind's image) runs every test in a process of its own, three at a time, each
# tier-switch test alone, and prints each test's duration and the slow ones at the end
# (.config/nextest.toml, profile ci). Without nextest, cargo test runs the same tests: the
# fault binary one test at a time.
nextest=0
cargo nextest --version >/dev/null 2>&1 || nextest=$?
if [ "$nextest" -eq 0 ]; then
  cargo nextest run --workspace --profile ci --no-run
else
  cargo test --workspace --no-run --quiet
fi

# The clients' suites run beside the Rust tests (they mostly wait on their own servers): the
# TypeScript client (clients/typescript) against the warden binary just built, on its own
# throwaway Redis and PostgreSQL, failing also when the committed types drift from the
# binary's /openapi.json; and the n8n nodes (clients/n8n), which bundle the client. Each is
# printed whole when done.
wait "$npm_pid" || { echo "scripts/test.sh: npm ci or a client build failed:"; cat target/npm-ci.log; exit 1; }
(cd clients/typescript && node --test --test-concurrency=1 test/) > target/ts-test.log 2>&1 &
ts_pid=$!
(cd clients/n8n && node --test --test-concurrency=1 test/) > target/n8n-test.log 2>&1 &
n8n_pid=$!

rust_rc=0
if [ "$nextest" -eq 0 ]; then
  cargo nextest run --workspace --profile ci || rust_rc=$?
else
  echo "scripts/test.sh: cargo-nextest not found; running cargo test"
  {
    cargo test --no-fail-fast -p warden-bench &&
      cargo test --no-fail-fast -p warden --lib --bins --test contracts --test tools &&
      cargo test --no-fail-fast -p warden --test faults -- --test-threads=1
  } || rust_rc=$?
fi

ts_rc=0 && wait "$ts_pid" || ts_rc=$?
n8n_rc=0 && wait "$n8n_pid" || n8n_rc=$?
echo "--- clients/typescript (exit $ts_rc)" && cat target/ts-test.log
echo "--- clients/n8n (exit $n8n_rc)" && cat target/n8n-test.log
echo "scripts/test.sh: rust $rust_rc, typescript $ts_rc, n8n $n8n_rc"
[ "$rust_rc" -eq 0 ] && [ "$ts_rc" -eq 0 ] && [ "$n8n_rc" -eq 0 ]
