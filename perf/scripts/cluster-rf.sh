#!/usr/bin/env bash
# Replication cost on one machine (issue: cluster): S1 (300k x 1 KiB, 6 partitions, acks=all,
# then consume all back) against a three-node cluster started here, with replication factor 1
# and 3 alternating, RUNS times each. Prints throughput and the brokers' CPU seconds (user+sys
# of the three processes, from /proc) per run and per GB replicated. Usage:
#   perf/scripts/cluster-rf.sh [RUNS]      (default 3; builds bin/spate and bin/spate-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
OUT=perf/results/cluster-rf-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" bin
CGO_ENABLED=0 go build -o bin/spate ./cmd/spate
go build -o bin/spate-bench ./cmd/spate-bench
DATA=$(mktemp -d)
VOTERS=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093
PIDS=()
for i in 1 2 3; do
  ./bin/spate -node-id $i -listen 127.0.0.1:${i}9092 -admin "" -data-dir "$DATA/$i" \
    -controller-quorum-voters $VOTERS -log-level warn >"$OUT/node$i.log" 2>&1 &
  PIDS+=($!)
done
trap 'kill ${PIDS[*]} 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"' EXIT
sleep 5
TICK=$(getconf CLK_TCK)
cpu() { local t=0; for p in "${PIDS[@]}"; do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo "$t"; }
printf "%-4s %-4s %12s %12s %10s %14s\n" run rf "produce MiB/s" "consume MiB/s" "cpu s" "cpu s/GB repl" | tee "$OUT/summary.txt"
for r in $(seq 1 "$RUNS"); do
  for rf in 1 3; do
    c0=$(cpu)
    ./bin/spate-bench run -quiet -workload s1 -brokers 127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092 \
      -replication-factor $rf -topic "rf$rf-run$r" -json "$OUT/rf$rf-run$r.json" >/dev/null
    c1=$(cpu)
    secs=$(echo "scale=2; ($c1-$c0)/$TICK" | bc)
    read -r pmb cmb < <(python3 -c "import json,sys; d=json.load(open('$OUT/rf$rf-run$r.json')); print(round(d['produce']['mib_per_s'],1), round(d['consume']['mib_per_s'],1))" 2>/dev/null || echo "? ?")
    gb=$(echo "scale=4; 300000*1024*$rf/1000000000" | bc)
    printf "%-4s %-4s %12s %12s %10s %14s\n" "$r" "$rf" "$pmb" "$cmb" "$secs" "$(echo "scale=2; $secs/$gb" | bc)" | tee -a "$OUT/summary.txt"
  done
done
echo "results in $OUT"
