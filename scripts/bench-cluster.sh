#!/usr/bin/env bash
# Cluster vs single node, side by side in one run: YCSB A and B against one node, then
# against three nodes in one datacenter (keyspace replicated 3 times, LOCAL_QUORUM reads and
# writes). The SDK routes each request to a replica of its key.
#
#   scripts/bench-cluster.sh [records] [seconds per workload] [concurrency]
#
# On one machine all nodes share its cores, so the cluster does three times the storage work
# on the same CPUs: the ratio shows the cost of replication, not the scale-out.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-100000}"
SECONDS_PER="${2:-15}"
CONC="${3:-64}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo build --release -p meridian

# One node on its own.
"$BIN" server --data-dir "$WORK/single" --grpc-addr 127.0.1.1:0 --http-addr 127.0.1.1:0 \
  --gossip-addr 127.0.1.1:0 --log warn >"$WORK/single.out" 2>"$WORK/single.log" & PIDS+=($!)
wait_ready "$WORK/single.out"
SINGLE=$(field "$WORK/single.out" grpc)

# Three nodes, one DC, three racks.
SEEDS=""
for i in 1 2 3; do
  ARGS=(--data-dir "$WORK/n$i" --grpc-addr "127.0.2.$i:0" --http-addr "127.0.2.$i:0"
        --gossip-addr "127.0.2.$i:0" --dc dc1 --rack "r$i" --log warn)
  [ -n "$SEEDS" ] && ARGS+=(--seeds "$SEEDS")
  "$BIN" server "${ARGS[@]}" >"$WORK/n$i.out" 2>"$WORK/n$i.log" & PIDS+=($!)
  wait_ready "$WORK/n$i.out"
  [ -z "$SEEDS" ] && SEEDS=$(field "$WORK/n$i.out" gossip)
done
CLUSTER=$(field "$WORK/n1.out" grpc)
wait_members "$CLUSTER" 3

"$BIN" keyspace create --endpoint "$SINGLE" bench --kind siblings >/dev/null
"$BIN" keyspace create --endpoint "$CLUSTER" bench --kind siblings --replication dc1=3 >/dev/null
sleep 2 # the keyspace definition reaches the other nodes by gossip

COMMON=(--records "$RECORDS" --duration "$SECONDS_PER" --concurrency "$CONC" --value-size 1024 --workloads a,b --no-progress --keyspace bench)
echo "records=$RECORDS value=1KiB concurrency=$CONC seconds/workload=$SECONDS_PER cores=$(nproc)"
"$BIN" bench --target meridian --endpoint "$SINGLE" --label "1 node" "${COMMON[@]}"
"$BIN" bench --target meridian --endpoint "$CLUSTER" --label "3 nodes, N=3, LOCAL_QUORUM" "${COMMON[@]}" | tail -n +2
