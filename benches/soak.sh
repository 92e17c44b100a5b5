#!/usr/bin/env bash
# The activity app's memory over a soak (issue #18): runs the app on the embedded engine with
# its generator at a fixed rate for a while and samples its resident set size and
# /api/status (events processed, consumer lag) every few seconds.
#
#   bash benches/soak.sh [--rate 50000] [--seconds 1800] [--every 10] [--threads 2]
#                        [--out DIR] [--binary PATH] [-- activity options...]
#
# The binary is the release build of the activity app (built here unless --binary names
# one). Writes DIR/soak.csv (seconds,rss_mib,processed,lag,generated), DIR/rss.csv and
# DIR/rss_budget.txt for `benches/examples/charts.rs`, and prints a summary: RSS after the
# warm-up (the first tenth of the run), at the end, its growth, and the peak.
# The budget is what the app is configured to hold in memory for its state:
# statestore.memory.bytes (RocksDB's block cache and memtables of every store, default
# 256 MiB) plus the record cache of each stream thread (statestore.cache.max.bytes,
# default 10 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."

rate=50000 seconds=1800 every=10 threads=2 out="" binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --every) every="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
extra=("$@")

if [ -z "$binary" ]; then
  # shellcheck source=examples/env.sh
  source examples/env.sh
  cargo build --release -p streams-examples --bin activity
  binary="$CARGO_TARGET_DIR/release/activity"
fi
[ -x "$binary" ] || { echo "soak.sh: $binary is not an executable" >&2; exit 1; }
out="${out:-$(mktemp -d)}"
mkdir -p "$out"
data="$(mktemp -d)"
log="$out/activity.log"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT

"$binary" --port 0 --data-dir "$data" --rate "$rate" --threads "$threads" "${extra[@]}" \
  >"$log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 3000); do  # up to 10 minutes: the generator first simulates 10 minutes of visits
  url="$(grep -o 'dashboard: http://[^ ]*' "$log" | head -1 | sed 's/dashboard: //; s#/$##')" || true
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "soak.sh: the app exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$url" ] || { echo "soak.sh: no dashboard address in $log" >&2; exit 1; }

budget_mib=$(( 256 + 10 * threads ))
echo "$budget_mib" >"$out/rss_budget.txt"
echo "seconds,rss_mib,processed,lag,generated" >"$out/soak.csv"
echo "seconds,rss_mib" >"$out/rss.csv"
echo "soak: $binary at $rate events/s, $threads threads, ${seconds} s, sampled every ${every} s, into $out"
start=$(date +%s)
while :; do
  now=$(( $(date +%s) - start ))
  kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; echo "soak.sh: the app exited at ${now} s" >&2; exit 1; }
  rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  status="$(curl -sf --max-time 5 "$url/api/status" || echo '{}')"
  field() { printf '%s' "$status" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }
  mib=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }')
  echo "$now,$mib,$(field processed),$(field lag),$(field generated)" >>"$out/soak.csv"
  echo "$now,$mib" >>"$out/rss.csv"
  [ "$now" -ge "$seconds" ] && break
  sleep "$every"
done

awk -F, -v warm="$(( seconds / 10 ))" -v budget="$budget_mib" '
  NR == 1 { next }
  { if ($1 >= warm && base == "") { base = $2; base_s = $1 }
    if ($2 > peak) peak = $2; last = $2; last_s = $1; processed = $3; lag = $4; generated = $5 }
  END {
    printf "RSS after warm-up (%d s): %.1f MiB; at the end (%d s): %.1f MiB; growth %.1f %%; peak %.1f MiB; budget %d MiB\n",
      base_s, base, last_s, last, (last - base) * 100 / base, peak, budget
    printf "events generated %d, processed %d, lag at the end %d\n", generated, processed, lag
  }' "$out/soak.csv"
