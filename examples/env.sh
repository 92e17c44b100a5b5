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

# Reuse one target directory outside the clone, so that a fresh clone (CI) does not
# recompile RocksDB and librdkafka from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-streams/target}"
mkdir -p "$CARGO_TARGET_DIR"
say "building in $CARGO_TARGET_DIR"
