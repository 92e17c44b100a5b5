#!/usr/bin/env bash
# Side-by-side peer benchmark (issue #18): W1-W3 with Quix Streams (and Faust) and with this
# framework, one after the other, on one tansu broker on 127.0.0.1 with one input; prints one
# markdown table of records/s and ratios. See README.md beside this file.
#
#   bash benches/peers/run.sh                     # from the repository root
#
# PEERS_RECORDS (default 500000), PEERS_RUNS (default 3, medians reported), PEERS_WORKLOADS
# (default w1,w2,w3), PEERS_FAUST (default 1; 0 skips Faust), PEERS_FETCH_WAIT_MS (default
# 10). The Rust bench builds in CARGO_TARGET_DIR (default ../bench-target, beside the clone).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$root"
say() { printf '\n==> %s\n' "$*" >&2; }

records="${PEERS_RECORDS:-500000}"
runs="${PEERS_RUNS:-3}"
workloads="${PEERS_WORKLOADS:-w1,w2,w3}"
faust="${PEERS_FAUST:-1}"
fetch_wait="${PEERS_FETCH_WAIT_MS:-10}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/rust-streams"
venv="$cache/peers-venv"
mkdir -p "$cache"

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found (3.9 or later)" >&2; exit 1; }

# The venv: Quix Streams 3.28, and faust-streaming unless PEERS_FAUST=0.
if ! "$venv/bin/python" -c 'import quixstreams' 2>/dev/null; then
  say "creating the Python venv in $venv (quixstreams 3.28)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q 'quixstreams==3.28.*'
fi
if [ "$faust" != 0 ] && ! "$venv/bin/python" -c 'import faust' 2>/dev/null; then
  say "installing faust-streaming into the venv"
  if ! "$venv/bin/pip" install -q 'faust-streaming==0.15.*'; then
    say "faust-streaming did not install: running without Faust"
    faust=0
  fi
fi
quix_version="$("$venv/bin/python" -c 'import quixstreams; print(quixstreams.__version__)')"
peers="Quix Streams $quix_version"
if [ "$faust" != 0 ]; then
  peers="$peers, Faust $("$venv/bin/python" -c 'import faust; print(faust.__version__)' 2>/dev/null)"
fi

# tansu 0.6, installed as .ci/run installs it (once per machine).
tansu="${STREAMS_TANSU:-$cache/tansu/bin/tansu}"
if [ ! -x "$tansu" ]; then
  say "installing the tansu broker (once per machine, into $cache/tansu)"
  CARGO_TARGET_DIR="$cache/tansu-build" cargo install tansu --version 0.6.0 --locked \
    --features dynostore,libsql --root "$cache/tansu"
  rm -rf "$cache/tansu-build"
  tansu="$cache/tansu/bin/tansu"
fi

# The framework's side: the kafka bench, release build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../bench-target}"
mkdir -p "$CARGO_TARGET_DIR"
CARGO_TARGET_DIR="$(cd "$CARGO_TARGET_DIR" && pwd -P)"
say "building the kafka bench in $CARGO_TARGET_DIR"
bench="$(cargo bench -p streams-benches --bench kafka --no-run --message-format=json \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kafka":
        print(m["executable"])')"
[ -x "$bench" ] || { echo "the kafka bench binary was not found" >&2; exit 1; }

# tansu on a free loopback port, memory engine, stopped on exit.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp -t peers-tansu.XXXXXX)"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$log" 2>&1 &
tansu_pid=$!
cleanup() {
  kill "$tansu_pid" 2>/dev/null || true
  wait "$tansu_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$tansu_pid" 2>/dev/null || { cat "$log" >&2; echo "tansu exited" >&2; exit 1; }
  sleep 0.1
done
broker="$("$tansu" --version 2>/dev/null | head -1) (memory engine)"
say "$broker on 127.0.0.1:$port; $records records, $runs runs, $workloads; $peers; load $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
"$venv/bin/python" -W ignore "$root/benches/peers/peers.py" \
  --bench-binary "$bench" --bootstrap "127.0.0.1:$port" --broker "$broker" \
  --records "$records" --runs "$runs" --workloads "$workloads" \
  --faust "$([ "$faust" != 0 ] && echo 1 || echo 0)" --fetch-wait-ms "$fetch_wait" || status=$?
echo
echo "Peers: $peers; framework: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') (working tree), release build."
exit "$status"
