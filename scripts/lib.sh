# Shared by the benchmark scripts: the build cache, the release binary, process cleanup,
# waiting for a node's ready line and for a cluster's members.
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

field() { # ready-line file, name: a value of the node's MERIDIAN_READY line (grpc, http, gossip)
  grep -o "$2=[^ ]*" "$1" | cut -d= -f2
}

wait_members() { # endpoint, count: until that many members are up
  for _ in $(seq 300); do
    [ "$("$BIN" admin members --endpoint "$1" | grep -c ' up ' || true)" -ge "$2" ] && return 0
    sleep 0.2
  done
  echo "fewer than $2 members up at $1"; exit 1
}
