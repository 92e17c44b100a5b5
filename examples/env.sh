# Shared setup of examples/demo.sh and tests/run.sh: installs the system packages the build
# needs (only those missing) and picks a target directory that survives fresh clones.
say() { printf '\n==> %s\n' "$*"; }

# clang/libclang-dev: RocksDB's bindings; cmake, g++: RocksDB; gcc (with g++), make: the
# vendored librdkafka (its configure + make); libssl-dev: its TLS and SASL; pkg-config:
# native library lookups.
need_pkgs=()
for pkg in clang libclang-dev cmake g++ make libssl-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing build dependencies: ${need_pkgs[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }

# A target directory outside the clone, one per checkout (keyed by its path), so that
# builds survive `git clean` and fresh clones at the same path, yet two checkouts never
# share artifacts: cargo names a workspace crate's artifacts alike in every checkout and
# trusts file times, so a shared directory let one checkout run code built from another's
# sources (and a doctest failed with E0460 while another clone built). The directory of
# the former layout (one shared `target`) is adopted by the first checkout that comes, so
# that machine keeps its build; only the two checkouts used last keep theirs.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/rust-streams"
  checkout="$(pwd -P)"
  key="$(printf '%s' "$checkout" | sha256sum | cut -c1-12)"
  CARGO_TARGET_DIR="$cache_root/target-$key"
  mkdir -p "$cache_root"
  if [ ! -d "$CARGO_TARGET_DIR" ] && [ -d "$cache_root/target" ]; then
    mv "$cache_root/target" "$CARGO_TARGET_DIR"
  fi
  mkdir -p "$CARGO_TARGET_DIR"
  printf '%s\n' "$checkout" > "$CARGO_TARGET_DIR/.checkout"
  touch "$CARGO_TARGET_DIR"
  # Keep the two directories used last (this one included).
  ls -1dt "$cache_root"/target-* 2>/dev/null | tail -n +3 | while read -r old; do
    say "removing the build directory of an older checkout: $old ($(cat "$old/.checkout" 2>/dev/null))"
    rm -rf "$old"
  done || true
  export CARGO_TARGET_DIR
fi
mkdir -p "$CARGO_TARGET_DIR"
say "building in $CARGO_TARGET_DIR"
