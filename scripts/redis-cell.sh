#!/usr/bin/env bash
# Builds redis-cell (the GCRA rate-limit module, CL.THROTTLE) from its crates.io sources into
# target/redis-cell/ and prints the path of the module, for the rate-limit benchmark's
# comparison. Nothing of redis-cell is kept in this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/target/redis-cell"
so="$out/src/target/release/libredis_cell.so"
if [ ! -f "$so" ]; then
  mkdir -p "$out/probe/src"
  cat > "$out/probe/Cargo.toml" <<'TOML'
[package]
name = "redis-cell-probe"
version = "0.0.0"
edition = "2021"
[workspace]
[dependencies]
redis-cell = "=0.2.2"
TOML
  echo "fn main() {}" > "$out/probe/src/main.rs"
  (cd "$out/probe" && cargo fetch --quiet) >&2
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/redis-cell-0.2.2 | head -1)
  rm -rf "$out/src" && cp -r "$src" "$out/src" && chmod -R u+w "$out/src"
  printf '\n[workspace]\n' >> "$out/src/Cargo.toml" # not a member of Warden's workspace
  (cd "$out/src" && cargo build --release --quiet 2>/dev/null) >&2
fi
echo "$so"
