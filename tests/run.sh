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

say "checking formatting (cargo fmt --check)"
cargo fmt --all -- --check
say "linting (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "running every test (cargo test --workspace)"
cargo test --workspace --locked --no-fail-fast
