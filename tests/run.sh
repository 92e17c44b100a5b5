#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, driver, integration and doc tests.
# Installs what the build needs first (on Debian: clang and libclang for RocksDB's bindings,
# cmake and a C++ toolchain for librdkafka, chromium for the dashboard's browser test), so it
# works on a fresh machine with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=examples/env.sh
source examples/env.sh

# The dashboard's browser test drives headless Chromium (Debian's `chromium` package).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  say "installing chromium for the dashboard's browser test"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

# The Python client compatibility test of `streams serve` (tests/tests/serve_python.rs)
# drives it with confluent-kafka, the client Quix Streams uses, from a virtual environment
# kept with the build cache.
pyvenv="${XDG_CACHE_HOME:-$HOME/.cache}/rust-streams/pyvenv"
if ! "$pyvenv/bin/python" -c "import confluent_kafka" >/dev/null 2>&1; then
  say "installing confluent-kafka into $pyvenv for the Python client test"
  if ! python3 -m venv "$pyvenv" >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3 python3-venv >/dev/null
    rm -rf "$pyvenv"
    python3 -m venv "$pyvenv"
  fi
  "$pyvenv/bin/pip" install -q "confluent-kafka==2.16.1"
fi
export STREAMS_PYTHON="$pyvenv/bin/python"

say "checking formatting (cargo fmt --check)"
cargo fmt --all -- --check
say "linting (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "running every test (cargo test --workspace)"
cargo test --workspace --locked --no-fail-fast
