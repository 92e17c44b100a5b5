#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, driver, integration and doc tests.
# Installs what the build needs first (on Debian: clang and libclang for RocksDB's bindings,
# cmake and a C++ toolchain for librdkafka), so it works on a fresh machine with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=examples/env.sh
source examples/env.sh

say "checking formatting (cargo fmt --check)"
cargo fmt --all -- --check
say "linting (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "running every test (cargo test --workspace)"
cargo test --workspace --locked --no-fail-fast
