#!/usr/bin/env bash
# CRDT figures in one run (issue 10), all against release builds on this machine:
#  1. counter increments/s at LOCAL_ONE with CONC concurrent clients on KEYS hot keys (the
#     load generator's zipfian choice): Redis INCR, one Meridian node, and a 2-DC cluster
#     (one node per DC, the counter replicated to both: every increment also crosses to dc2);
#  2. WAN bytes for one add to a 100,000-element set: dc1's replication-stream bytes
#     (`meridian_stream_bytes_total`) before and after the add, once dc2 holds the whole set;
#  3. stored bytes of a 10,000-element set after 1,000 removes ÷ its elements' bytes (the
#     core's `crdt_sizes` example: the object exactly as a node stores it).
#
#   scripts/bench-crdt.sh [seconds] [concurrency] [keys]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER="${1:-10}"
CONC="${2:-64}"
KEYS="${3:-1000}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! command -v redis-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
cargo build -q --release -p meridian
cargo build -q --release -p meridian-core --example crdt_sizes

start_node() { # name, extra args...: starts a node, prints nothing, leaves $WORK/name.out
  local name="$1"; shift
  "$BIN" server --data-dir "$WORK/$name" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --gossip-addr 127.0.0.1:0 --log warn "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" & PIDS+=($!)
  wait_ready "$WORK/$name.out"
}
stream_bytes() { # http url: the node's stream bytes sent, all streams
  curl -s "$1/metrics" | awk '/^meridian_stream_bytes_total/ {s += $2} END {printf "%d", s}'
}

REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$WORK/redis.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

start_node single
SINGLE=$(field "$WORK/single.out" grpc)
"$BIN" keyspace create --endpoint "$SINGLE" hits --kind counter >/dev/null

start_node dc1 --dc dc1
DC1=$(field "$WORK/dc1.out" grpc); DC1_HTTP=$(field "$WORK/dc1.out" http)
start_node dc2 --dc dc2 --seeds "$(field "$WORK/dc1.out" gossip)"
DC2=$(field "$WORK/dc2.out" grpc)
wait_members "$DC1" 2
"$BIN" keyspace create --endpoint "$DC1" hits --kind counter --replication dc1=1,dc2=1 >/dev/null
"$BIN" keyspace create --endpoint "$DC1" big --kind set --replication dc1=1,dc2=1 >/dev/null
for _ in $(seq 100); do "$BIN" keyspace list --endpoint "$DC2" 2>/dev/null | grep -q '^big' && break; sleep 0.2; done

COMMON=(--workloads incr --records "$KEYS" --duration "$SECONDS_PER" --concurrency "$CONC" --skip-load --no-progress)
echo "increments: $CONC clients, $KEYS keys, ${SECONDS_PER}s each, cores=$(nproc)"
"$BIN" bench --target redis --label "redis INCR" --redis-url "redis://127.0.0.1:$REDIS_PORT/" "${COMMON[@]}"
"$BIN" bench --target meridian --label "meridian 1 node" --endpoint "$SINGLE" --keyspace hits \
  --consistency LOCAL_ONE "${COMMON[@]}" | tail -n +2
"$BIN" bench --target meridian --label "meridian 2 DCs" --endpoint "$DC1" --keyspace hits \
  --consistency LOCAL_ONE "${COMMON[@]}" | tail -n +2

echo
echo "one add to a 100,000-element set, dc1 → dc2:"
for chunk in $(seq 0 9); do
  # shellcheck disable=SC2046
  "$BIN" set add --endpoint "$DC1" -k big cart --consistency LOCAL_ONE \
    $(seq -f "item-%06g" $((chunk * 10000)) $((chunk * 10000 + 9999))) >/dev/null 2>&1
done
members() { "$BIN" set members --endpoint "$1" -k big cart --consistency LOCAL_ONE 2>/dev/null \
  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
for _ in $(seq 300); do [ "$(members "$DC2")" = 100000 ] && break; sleep 0.2; done
echo "  dc2 holds $(members "$DC2") elements"
before=$(stream_bytes "$DC1_HTTP")
"$BIN" set add --endpoint "$DC1" -k big cart --consistency LOCAL_ONE one-more >/dev/null 2>&1
for _ in $(seq 300); do [ "$(members "$DC2")" = 100001 ] && break; sleep 0.1; done
after=$(stream_bytes "$DC1_HTTP")
echo "  dc2 holds $(members "$DC2") elements; dc1 sent $((after - before)) stream bytes for the add"

echo
"$CARGO_TARGET_DIR/release/examples/crdt_sizes"
