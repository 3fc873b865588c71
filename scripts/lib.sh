# Shared by the benchmark scripts: the build cache, the release binary, process cleanup and
# waiting for a node's ready line.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian-target}"
BIN="$CARGO_TARGET_DIR/release/meridian"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

wait_ready() { # file
  for _ in $(seq 600); do grep -q MERIDIAN_READY "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "not ready: $1"; exit 1
}
