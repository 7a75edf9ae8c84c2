#!/usr/bin/env bash
# Benchmarks Warden on this machine.
#   scripts/bench.sh smoke
#       the benchmark tool end to end in seconds (its test, left out of scripts/test.sh).
#   scripts/bench.sh all [options of `warden bench all`]
#       every suite in both modes, 3 rounds on fresh and warmed databases, scaling rows, a
#       summary against the targets, JSON and PNG charts in target/bench/ (warden-bench starts
#       its own throwaway Redis and PostgreSQL).
#   scripts/bench.sh [seconds per row] [suites, default "locks locks-wrk idempotency flash-sale streams"]
#       (suite "ratelimit" also builds redis-cell from crates.io, scripts/redis-cell.sh, and
#       loads it into the same Redis for a CL.THROTTLE comparison)
#       each suite in both modes against throwaway servers started here:
#       primary  = Warden on Redis (PostgreSQL, fsync on, as its durable tier), with a raw
#                  redis-benchmark EVAL baseline of the same Lua step on the same Redis;
#       fallback = Warden on PostgreSQL alone.
# Suite "auth" runs the lock suite on Redis twice on one fresh database: in protected mode with
# no token (no check), then with WARDEN_AUTH=required and a token on every request.
# Warden runs with its default settings (logging included). Prints figures; asserts nothing.
# Installs what it needs from Debian's packages when missing (redis-tools, wrk, DejaVu fonts).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${1:-}" = smoke ]; then
  # The benchmark tool end to end in a few seconds (one round of the lock suite): it must write
  # a report and a chart. Left out of scripts/test.sh, where its load disturbed other tests.
  exec cargo test --quiet -p warden-bench --test bench_all -- --ignored
fi
if [ "${1:-}" = all ]; then
  shift
  cargo build --release --quiet --workspace
  exec target/release/warden bench all "$@"
fi
secs="${1:-5}"
suites="${2:-locks locks-wrk idempotency flash-sale streams}"
cargo build --release --quiet --workspace
bin=target/release/warden
bench=target/release/warden-bench
dir=$(mktemp -d); chown postgres "$dir" 2>/dev/null || true
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rp=$(port); pp=$(port); wp=$(port)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
cleanup() {
  [ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null || true
  redis-cli -p "$rp" shutdown nosave >/dev/null 2>&1 || true
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
module=()
case " $suites " in
  *" ratelimit "*) # redis-cell in the same Redis, for the CL.THROTTLE comparison
    if cell=$(scripts/redis-cell.sh); then module=(--loadmodule "$cell"); else
      echo "# redis-cell could not be built here: no CL.THROTTLE comparison"; fi ;;
esac
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes "${module[@]}" >/dev/null
as_pg "$pgbin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
as_pg "$pgbin/pg_ctl" -D "$dir/data" -o "-p $pp -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" \
  -l "$dir/pg.log" -w start >/dev/null

as_pg "$pgbin/createdb" -h "$dir" -p "$pp" -U postgres fallback
start_warden() { # start_warden TIER DATABASE env VAR=…
  tier=$1 db=$2; shift 2
  WARDEN_LISTEN="127.0.0.1:$wp" WARDEN_DATABASE_URL="postgres://postgres@127.0.0.1:$pp/$db" \
    WARDEN_CONFIG=/nonexistent "$@" "$bin" serve >"$dir/warden.log" 2>&1 &
  wpid=$!
  for _ in $(seq 100); do
    curl -sf "127.0.0.1:$wp/readyz" 2>/dev/null | grep -q "\"tier\":\"$tier\"" && return; sleep 0.1
  done
  echo "warden not ready"; cat "$dir/warden.log"; exit 1
}

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(redis-server --version | cut -d' ' -f3); $("$pgbin/postgres" --version)"
for suite in $suites; do
  if [ "$suite" = auth ]; then
    as_pg "$pgbin/dropdb" --if-exists -h "$dir" -p "$pp" -U postgres auth
    as_pg "$pgbin/createdb" -h "$dir" -p "$pp" -U postgres auth
    redis_env="WARDEN_REDIS_URL=redis://127.0.0.1:$rp/"
    echo "# auth: without a token (protected mode, loopback)"
    start_warden redis auth env "$redis_env"
    "$bench" locks --url "http://127.0.0.1:$wp" --seconds "$secs" --clients 64 --redis-port "$rp"
    kill "$wpid"; wait "$wpid" 2>/dev/null || true
    token=$(WARDEN_DATABASE_URL="postgres://postgres@127.0.0.1:$pp/auth" WARDEN_CONFIG=/nonexistent \
      "$bin" token create --name bench --scopes locks 2>/dev/null | head -1)
    echo "# auth: WARDEN_AUTH=required, a token on every request"
    start_warden redis auth env "$redis_env" WARDEN_AUTH=required
    "$bench" locks --url "http://127.0.0.1:$wp" --seconds "$secs" --clients 64 --redis-port "$rp" --token "$token"
    kill "$wpid"; wait "$wpid" 2>/dev/null || true
    continue
  fi
  clients=1,16,64; [ "$suite" = flash-sale ] && clients=64,256
  start_warden redis postgres env WARDEN_REDIS_URL="redis://127.0.0.1:$rp/"
  "$bench" "$suite" --url "http://127.0.0.1:$wp" --seconds "$secs" --clients "$clients" --redis-port "$rp"
  kill "$wpid"; wait "$wpid" 2>/dev/null || true
  start_warden sql fallback env
  "$bench" "$suite" --url "http://127.0.0.1:$wp" --seconds "$secs" --clients "$clients"
  kill "$wpid"; wait "$wpid" 2>/dev/null || true
done
