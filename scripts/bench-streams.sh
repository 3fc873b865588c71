#!/usr/bin/env bash
# Cross-DC replication streams: two datacenters of one node each (keyspace replicated once
# in each), YCSB A against dc1 at LOCAL_QUORUM, then wait for the stream to drain and report
# what crossed the "WAN": batch bytes per write, and over the writes' own bytes (storage key
# + object, i.e. key, value and causal metadata); and dc2's replication lag p50/p99.
#
#   scripts/bench-streams.sh [records] [seconds] [value bytes] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-20000}"
SECONDS_PER="${2:-15}"
VALUE="${3:-1024}"
CONC="${4:-32}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo build --release -p meridian

SEEDS=""
for i in 1 2; do
  ARGS=(--data-dir "$WORK/n$i" --grpc-addr "127.0.4.$i:0" --http-addr "127.0.4.$i:0"
        --gossip-addr "127.0.4.$i:0" --dc "dc$i" --log warn)
  [ -n "$SEEDS" ] && ARGS+=(--seeds "$SEEDS")
  "$BIN" server "${ARGS[@]}" >"$WORK/n$i.out" 2>"$WORK/n$i.log" & PIDS+=($!)
  wait_ready "$WORK/n$i.out"
  [ -z "$SEEDS" ] && SEEDS=$(field "$WORK/n$i.out" gossip)
done
DC1=$(field "$WORK/n1.out" grpc)
DC2=$(field "$WORK/n2.out" grpc)
HTTP1=$(field "$WORK/n1.out" http)
wait_members "$DC1" 2
"$BIN" keyspace create --endpoint "$DC1" bench --kind siblings --replication dc1=1,dc2=1 >/dev/null
sleep 2 # the keyspace definition reaches dc2 by gossip

echo "records=$RECORDS value=${VALUE}B concurrency=$CONC seconds=$SECONDS_PER cores=$(nproc)"
"$BIN" bench --target meridian --endpoint "$DC1" --label "dc1, LOCAL_QUORUM, stream to dc2" \
  --records "$RECORDS" --duration "$SECONDS_PER" --concurrency "$CONC" --value-size "$VALUE" \
  --workloads a --no-progress --keyspace bench
for _ in $(seq 600); do
  "$BIN" admin status --endpoint "$DC1" | grep -q "stream to dc2: 0 writes queued" && break
  sleep 0.2
done
metric() { curl -s "$HTTP1/metrics" | grep "^$1{" | awk '{s+=$2} END {printf "%d", s}'; }
SENT=$(metric meridian_stream_sent_total)
BYTES=$(metric meridian_stream_bytes_total)
PAYLOAD=$(metric meridian_stream_payload_bytes_total)
echo "stream dc1->dc2: $SENT writes, $BYTES batch bytes, $PAYLOAD bytes of writes"
awk -v s="$SENT" -v b="$BYTES" -v p="$PAYLOAD" 'BEGIN {
  printf "per write: %.1f batch bytes, %.1f bytes of key+value+metadata; ratio %.3f\n", b/s, p/s, b/p }'
"$BIN" admin status --endpoint "$DC2" | grep "stream from"
