#!/usr/bin/env bash
# Runs the demo: page views per region and the top pages, from seeded generated data over
# 4 partitions. Installs the build dependencies first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=examples/env.sh
source examples/env.sh
say "building and running the demo (cargo run --release -p streams-examples --bin demo)"
cargo run --release --locked -p streams-examples --bin demo -- "$@"
