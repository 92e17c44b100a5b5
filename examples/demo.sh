#!/usr/bin/env bash
# Runs the activity-tracking demo on the embedded log engine: generated page views and clicks,
# the app processing them in real time, and its live dashboard at http://127.0.0.1:8080/.
# Ctrl-C stops it. Flags go to the app (try --help); installs the build dependencies first
# if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=examples/env.sh
source examples/env.sh
# The dev profile optimises dependencies (RocksDB included) and shares their build with the
# test suite, so the demo does not compile RocksDB a second time in release mode.
say "building and running the activity app (cargo run -p streams-examples --bin activity)"
cargo run --locked -q -p streams-examples --bin activity -- "$@"
