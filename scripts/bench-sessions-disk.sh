#!/usr/bin/env bash
# Disk under a delete-heavy workload, tombstone GC on ÷ off, side by side: two clusters of
# two DCs (one node each, keyspace replicated once in each DC) run at once, one with GC
# (short hint age and grace so it shows within minutes, sweeping every partition each
# ~20 s) and one with `--tombstone-sweeps-per-sec 0`. The same paced sessions workload runs
# against dc1 of each: every operation creates a session key and deletes the one its
# client created RECORDS/CONCURRENCY operations earlier, so RECORDS sessions stay live.
# Prints the bytes of both nodes' data directories every SAMPLE seconds and the tombstones
# purged.
#
#   scripts/bench-sessions-disk.sh [seconds] [rate ops/s per cluster] [live sessions] [value bytes]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-240}"
RATE="${2:-1000}"
RECORDS="${3:-10000}"
VALUE="${4:-100}"
SAMPLE=20
CONC=16
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo build --release -p meridian

start_cluster() { # name, net, extra flags...
  local name=$1 net=$2 seeds=""; shift 2
  for i in 1 2; do
    local args=(--data-dir "$WORK/$name/n$i" --grpc-addr "127.0.$net.$i:0"
          --http-addr "127.0.$net.$i:0" --gossip-addr "127.0.$net.$i:0" --dc "dc$i" --log warn "$@")
    [ -n "$seeds" ] && args+=(--seeds "$seeds")
    mkdir -p "$WORK/$name"
    "$BIN" server "${args[@]}" >"$WORK/$name/n$i.out" 2>"$WORK/$name/n$i.log" & PIDS+=($!)
    wait_ready "$WORK/$name/n$i.out"
    [ -z "$seeds" ] && seeds=$(field "$WORK/$name/n$i.out" gossip)
  done
  local ep; ep=$(field "$WORK/$name/n1.out" grpc)
  wait_members "$ep" 2
  "$BIN" keyspace create --endpoint "$ep" sessions --kind siblings --replication dc1=1,dc2=1 >/dev/null
}
bytes() { du -sb "$WORK/$1/n1" "$WORK/$1/n2" | awk '{s+=$1} END {printf "%d", s}'; }
purged() {
  for i in 1 2; do curl -s "$(field "$WORK/$1/n$i.out" http)/metrics"; done |
    awk '/^meridian_tombstones_purged_total/ {s+=$2} END {printf "%d", s}'
}

# Small memtables, so flushes and compactions (which is where RocksDB drops deleted keys)
# happen within the run.
printf '[storage]\nwrite_buffer_mb = 4\n' >"$WORK/node.toml"
start_cluster gc 7 --config "$WORK/node.toml" --hint-max-age-secs 10 --tombstone-grace-secs 20 --tombstone-sweeps-per-sec 200
start_cluster nogc 8 --config "$WORK/node.toml" --tombstone-sweeps-per-sec 0
sleep 2 # the keyspace definitions reach dc2 by gossip

echo "seconds=$SECONDS_RUN rate=${RATE}ops/s (create + delete) live=$RECORDS value=${VALUE}B cores=$(nproc)"
for c in gc nogc; do
  "$BIN" bench --target meridian --endpoint "$(field "$WORK/$c/n1.out" grpc)" --label "sessions, $c" \
    --keyspace sessions --workloads sessions --records "$RECORDS" --value-size "$VALUE" \
    --concurrency "$CONC" --rate "$RATE" --duration "$SECONDS_RUN" --skip-load --no-progress \
    >"$WORK/$c.bench" & PIDS+=($!)
done
START=$(date +%s)
printf "%8s %14s %14s %10s %16s\n" seconds "GC on bytes" "GC off bytes" "on ÷ off" "purged (GC on)"
while [ $(( $(date +%s) - START )) -lt "$SECONDS_RUN" ]; do
  sleep "$SAMPLE"
  ON=$(bytes gc); OFF=$(bytes nogc)
  printf "%8d %14d %14d %10.2f %16d\n" $(( $(date +%s) - START )) "$ON" "$OFF" \
    "$(awk -v a="$ON" -v b="$OFF" 'BEGIN {print a / b}')" "$(purged gc)"
done
wait "${PIDS[-1]}" "${PIDS[-2]}" || true
for c in gc nogc; do
  echo "$c: $(find "$WORK/$c" -name '*.sst' -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}') bytes of SST files, $(find "$WORK/$c" -name '*.log' -path '*/n[12]/*' -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}') bytes of WAL"
done
cat "$WORK/gc.bench"; tail -n 1 "$WORK/nogc.bench"
