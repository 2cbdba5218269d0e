#!/usr/bin/env bash
# Throughput benchmark: one worker process end to end (consume → decode →
# apply → Redis → produce → commit) on `dealsignal gen`'s realistic mix.
#
#   bench/run.sh [scorer|watcher|both] [EVENTS] [RUNS]
#
# Starts the embedded broker (with enough partitions for the mock cluster's
# ~5 MiB/partition retention) and a private redis-server, preloads EVENTS
# events, then runs the worker RUNS times, each with a fresh consumer group
# and a fresh Redis database, timing from start until its
# dealsignal_consumed_records_total reaches the preload.  Prints events/s per
# run and the median, the CPU seconds of worker/Redis/broker and the worker's
# peak RSS.  BENCH_TINY=1 is the CI smoke configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-scorer}
events=${2:-1000000}
runs=${3:-3}
bin=${DS_BIN:-build/dealsignal}
[ -x "$bin" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; cmake --build build -j"$(nproc)" >/dev/null; }
partitions=${BENCH_PARTITIONS:-48}
tmp=$(mktemp -d /tmp/ds-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_of() { awk '{print ($14+$15)/100}' "/proc/$1/stat" 2>/dev/null || echo 0; }

"$bin" broker --partitions "$partitions" > "$tmp/broker.out" 2>"$tmp/broker.err" &
pids+=($!); broker_pid=$!
for _ in $(seq 100); do [ -s "$tmp/broker.out" ] && break; sleep 0.1; done
brokers=$(head -n1 "$tmp/broker.out")
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >/dev/null &
pids+=($!); redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

case $which in
  scorer) scenario=marketing; sub=scorer ;;
  watcher) scenario=crm; sub=watcher ;;
  both) scenario=mixed; sub=run ;;
  *) echo "usage: $0 [scorer|watcher|both] [EVENTS] [RUNS]" >&2; exit 2 ;;
esac
t0=$(date +%s.%N)
"$bin" gen --brokers "$brokers" --count "$events" --rate 0 --seed 7 --scenario "$scenario" \
  --accounts "${BENCH_ACCOUNTS:-20000}" 2>"$tmp/gen.err"
t1=$(date +%s.%N)
echo "preloaded $events events in $(echo "$t1 - $t0" | bc) s ($(tail -n1 "$tmp/gen.err"))"
# how many landed on the input topic(s) (gen's duplicates included)
expected=$events

results=()
for run in $(seq "$runs"); do
  db=$((run % 16))
  mport=$(free_port)
  cpu_r0=$(cpu_of "$redis_pid"); cpu_b0=$(cpu_of "$broker_pid")
  start=$(date +%s.%N); launched=$start
  "$bin" "$sub" --brokers "$brokers" --redis "redis://127.0.0.1:$rport/$db" \
     --group-id "bench-$run-$$" --clock event --metrics-addr "127.0.0.1:$mport" \
     --log-level warn 2>"$tmp/worker-$run.err" &
  wpid=$!
  metric() { { curl -s "http://127.0.0.1:$mport/metrics" 2>/dev/null || true; } \
      | awk '/^dealsignal_consumed_records_total/ {s+=$2} END {printf "%d", s+0}'; }
  # the clock starts at the first completed batch (group join is not throughput)
  first=0
  while :; do
    consumed=$(metric)
    if [ "$first" = 0 ] && [ "$consumed" -gt 0 ]; then first=$consumed; start=$(date +%s.%N); fi
    [ "$consumed" -ge "$expected" ] && break
    kill -0 "$wpid" 2>/dev/null || { echo "worker died:"; tail "$tmp/worker-$run.err"; exit 1; }
    sleep 0.02
  done
  end=$(date +%s.%N)
  if [ "$first" -ge "$expected" ]; then
    # all of it in the first batch (tiny runs): time from the worker's start
    first=0; start=$launched
  fi
  expected_run=$((expected - first))
  cpu_w=$(cpu_of "$wpid"); rss=$(awk '/VmHWM/ {print $2}' "/proc/$wpid/status")
  cpu_r=$(echo "$(cpu_of "$redis_pid") - $cpu_r0" | bc); cpu_b=$(echo "$(cpu_of "$broker_pid") - $cpu_b0" | bc)
  kill -TERM "$wpid"; wait "$wpid" || true
  secs=$(echo "$end - $start" | bc)
  eps=$(echo "$expected_run / $secs" | bc)
  results+=("$eps")
  printf 'run %d: %s events in %.2f s = %s events/s; CPU s worker %.2f redis %.2f broker %.2f; worker peak RSS %d MiB\n' \
    "$run" "$expected_run" "$secs" "$eps" "$cpu_w" "$cpu_r" "$cpu_b" $((rss / 1024))
done
median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median: $median events/s ($which, $events events, $runs runs, $partitions partitions)"
