#!/usr/bin/env bash
# The SDKs side by side in one run, against one release node: put and get ops/s with CALLERS
# concurrent callers on one client (Rust tasks, Python threads on Client, Python tasks on
# AsyncClient, Node async loops), and the latency of get_resolved on a key with two
# siblings (one caller), whose difference from Rust's is what calling a resolver through the
# binding costs. Rounds alternate the order of the SDKs.
#
# Usage: scripts/bench-sdks.sh [SECONDS] [CALLERS] [RESOLVES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
DURATION="${1:-5}" CALLERS="${2:-16}" RESOLVES="${3:-2000}" ROUNDS="${4:-2}"

echo "building release: node, Rust bench, Python SDK, Node SDK"
cargo build -q --release -p meridian -p meridian-examples
VENV="$CARGO_TARGET_DIR/py-bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2"
(cd sdk-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop -q --release)
(cd sdk-node && npm install --no-audit --no-fund --loglevel=error && npm run --silent build:release)

"$BIN" server --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --gossip-addr 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
PIDS+=($!)
wait_ready "$WORK/out"
EP="$(field "$WORK/out" grpc)"
MERIDIAN_ENDPOINT="$EP" "$BIN" keyspace create bench-lww --kind lww >/dev/null

run() { # sdk
  case "$1" in
    rust) "$CARGO_TARGET_DIR/release/sdk_bench" "$EP" "$DURATION" "$CALLERS" "$RESOLVES" ;;
    python-sync) "$VENV/bin/python" examples/python/bench.py sync "$EP" "$DURATION" "$CALLERS" "$RESOLVES" ;;
    python-async) "$VENV/bin/python" examples/python/bench.py async "$EP" "$DURATION" "$CALLERS" "$RESOLVES" ;;
    node) node examples/node/bench.mjs "$EP" "$DURATION" "$CALLERS" "$RESOLVES" ;;
  esac
}

kv() { grep -o "$2=[^ ]*" <<<"$1" | cut -d= -f2; }

SDKS=(rust python-sync python-async node)
for round in $(seq "$ROUNDS"); do
  order=("${SDKS[@]}")
  [ $((round % 2)) -eq 0 ] && order=(node python-async python-sync rust)
  declare -A LINE=()
  for sdk in "${order[@]}"; do LINE[$sdk]="$(run "$sdk")"; done
  echo
  echo "round $round ($DURATION s per phase, $CALLERS callers, $RESOLVES resolves; order: ${order[*]})"
  # get_resolved p50 − Rust's is the binding's whole cost for a call with a resolver; minus
  # the same difference for a plain get, it is what calling the resolver adds.
  printf '%-13s %8s %8s %9s %9s %9s %12s %12s %11s %14s\n' sdk put/s get/s "put÷rust" "get÷rust" \
    "get p50" "resolve p50" "resolve p99" "p50 − rust" "resolver cost"
  rp=$(kv "${LINE[rust]}" put_ops) rg=$(kv "${LINE[rust]}" get_ops)
  r50=$(kv "${LINE[rust]}" resolve_p50_us) rget=$(kv "${LINE[rust]}" get_p50_us)
  for sdk in "${SDKS[@]}"; do
    l="${LINE[$sdk]}"
    p=$(kv "$l" put_ops) g=$(kv "$l" get_ops) p50=$(kv "$l" resolve_p50_us) p99=$(kv "$l" resolve_p99_us)
    get50=$(kv "$l" get_p50_us)
    printf '%-13s %8s %8s %9.2f %9.2f %6s µs %9s µs %9s µs %8s µs %11s µs\n' "$sdk" "$p" "$g" \
      "$(awk "BEGIN { print $p / $rp }")" "$(awk "BEGIN { print $g / $rg }")" "$get50" "$p50" "$p99" \
      "$((p50 - r50))" "$(((p50 - r50) - (get50 - rget)))"
  done
  unset LINE
done
