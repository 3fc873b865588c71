#!/usr/bin/env bash
# Steady-state cost of anti-entropy: YCSB A against three nodes in one DC (keyspace
# replicated 3 times, LOCAL_QUORUM), on a fresh cluster per run, alternating continuous
# anti-entropy off (`--anti-entropy-exchanges-per-sec 0`) and on at RATE exchanges per second
# per node (the default is 2). The Merkle trees are kept current in both: they are part of
# every write (see `cargo run --release -p meridian-core --example tree_update_cost` for
# their share). Prints each run and the on ÷ off throughput ratio per round.
#
#   scripts/bench-ae-cost.sh [exchanges/s] [records] [seconds] [concurrency] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-2}"
RECORDS="${2:-50000}"
SECONDS_PER="${3:-15}"
CONC="${4:-64}"
ROUNDS="${5:-2}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo build --release -p meridian

RUN=0
run_cluster() { # label, exchanges/s: starts three nodes, runs YCSB A, stops them
  RUN=$((RUN + 1))
  local mine=() seeds="" dir="$WORK/run$RUN"
  mkdir -p "$dir"
  for i in 1 2 3; do
    local args=(--data-dir "$dir/n$i" --grpc-addr "127.0.6.$i:0" --http-addr "127.0.6.$i:0"
          --gossip-addr "127.0.6.$i:0" --dc dc1 --rack "r$i" --log warn
          --anti-entropy-exchanges-per-sec "$2")
    [ -n "$seeds" ] && args+=(--seeds "$seeds")
    "$BIN" server "${args[@]}" >"$dir/n$i.out" 2>"$dir/n$i.log" & mine+=($!); PIDS+=($!)
    wait_ready "$dir/n$i.out"
    [ -z "$seeds" ] && seeds=$(field "$dir/n$i.out" gossip)
  done
  local ep; ep=$(field "$dir/n1.out" grpc)
  wait_members "$ep" 3
  "$BIN" keyspace create --endpoint "$ep" bench --kind siblings --replication dc1=3 >/dev/null
  sleep 2 # the keyspace definition reaches the other nodes by gossip
  "$BIN" bench --target meridian --endpoint "$ep" --label "$1" --records "$RECORDS" \
    --duration "$SECONDS_PER" --concurrency "$CONC" --value-size 1024 --workloads a \
    --no-progress --keyspace bench | tail -n 1 | tee -a "$WORK/rows"
  local ae=0
  for i in 1 2 3; do
    ae=$((ae + $(curl -s "$(field "$dir/n$i.out" http)/metrics" |
      awk '/^meridian_anti_entropy_exchanges_total/ {s+=$2} END {printf "%d", s}')))
  done
  echo "  anti-entropy exchanges in the run: $ae"
  for p in "${mine[@]}"; do kill "$p"; done
  wait "${mine[@]}" 2>/dev/null || true
  rm -rf "$dir"
}

echo "records=$RECORDS value=1KiB concurrency=$CONC seconds=$SECONDS_PER exchanges/s=$RATE cores=$(nproc)"
for round in $(seq "$ROUNDS"); do
  run_cluster "anti-entropy off, $round" 0
  run_cluster "anti-entropy on, $round" "$RATE"
  tail -n 2 "$WORK/rows" | awk '{ops[NR] = $(NF-6)} END {printf "  round ratio on / off: %.3f\n", ops[2] / ops[1]}'
done
