#!/usr/bin/env bash
# Runs the demo: page views per region and the top pages, from seeded generated data over
# 4 partitions. Installs the build dependencies first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=examples/env.sh
source examples/env.sh
# The dev profile optimises dependencies (RocksDB included) and shares their build with the
# test suite, so the demo does not compile RocksDB a second time in release mode.
say "building and running the demo (cargo run -p streams-examples --bin demo)"
cargo run --locked -p streams-examples --bin demo -- "$@"
