#!/usr/bin/env bash
# Injected WAN delay: two DCs of two nodes each (keyspace replicated twice in each DC), every
# node reached from the other DC through the WAN proxy (`server/node/examples/wan_proxy.rs`,
# the tests' proxy as a process). YCSB A runs against dc1 at LOCAL_QUORUM in phases that
# alternate a one-way delay of 0 and DELAY ms on the same cluster, paced at RATE ops/s
# (0: as fast as the clients go; paced latencies count from when an operation was due,
# after the records are loaded and streamed once, unmeasured). Each phase prints the
# benchmark's latencies, then waits for dc1's streams to drain and prints dc2's replication
# lag over the phase (from the nodes' `meridian_stream_lag_seconds` histograms, as "≤ bucket
# bound") and the share of writes that arrived within DELAY + 20 ms.
#
#   scripts/bench-wan.sh [delay ms] [rate ops/s] [records] [seconds per phase] [concurrency] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY="${1:-40}"
RATE="${2:-2000}"
RECORDS="${3:-20000}"
SECONDS_PER="${4:-10}"
CONC="${5:-32}"
ROUNDS="${6:-2}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo build --release -p meridian --example wan_proxy
PROXY="$CARGO_TARGET_DIR/release/examples/wan_proxy"

mkfifo "$WORK/proxy.in"
"$PROXY" 127.0.5.101 127.0.5.102 127.0.5.103 127.0.5.104 <"$WORK/proxy.in" >"$WORK/proxy.out" & PIDS+=($!)
exec 3>"$WORK/proxy.in"
for _ in $(seq 100); do [ "$(grep -c '^proxy' "$WORK/proxy.out")" -ge 4 ] && break; sleep 0.1; done
proxy_cmd() { # command...: sends it and waits for the proxy's "ok"
  local before; before=$(grep -c '^ok' "$WORK/proxy.out" || true)
  echo "$*" >&3
  for _ in $(seq 100); do [ "$(grep -c '^ok' "$WORK/proxy.out" || true)" -gt "$before" ] && return 0; sleep 0.05; done
  echo "wan proxy did not take: $*"; exit 1
}

SEEDS=""
for i in 1 2 3 4; do
  DC=dc$(( (i + 1) / 2 ))
  WAN=$(awk -v i="$i" '$1 == "proxy" && $2 == i {print $3}' "$WORK/proxy.out")
  ARGS=(--data-dir "$WORK/n$i" --grpc-addr "127.0.5.$i:0" --http-addr "127.0.5.$i:0"
        --gossip-addr "127.0.5.$i:0" --wan-grpc-addr "$WAN" --dc "$DC" --rack "r$i" --log warn)
  [ -n "$SEEDS" ] && ARGS+=(--seeds "$SEEDS")
  "$BIN" server "${ARGS[@]}" >"$WORK/n$i.out" 2>"$WORK/n$i.log" & PIDS+=($!)
  wait_ready "$WORK/n$i.out"
  [ -z "$SEEDS" ] && SEEDS=$(field "$WORK/n$i.out" gossip)
  GRPC=$(field "$WORK/n$i.out" grpc)
  proxy_cmd target "$i" "${GRPC#http://}"
done
DC1=$(field "$WORK/n1.out" grpc)
wait_members "$DC1" 4
"$BIN" keyspace create --endpoint "$DC1" bench --kind siblings --replication dc1=2,dc2=2 >/dev/null
sleep 2 # the keyspace definition reaches the other nodes by gossip

# Sums a histogram's buckets for source dc1 over dc2's nodes: "le count" lines.
lag_buckets() {
  for i in 3 4; do curl -s "$(field "$WORK/n$i.out" http)/metrics"; done |
    { grep '^meridian_stream_lag_seconds_bucket{.*source_dc="dc1"' || true; } |
    sed -E 's/.*le="([^"]+)".* ([0-9.e+]+)$/\1 \2/' |
    awk '{s[$1]+=$2} END {for (k in s) print k, s[k]}' | sort -g
}
drained() {
  for i in 1 2; do
    "$BIN" admin status --endpoint "$(field "$WORK/n$i.out" grpc)" |
      grep -q "stream to dc2: 0 writes queued" || return 1
  done
}

COMMON=(--target meridian --endpoint "$DC1" --records "$RECORDS" --concurrency "$CONC"
        --value-size 1024 --workloads a --no-progress --keyspace bench)
"$BIN" bench "${COMMON[@]}" --duration 0.1 >/dev/null
for _ in $(seq 1500); do drained && break; sleep 0.2; done
echo "delay=${DELAY}ms rate=${RATE}ops/s records=$RECORDS value=1KiB concurrency=$CONC seconds/phase=$SECONDS_PER cores=$(nproc)"
HEADER=1
for round in $(seq "$ROUNDS"); do
  for d in 0 "$DELAY"; do
    proxy_cmd delay "$d"
    lag_buckets >"$WORK/before"
    OUT=$("$BIN" bench "${COMMON[@]}" --skip-load --duration "$SECONDS_PER" --rate "$RATE" \
      --label "delay ${d} ms, round $round")
    if [ "$HEADER" = 1 ]; then echo "$OUT"; HEADER=0; else echo "$OUT" | tail -n +2; fi
    echo "$d $(echo "$OUT" | tail -n 1 | awk '{print $(NF-3)}')" >>"$WORK/p99s"
    for _ in $(seq 600); do drained && break; sleep 0.2; done
    lag_buckets >"$WORK/after"
    awk -v d="$d" '
      FILENAME == ARGV[1] { before[$1] = $2; next }
      { le[++n] = $1; c[n] = $2 - before[$1] }
      END {
        total = c[n]
        if (total == 0) { print "  lag: no writes applied"; exit }
        for (i = 1; i <= n; i++) {
          if (p50 == "" && c[i] >= 0.5 * total) p50 = le[i]
          if (p99 == "" && c[i] >= 0.99 * total) p99 = le[i]
          if (le[i] != "+Inf" && le[i] + 0 <= (d + 20) / 1000 + 1e-9) within = c[i]
        }
        printf "  lag of %d writes: p50 <= %s s, p99 <= %s s; within delay + 20 ms: %.2f%%\n",
          total, p50, p99, 100 * within / total
      }' "$WORK/before" "$WORK/after" | tee -a "$WORK/lags"
  done
done
# Medians over the rounds: a stall of the shared machine in one phase moves one round's
# p99 a lot, and the median of several rounds much less.
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
P0=$(awk '$1 == 0 {print $2}' "$WORK/p99s" | median)
PD=$(awk -v d="$DELAY" '$1 == d {print $2}' "$WORK/p99s" | median)
echo "median LOCAL_QUORUM p99 over $ROUNDS rounds: ${P0} µs without delay, ${PD} µs with ${DELAY} ms; ratio $(awk -v a="$PD" -v b="$P0" 'BEGIN {printf "%.2f", a / b}')"
