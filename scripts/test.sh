#!/usr/bin/env bash
# Runs every check and test from a fresh clone: installs what is missing, builds one profile
# (dev, with optimised dependencies), runs fmt, clippy, the Rust tests, the Python SDK's stub
# check and tests, the Node SDK's build, declaration drift check and tests, then a smoke run
# of a real node with the example program and the load generator against it, and the
# examples of every SDK against a `meridian dev` cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/setup.sh
. scripts/setup.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The SDKs' tests: Python 3.9+ with venv, Node.js 18+ with npm.
for tool in python3 node npm; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required (Python 3.9+, Node.js 18+)"; exit 1; }
done

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace

echo "== Python SDK: build into a venv, check the stubs, pytest against real nodes"
# The venv lives beside the build cache, so a second run reuses it; maturin builds the
# extension in the same dev profile and cache as the tests above.
PY_VENV="${MERIDIAN_PY_VENV:-$CARGO_TARGET_DIR/py-venv}"
[ -x "$PY_VENV/bin/python" ] || python3 -m venv "$PY_VENV"
"$PY_VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2" pytest mypy typing_extensions
(cd sdk-python && VIRTUAL_ENV="$PY_VENV" PATH="$PY_VENV/bin:$PATH" maturin develop -q)
"$PY_VENV/bin/python" -m mypy.stubtest meridian
"$PY_VENV/bin/python" -m mypy --strict examples/python
# The SDK suites cut a WAN link with the tests' proxy, run as a process.
cargo build -q -p meridian --example wan_proxy
MERIDIAN_BIN="$CARGO_TARGET_DIR/debug/meridian" "$PY_VENV/bin/python" -m pytest -q -p no:cacheprovider sdk-python/tests

echo "== Node.js SDK: build, check the generated declarations for drift, node --test"
(
  cd sdk-node
  npm install --no-audit --no-fund --loglevel=error
  npm run --silent build
  # The declarations and the loader are generated and checked in: a change to the binding
  # that is not committed with them fails here.
  git diff --exit-code -- index.d.ts index.js || {
    echo "sdk-node/index.d.ts or index.js differ from what the build generates: commit them"; exit 1; }
  npm run --silent typecheck
  MERIDIAN_BIN="$CARGO_TARGET_DIR/debug/meridian" node --test test/*.test.mjs
)

echo "== smoke run: a real node, the example, and the load generator"
cargo build --workspace --bins
BIN="$CARGO_TARGET_DIR/debug/meridian"
SMOKE_DIR="$(mktemp -d)"
NODE_PID=""
DEV_PID=""
cleanup() {
  [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
  [ -n "$DEV_PID" ] && kill "$DEV_PID" 2>/dev/null && wait "$DEV_PID" 2>/dev/null
  rm -rf "$SMOKE_DIR"
}
trap cleanup EXIT
"$BIN" server --data-dir "$SMOKE_DIR/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --gossip-addr 127.0.0.1:0 >"$SMOKE_DIR/out" 2>"$SMOKE_DIR/log" &
NODE_PID=$!
for _ in $(seq 600); do
  grep -q MERIDIAN_READY "$SMOKE_DIR/out" 2>/dev/null && break
  kill -0 "$NODE_PID" 2>/dev/null || { cat "$SMOKE_DIR/log"; exit 1; }
  sleep 0.1
done
grep -q MERIDIAN_READY "$SMOKE_DIR/out" || { echo "node did not start"; cat "$SMOKE_DIR/log"; exit 1; }
export MERIDIAN_ENDPOINT="$(grep -o 'grpc=[^ ]*' "$SMOKE_DIR/out" | cut -d= -f2)"
"$CARGO_TARGET_DIR/debug/siblings"
"$BIN" bench --records 2000 --duration 1 --workloads a,c --concurrency 16 --no-progress
"$BIN" keyspace create smoke-lww --kind lww
"$BIN" bench --keyspace smoke-lww --records 2000 --duration 1 --workloads a --concurrency 16 --no-progress
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=""

echo "== smoke run: meridian dev (2 DCs x 3 nodes), a write in dc1 read in dc2, clean stop"
"$BIN" dev --data-dir "$SMOKE_DIR/dev" --port 17070 >"$SMOKE_DIR/dev.out" 2>&1 &
DEV_PID=$!
for _ in $(seq 900); do
  grep -q "Ctrl-C stops" "$SMOKE_DIR/dev.out" 2>/dev/null && break
  kill -0 "$DEV_PID" 2>/dev/null || { cat "$SMOKE_DIR/dev.out"; exit 1; }
  sleep 0.1
done
cat "$SMOKE_DIR/dev.out"
curl -sf -X PUT --data 'hello' http://127.0.0.11:17080/v1/data/demo/greeting
# The banner is a promise: right after it, every node knows keyspace demo (the value itself
# may still be on its way to dc2).
FIRST=$(curl -s http://127.0.0.23:17080/v1/data/demo/greeting)
case "$FIRST" in *"does not exist"*)
  echo "meridian dev printed its banner before every node knew keyspace demo: $FIRST"; exit 1;;
esac
for _ in $(seq 100); do
  [ "$(curl -s http://127.0.0.23:17080/v1/data/demo/greeting)" = "hello" ] && break
  sleep 0.1
done
[ "$(curl -s http://127.0.0.23:17080/v1/data/demo/greeting)" = "hello" ] || { echo "dev cluster did not replicate"; exit 1; }
echo "== examples against the dev cluster: shopping cart and session store, in each language"
export MERIDIAN_DC1=http://127.0.0.11:17070 MERIDIAN_DC2=http://127.0.0.21:17070
python3 scripts/snippets.py
for example in quickstart cart sessions; do
  "$CARGO_TARGET_DIR/debug/$example"
  "$PY_VENV/bin/python" "examples/python/$example.py"
  node "examples/node/$example.mjs"
done
# SIGTERM, as a supervisor stops it: the nodes must stop with it, not linger holding ports.
kill "$DEV_PID"; wait "$DEV_PID"; DEV_PID=""
grep -q "^stopped" "$SMOKE_DIR/dev.out" || { echo "dev cluster did not stop cleanly"; exit 1; }
if curl -s --max-time 2 -o /dev/null http://127.0.0.11:17080/metrics; then
  echo "a dev node still answers after meridian dev stopped"; exit 1
fi
echo "smoke run passed"
