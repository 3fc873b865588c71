#!/usr/bin/env bash
# Side-by-side benchmark in one run: Meridian (siblings and lww keyspaces, WAL on), Redis
# (Debian's redis-server, persistence off as in its default benchmark setup), and the bare
# gRPC echo target (same tonic stack and session stream, no storage).
#
#   scripts/bench.sh [records] [seconds per workload] [concurrency]
#
# Builds the release profile (RocksDB compiles once per profile, ~12 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-100000}"
SECONDS_PER="${2:-15}"
CONC="${3:-64}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! command -v redis-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
cargo build --release -p meridian

"$BIN" server --data-dir "$WORK/data" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0 --log warn \
  >"$WORK/node.out" 2>"$WORK/node.log" & PIDS+=($!)
"$BIN" echo-server --grpc-addr 127.0.0.1:0 >"$WORK/echo.out" 2>&1 & PIDS+=($!)
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_ready "$WORK/node.out"; wait_ready "$WORK/echo.out"
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

NODE=$(grep -o 'grpc=[^ ]*' "$WORK/node.out" | cut -d= -f2)
ECHO=$(grep -o 'grpc=[^ ]*' "$WORK/echo.out" | cut -d= -f2)
"$BIN" keyspace create --endpoint "$NODE" bench-siblings --kind siblings >/dev/null
"$BIN" keyspace create --endpoint "$NODE" bench-lww --kind lww >/dev/null

COMMON=(--records "$RECORDS" --duration "$SECONDS_PER" --concurrency "$CONC" --value-size 1024 --workloads a,b,c --no-progress)
echo "records=$RECORDS value=1KiB concurrency=$CONC seconds/workload=$SECONDS_PER cores=$(nproc)"
"$BIN" bench --target redis --redis-url "redis://127.0.0.1:$REDIS_PORT/" "${COMMON[@]}"
"$BIN" bench --target echo --endpoint "$ECHO" "${COMMON[@]}" --skip-load | tail -n +2
"$BIN" bench --target meridian --endpoint "$NODE" --keyspace bench-siblings "${COMMON[@]}" | tail -n +2
"$BIN" bench --target meridian --endpoint "$NODE" --keyspace bench-lww "${COMMON[@]}" | tail -n +2
