#!/usr/bin/env bash
# Throughput benchmark: one worker process end to end (consume → decode →
# apply → Redis → produce → commit) on `dealsignal gen`'s realistic mix.
#
#   bench/run.sh [scorer|watcher|both] [EVENTS] [RUNS]
#   bench/run.sh memory [LEADS]             scorer RSS with LEADS leads tracked
#   bench/run.sh stallcheck [DEALS] [DUE]   watcher clock-check cost, DUE of DEALS due
#   bench/run.sh backtest [EVENTS]          `dealsignal backtest` over gen's CRM mix: EVENTS
#                                           decoded and replayed without the broker
#                                           (ds_bench_backtest), then end to end through
#                                           the broker with what its partitions hold
#   bench/run.sh mallocs [EVENTS] [WORKER]  allocation calls per event of the scorer
#                                           (default), the watcher or the scorer on
#                                           the wide profile (wide), by library
#   bench/run.sh wide [EVENTS] [RUNS]       the scorer on `gen --profile wide`
#   bench/run.sh memory LEADS wide          scorer RSS per lead on the wide profile
#   bench/run.sh skew [EVENTS] [WHICH]      cost per event against the size of an
#                                           account or deal: scorer, watcher or both
#   bench/run.sh trickle [EVENTS] [RATE]    bytes to Redis per event of one deal, then
#                                           of one lead, fed at RATE events/s (the
#                                           worker keeps up)
#   bench/run.sh apply [EVENTS]             the scoring rules alone, in memory: one
#                                           lead's EVENTS over 8, 2,400 and 10,000
#                                           content items, a write per event (time and
#                                           bytes per event; ds_bench_apply)
#
# Starts the embedded broker (with enough partitions for the mock cluster's
# ~5 MiB/partition retention) and a private redis-server, preloads EVENTS
# events, then runs the worker RUNS times, each with a fresh consumer group
# and a fresh Redis database, timing from start until its
# dealsignal_consumed_records_total reaches the preload.  Prints events/s per
# run and the median, the CPU seconds of worker/Redis/broker and the worker's
# peak RSS.  Then (scorer only, unless BENCH_LATENCY=0) the latency from
# produce to LeadScore at half the median rate (BENCH_LAT_RATE overrides),
# on topics of its own (4 partitions: the mock broker's fetch cost grows with
# the number of message sets per partition), with a fresh scorer that has
# joined its group: p50/p90/p99/max.  The mock broker holds a fetch that
# finds no data for the whole fetch.wait.max.ms, even when data arrives
# meanwhile (a real broker answers as soon as fetch.min.bytes are there), so
# both consumers of the latency run (the scorer and the tool) fetch with
# fetch.wait.max.ms = BENCH_LAT_FETCH_WAIT_MS (default 1; 10 is the scorer's
# own default).
# BENCH_PERF=FILE records a perf profile of each run to FILE.RUN.WORKER (and of
# the latency run's scorer to FILE.lat); BENCH_PERF_CG sets its call-graph
# option (default -g; "--call-graph dwarf" for stacks through libraries).
# BENCH_WORKER_ARGS="..." adds these words to each throughput run's worker
# command line (such as -X queued.min.messages=300000).
# BENCH_HEAPTRACK=FILE runs each throughput run's worker under heaptrack
# (its preload library, so that the worker keeps its pid) into
# FILE.RUN.WORKER.gz; `heaptrack_print -f FILE.1.1.gz --print-peaks 1`
# says who held the memory at the peak.
# BENCH_WORKERS=N runs N worker processes in one group (horizontal scaling;
# the clock starts once every one has its partitions); CPU is summed.
#
# wide: the same throughput runs on `dealsignal gen --profile wide` (20,000
# accounts x 12 leads, 2,400 content items over 40 insights, 4 % of the
# events without an account, ~7 ms apart; BENCH_ACCOUNTS overrides the
# accounts) with its catalog as the scorer's rules (`gen --print-rules`);
# each run also prints the tracked leads (the scorer's
# dealsignal_tracked_leads), the worker's RSS at the end and at its peak
# per tracked lead, and Redis's used_memory growth per tracked lead.  On 48
# partitions like the others: the embedded broker keeps ~5 MiB per
# partition, fewer than 1,000,000 of these records on 16.
# memory LEADS wide: the wide profile over LEADS/13.5 accounts, 50 events
# per account (~LEADS leads tracked, ~3.7 events per lead), produced while
# the scorer consumes, on 128 partitions unless BENCH_PARTITIONS says
# otherwise; RSS per tracked lead 3 s after the last message.
# skew: each case on a topic of one partition of its own, EVENTS events
# (default 40,000; one partition of the embedded broker keeps about 50,000
# of them, and the mode stops if a topic lost any), a fresh consumer group
# and an empty Redis, timed like the throughput runs but stopped after
# BENCH_SKEW_SECONDS (default 60) when slower (the rate is then over what
# was processed by then); BENCH_SKEW_RUNS (default 3) runs of each case,
# the cases alternating, and the median of each.
#   scorer: `gen --profile skew` over BENCH_SKEW_SMALL (default 3000x8:
#   3,000 accounts x 8 leads), then one account of each size in
#   BENCH_SKEW_LEADS (default "5000 50000"); the ratio of each to the small
#   accounts' rate.
#   watcher (event clock): `ds_bench_load crm` over BENCH_SKEW_DEALS/5
#   accounts x 5 deals x 8 stakeholders; one account of BENCH_SKEW_DEALS
#   (default 10,000) deals x 8 stakeholders; one deal of 8 stakeholders;
#   one deal of BENCH_SKEW_STAKEHOLDERS (default 1,000).  No deal ever gets
#   a mobilizer, so from its third buyer signal on every evaluation reads
#   its stakeholders' tiers (NO_MOBILIZER); the scorer's lead hashes of
#   every contact are preloaded (tier LEARNING).  Ratios: the large account
#   to the small accounts, the large deal to the deal of 8.
# BENCH_CALLGRIND=PREFIX runs each skew case's worker under callgrind
# (files PREFIX.<topic>.<run>-<thread>; raise BENCH_SKEW_SECONDS, and
# BENCH_SKEW_RUNS=1 is enough) and prints the
# instructions per event of its busiest thread, the worker's pipeline:
# unlike events/s, barely moved by the load of a shared machine (only the
# write-behind windows follow the wall clock).  In the throughput modes
# (scorer, watcher, both, wide) it runs each run's worker under callgrind
# too (files PREFIX.<run>.<worker>-<thread>; read them with
# callgrind_annotate): about 50 times slower, so 100,000 events are plenty,
# and the windows then close after fewer events than at full speed, which
# makes the state writes weigh more than they do in a timed run.
#
# BENCH_MONITOR=FILE (one Redis) records every command Redis receives
# during each run into FILE.RUN (`redis-cli monitor`) and prints where
# the bytes go, by command and key and by hash field, the scorer's write
# programs taken apart by field (ds_bench_monitor). MONITOR slows Redis
# down, and with it the run: read the shares.
# BENCH_REDIS=cluster runs the workers against a Redis Cluster of three
# masters on loopback (BENCH_CLUSTER_REPLICAS replicas each, default 0)
# instead of one Redis; Redis CPU, bytes and commands are summed over them.
# BENCH_CLUSTER_MASTERS=1 makes it a cluster of one master holding every
# slot: as many Redis processes as one Redis, so the difference is the
# worker's routing alone (on two cores three masters take CPU from it).
# Correctness: after each run a digest of its final state (every key and
# field under the run's prefix or database, ds_bench_digest) must equal the
# first run's, and is printed: runs of one stream against one Redis and
# against a cluster, with 1 or N workers, end in the same digest.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-scorer}
events=${2:-1000000}
runs=${3:-3}
bin=${DS_BIN:-build/dealsignal}
[ -x "$bin" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; cmake --build build -j"$(nproc)" >/dev/null; }
# apply: the rules alone, without the broker or Redis (the tool built next
# to the worker)
if [ "$which" = apply ]; then
  n=${2:-20000}
  tool=$(dirname "$bin")/ds_bench_apply
  [ -x "$tool" ] || cmake --build "$(dirname "$bin")" --target ds_bench_apply >/dev/null
  for contents in 8 2400 10000; do "$tool" "$contents" "$n"; done
  exit 0
fi
partitions=${BENCH_PARTITIONS:-48}
tmp=$(mktemp -d /tmp/ds-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_of() { awk '{print ($14+$15)/100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
sys_of() { awk '{print $15/100}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# memory on the wide profile preloads ~3.7 records per lead: room for them
[ "$which" = memory ] && [ "${3:-}" = wide ] && partitions=${BENCH_PARTITIONS:-128}
skew_topics=""
[ "$which" = trickle ] && skew_topics=,sk.crm.1:1,sk.crm.2:1,sk.ma.1:1,sk.ma.2:1
[ "$which" = skew ] && skew_topics=,sk.ma.1:1,sk.ma.2:1,sk.ma.3:1,sk.ma.4:1,sk.crm.1:1,sk.crm.2:1,sk.crm.3:1,sk.crm.4:1
"$bin" broker --partitions "$partitions" \
  --topics ma.events,crm.events,lead.scores,account.scores,deal.alerts,ma.events.dlq,crm.events.dlq,lat.events:4,lat.lead.scores:4,lat.account.scores:4$skew_topics \
  > "$tmp/broker.out" 2>"$tmp/broker.err" &
pids+=($!); broker_pid=$!
for _ in $(seq 100); do [ -s "$tmp/broker.out" ] && break; sleep 0.1; done
brokers=$(head -n1 "$tmp/broker.out")
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" >/dev/null &
pids+=($!); redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
# the Redis the throughput runs use: that one, or a cluster's masters
rports=("$rport"); rpids=("$redis_pid"); cluster=0
if [ "${BENCH_REDIS:-single}" = cluster ]; then
  cluster=1; rports=(); rpids=(); nodes=()
  replicas=${BENCH_CLUSTER_REPLICAS:-0}; masters=${BENCH_CLUSTER_MASTERS:-3}
  [ "$masters" = 1 ] && replicas=0
  for k in $(seq $((masters * (1 + replicas)))); do
    p=$(free_port); bus=$(free_port); mkdir -p "$tmp/node-$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 2000 --save "" \
      --appendonly no --dir "$tmp/node-$p" >/dev/null &
    pids+=($!); nodes+=("127.0.0.1:$p")
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  if [ "$masters" = 1 ]; then # redis-cli --cluster create wants three: all slots by hand
    redis-cli -p "${nodes[0]#*:}" cluster addslotsrange 0 16383 >/dev/null
  else
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes >/dev/null
  fi
  for n in "${nodes[@]}"; do
    until redis-cli -p "${n#*:}" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
  done
  # the masters, and their processes (replicas' CPU is not Redis's work here)
  for n in "${nodes[@]}"; do
    p=${n#*:}
    if redis-cli -p "$p" info replication | grep -q role:master; then
      rports+=("$p"); rpids+=("$(pgrep -f "redis-server 127.0.0.1:$p " | head -1)")
    fi
  done
  echo "Redis Cluster: masters on ports ${rports[*]} ($replicas replica(s) each)"
fi
redis_sum() { # redis_sum SECTION FIELD: summed over the Redis servers in use
  for p in "${rports[@]}"; do redis-cli -p "$p" info "$1"; done | awk -F: -v f="$2" '$1 == f {s+=$2} END {print s+0}'
}
redis_in() { redis_sum stats total_net_input_bytes; }
redis_cmds() { redis_sum stats total_commands_processed; }
redis_cpu() { local c=0; for p in "${rpids[@]}"; do c=$(echo "$c + $(cpu_of "$p")" | bc); done; echo "$c"; }
# --redis and --redis-prefix of run N: a database each on one Redis, a
# prefix each on a cluster (database 0 only)
redis_args() {
  if [ "$cluster" = 1 ]; then echo "--redis redis://127.0.0.1:${rports[0]}/0 --redis-prefix b$1:"
  else echo "--redis redis://127.0.0.1:$rport/$(($1 % 16))"; fi
}
digest_of() { # the digest of run N's state
  local d=$lat_dir/ds_bench_digest
  [ -x "$d" ] || cmake --build "$lat_dir" --target ds_bench_digest >/dev/null
  if [ "$cluster" = 1 ]; then "$d" "b$1:" "${rports[@]}"
  else "$d" "ds:" "$rport/$(($1 % 16))"; fi
}
metric_sum() { # metric_sum PORT REGEX: sum of the samples whose line matches
  { curl -s "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } \
    | awk -v re="$2" '$0 ~ re && !/^#/ {s+=$NF} END {printf "%.6f", s+0}'
}
wait_metric() { # wait_metric PORT REGEX MIN PID
  while :; do
    v=$(metric_sum "$1" "$2")
    [ "$(echo "$v >= $3" | bc)" = 1 ] && break
    kill -0 "$4" 2>/dev/null || { echo "worker died"; exit 1; }
    sleep 0.2
  done
}
lat_dir=$(dirname "$bin")
watch_bin=$lat_dir/ds_bench_watch
[ -x "$watch_bin" ] || { cmake "$lat_dir" >/dev/null 2>&1 &&
  cmake --build "$lat_dir" --target ds_bench_watch >/dev/null 2>&1; } || true
if [ ! -x "$watch_bin" ]; then # DS_BIN from a build without it
  watch_bin=build/ds_bench_watch
  [ -x "$watch_bin" ] || { cmake -S . -B build >/dev/null && cmake --build build --target ds_bench_watch >/dev/null; }
fi
if [ "$which" = memory ]; then
  n=${2:-1000000}
  profile=${3:-}
  rules=()
  if [ "$profile" = wide ]; then
    "$bin" gen --profile wide --print-rules > "$tmp/wide-rules.yaml"
    rules=(--rules "$tmp/wide-rules.yaml")
  fi
  mport=$(free_port)
  "$bin" scorer --brokers "$brokers" --redis "redis://127.0.0.1:$rport/0" --group-id "bench-mem-$$" \
     "${rules[@]}" --metrics-addr "127.0.0.1:$mport" --log-level warn 2>"$tmp/worker-mem.err" &
  wpid=$!; pids+=("$wpid")
  sleep 5
  base=$(awk '/VmRSS/ {print $2}' "/proc/$wpid/status")
  if [ "$profile" = wide ]; then
    accounts=$(( (n * 2 + 26) / 27 )) # ~13.5 leads tracked per account
    records=$((accounts * 50))
    "$bin" gen --brokers "$brokers" --profile wide --accounts "$accounts" --count "$records" \
      --rate 0 --seed 7 2>"$tmp/gen.err"
    echo "memory: $(tail -n1 "$tmp/gen.err") (wide profile, $accounts accounts)"
    [ -x "$lat_dir/ds_bench_load" ] || cmake --build "$lat_dir" --target ds_bench_load >/dev/null
    held=$("$lat_dir/ds_bench_load" "$brokers" held ma.events)
    if [ "$held" -lt "$records" ]; then
      echo "the broker holds $held of the $records records (its retention): raise BENCH_PARTITIONS" >&2
      exit 1
    fi
  else
    records=$n
    [ -x "$lat_dir/ds_bench_load" ] || cmake --build "$lat_dir" --target ds_bench_load >/dev/null
    "$lat_dir/ds_bench_load" "$brokers" leads "$n"
  fi
  wait_metric "$mport" '^dealsignal_consumed_records_total' "$records" "$wpid"
  # steady state: once idle for 1 s the worker gives the pages its consumer
  # queue held during the load back to the system (malloc_trim)
  sleep 3
  leads=$(metric_sum "$mport" '^dealsignal_tracked_leads')
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$wpid/status"); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$wpid/status")
  inuse=$(metric_sum "$mport" '^dealsignal_heap_in_use_bytes')
  held=$(metric_sum "$mport" '^dealsignal_heap_free_bytes')
  kill -TERM "$wpid"; wait "$wpid" || true
  printf 'memory: %.0f leads tracked; worker RSS %d MiB (%d MiB before the load, peak %d MiB) = %.0f bytes per lead (%.0f above the empty worker)\n' \
    "$leads" $((rss / 1024)) $((base / 1024)) $((hwm / 1024)) \
    "$(echo "$rss * 1024 / $leads" | bc -l)" "$(echo "($rss - $base) * 1024 / $leads" | bc -l)"
  # what the RSS is: the live allocations, and the rest (free memory the
  # allocator keeps resident, code, stacks); the free chunks it holds are
  # counted whether their pages are resident or were given back
  printf 'memory: of the RSS, heap in use %.0f MiB (%.0f bytes per lead), the rest %.0f MiB; the allocator holds %.0f MiB of free chunks\n' \
    "$(echo "$inuse / 1048576" | bc -l)" "$(echo "$inuse / $leads" | bc -l)" \
    "$(echo "($rss * 1024 - $inuse) / 1048576" | bc -l)" "$(echo "$held / 1048576" | bc -l)"
  exit 0
fi
if [ "$which" = mallocs ]; then
  # allocations per event in steady state: the worker over gen's mix on 500
  # accounts (their state exists after the first few thousand events), run
  # with bench/malloc_count.c preloaded
  n=${2:-200000}
  worker=${3:-scorer}
  profile=(); wrules=()
  case "$worker" in
    scorer) mix=marketing ;; watcher) mix=crm ;;
    wide) mix=marketing; worker=scorer; profile=(--profile wide)
      "$bin" gen --profile wide --print-rules > "$tmp/wide-rules.yaml"
      wrules=(--rules "$tmp/wide-rules.yaml") ;;
    *) echo "mallocs: WORKER is scorer, watcher or wide, not $worker" >&2; exit 2 ;;
  esac
  lib=$lat_dir/libds_malloc_count.so
  [ -f "$lib" ] || cmake --build "$lat_dir" --target ds_malloc_count >/dev/null
  "$bin" gen --brokers "$brokers" --count "$n" --rate 0 --seed 7 --scenario "$mix" \
    "${profile[@]}" --accounts 500 2>/dev/null
  mport=$(free_port)
  DS_MALLOC_COUNT_OUT=$tmp/mallocs.txt LD_PRELOAD=$lib "$bin" "$worker" "${wrules[@]}" --brokers "$brokers" \
    --redis "redis://127.0.0.1:$rport/0" --group-id "bench-malloc-$$" --clock event \
    --metrics-addr "127.0.0.1:$mport" --log-level warn 2>"$tmp/worker-malloc.err" &
  wpid=$!; pids+=("$wpid")
  wait_metric "$mport" '^dealsignal_consumed_records_total' "$n" "$wpid"
  kill -TERM "$wpid"; wait "$wpid" || true
  echo "mallocs: $worker's allocation calls per event over $n events (start-up and state growth included), by calling object:"
  awk -v n="$n" '{c[$2]+=$1} END {for (k in c) printf "  %8.2f  %s\n", c[k]/n, k}' "$tmp/mallocs.txt" | sort -rn
  echo "  the executable's call sites with more than 0.01 per event:"
  awk -v n="$n" -v b="$bin" '$2 == b && $1/n > 0.01 {print $1, $3}' "$tmp/mallocs.txt" | sort -rn |
    while read -r c off; do
      printf '  %8.3f  %s\n' "$(echo "$c / $n" | bc -l)" "$(addr2line -f -e "$bin" "$off" | head -1)"
    done
  exit 0
fi
if [ "$which" = stallcheck ]; then
  n=${2:-1000000}; due=${3:-1000}
  cat > "$tmp/rules.yaml" <<'YAML'
stall:
  stages:
    RECOGNIZE_NEED: {verifiers: ["live_call_accepted"], max_quiet_days: 30}
    EXPLORE_OPTIONS: {verifiers: ["status_quo_flaw_acknowledged"], max_quiet_days: 0.0001}
YAML
  mport=$(free_port)
  "$bin" watcher --brokers "$brokers" --redis "redis://127.0.0.1:$rport/0" --group-id "bench-stall-$$" \
     --clock wall --check-interval-ms 200 --rules "$tmp/rules.yaml" \
     --metrics-addr "127.0.0.1:$mport" --log-level warn 2>"$tmp/worker-stall.err" &
  wpid=$!; pids+=("$wpid")
  [ -x "$lat_dir/ds_bench_load" ] || cmake --build "$lat_dir" --target ds_bench_load >/dev/null
  "$lat_dir/ds_bench_load" "$brokers" deals $((n - due)) RECOGNIZE_NEED SD
  wait_metric "$mport" '^dealsignal_consumed_records_total' $((n - due)) "$wpid"
  c0=$(metric_sum "$mport" '^dealsignal_clock_check_seconds_count'); s0=$(metric_sum "$mport" '^dealsignal_clock_check_seconds_sum')
  d0=$(metric_sum "$mport" '^dealsignal_clock_check_deals_total')
  sleep 3 # checks over the loaded deals, none due
  c1=$(metric_sum "$mport" '^dealsignal_clock_check_seconds_count'); s1=$(metric_sum "$mport" '^dealsignal_clock_check_seconds_sum')
  d1=$(metric_sum "$mport" '^dealsignal_clock_check_deals_total')
  # the due ones: EXPLORE_OPTIONS verified by a buyer signal now, whose
  # max_quiet_days is 0.0001 (8.64 s): due 8.64 s later
  "$lat_dir/ds_bench_load" "$brokers" deals "$due" EXPLORE_OPTIONS DUE live_call_accepted
  wait_metric "$mport" '^dealsignal_clock_check_deals_total' "$(echo "$d1 + $due" | bc)" "$wpid"
  c2=$(metric_sum "$mport" '^dealsignal_clock_check_seconds_count'); s2=$(metric_sum "$mport" '^dealsignal_clock_check_seconds_sum')
  d2=$(metric_sum "$mport" '^dealsignal_clock_check_deals_total')
  deals=$(metric_sum "$mport" '^dealsignal_tracked_deals')
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$wpid/status")
  kill -TERM "$wpid"; wait "$wpid" || true
  printf 'stallcheck: %.0f deals tracked (worker RSS %d MiB)\n' "$deals" $((rss / 1024))
  printf '  none due: %.0f checks, %.3f ms per check, %.0f deals evaluated\n' \
    "$(echo "$c1 - $c0" | bc)" "$(echo "($s1 - $s0) * 1000 / ($c1 - $c0)" | bc -l)" "$(echo "$d1 - $d0" | bc)"
  printf '  %s due: %.0f checks took %.3f ms in all, %.0f deals evaluated\n' \
    "$due" "$(echo "$c2 - $c1" | bc)" "$(echo "($s2 - $s1) * 1000" | bc -l)" "$(echo "$d2 - $d1" | bc)"
  exit 0
fi

if [ "$which" = backtest ]; then
  # The mock broker keeps ~5 MiB per partition (a CRM record is ~100 bytes),
  # so EVENTS are replayed in-process (decode + replay, the broker left
  # out), and the end-to-end run through the broker takes at most 30,000
  # events per partition (BENCH_BROKER_EVENTS overrides; with more
  # partitions, BENCH_PARTITIONS, it can take all EVENTS).
  n=${2:-10000000}
  accounts=${BENCH_ACCOUNTS:-20000}
  bt_bin=$lat_dir/ds_bench_backtest
  [ -x "$bt_bin" ] || cmake --build "$lat_dir" --target ds_bench_backtest >/dev/null
  "$bt_bin" "$n" "$accounts" 7
  nb=${BENCH_BROKER_EVENTS:-$((partitions * 30000 < n ? partitions * 30000 : n))}
  "$bin" gen --brokers "$brokers" --count "$nb" --rate 0 --seed 7 --scenario crm \
    --accounts "$accounts" 2>"$tmp/gen.err"
  echo "preloaded $nb events on $partitions partitions ($(tail -n1 "$tmp/gen.err"))"
  t0=$(date +%s.%N)
  "$bin" backtest --brokers "$brokers" --json --log-level warn >"$tmp/bt.json" 2>"$tmp/bt.err" ||
    { cat "$tmp/bt.err"; exit 1; }
  t1=$(date +%s.%N)
  records=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$tmp/bt.json")
  [ "$records" = "$nb" ] || echo "  the broker kept $records of the $nb records (retention): more partitions needed"
  printf 'backtest through the broker: %s records in %.2f s from start to report = %.0f events/s\n' \
    "$records" "$(echo "$t1 - $t0" | bc)" "$(echo "$records / ($t1 - $t0)" | bc -l)"
  echo "  $(grep '^backtest: read' "$tmp/bt.err")"
  exit 0
fi

# trickle: one deal, then one lead, fed at RATE events/s while the worker
# runs: the bytes and commands Redis received per event, and the record at
# the end.
if [ "$which" = trickle ]; then
  n=${2:-3000}; rate=${3:-300}
  # this checkout's loader (DS_LOAD_RATE), whichever worker DS_BIN names
  load_bin=build/ds_bench_load
  [ -x "$load_bin" ] || cmake --build build --target ds_bench_load >/dev/null
  # trickle_run WORKER TOPIC-VAR KEY FIELD WORKER-ARGS... -- LOAD-ARGS...: the
  # worker started, then fed live by the loader (TOPIC-VAR=topic names its
  # topic) until it consumed $n; sets rin (bytes Redis received), cmds (its
  # commands) and rec (the length of KEY's FIELD at the end)
  trickle_run() {
    local worker=$1 topic_var=$2 key=$3 field=$4 wargs=() mport wpid done_n rin0
    shift 4
    while [ "$1" != -- ]; do wargs+=("$1"); shift; done
    shift
    mport=$(free_port)
    "$bin" "$worker" --brokers "$brokers" --redis "redis://127.0.0.1:$rport/0" \
      --metrics-addr "127.0.0.1:$mport" --log-level warn "${wargs[@]}" \
      2>"$tmp/worker-trickle-$worker-$k.err" &
    wpid=$!; pids+=("$wpid")
    for _ in $(seq 100); do curl -sf "127.0.0.1:$mport/readyz" >/dev/null && break; sleep 0.1; done
    redis-cli -p "$rport" config resetstat >/dev/null
    rin0=$(redis_in)
    env "$topic_var" DS_LOAD_RATE="$rate" "$load_bin" "$brokers" "$@" 2>/dev/null
    for _ in $(seq 300); do
      done_n=$(curl -s "127.0.0.1:$mport/metrics" |
        awk '/^dealsignal_consumed_records_total/ {s += $2} END {print s + 0}')
      [ "$done_n" -ge "$n" ] && break; sleep 0.1
    done
    sleep 3 # the last window's write
    rin=$(( $(redis_in) - rin0 ))
    cmds=$(redis-cli -p "$rport" info commandstats | awk -F'[=,:]' '/^cmdstat_/ {s += $3} END {print s}')
    rec=$(redis-cli -p "$rport" hstrlen "$key" "$field")
    kill -TERM "$wpid"; wait "$wpid" || true
  }
  # the watcher: one deal (of 8, then of 1,000 stakeholders, as the skew
  # mode's deals), each event a batch of its own and each batch's changes
  # written
  echo "trickle, watcher (event clock): $n events of one deal at $rate events/s"
  k=0
  for stake in 8 1000; do
    k=$((k + 1))
    trickle_run watcher "DS_LOAD_CRM=sk.crm.$k" "ds:{deal:TR$k-D-0-0}" blob --clock event \
      --topic-crm "sk.crm.$k" --group-id "bench-trickle-$k-$$" \
      -- crm "$n" 1 1 "$stake" "$stake" "TR$k"
    printf '  one deal of up to %4d stakeholders: %6d bytes to Redis per event, %.2f commands per event; its record %d bytes\n' \
      "$stake" $((rin / n)) "$(echo "$cmds / $n" | bc -l)" "$rec"
  done
  # the scorer: one lead over 8, then 2,400 content items (written once per
  # window)
  echo "trickle, scorer: $n events of one lead at $rate events/s"
  k=0
  for contents in 8 2400; do
    k=$((k + 1))
    trickle_run scorer "DS_LOAD_MA=sk.ma.$k" "ds:{acct:TL$k-A}:lead:TL$k-L" state \
      --topic-marketing "sk.ma.$k" --group-id "bench-trickle-ma-$k-$$" \
      -- lead "$n" "$contents" "TL$k"
    printf '  one lead over %4d content items: %6d bytes to Redis per event, %.2f commands per event; its record %d bytes\n' \
      "$contents" $((rin / n)) "$(echo "$cmds / $n" | bc -l)" "$rec"
  done
  exit 0
fi

if [ "$which" = skew ]; then
  n=${2:-40000}
  what=${3:-both}
  cap=${BENCH_SKEW_SECONDS:-60}
  [ -x "$lat_dir/ds_bench_load" ] || cmake --build "$lat_dir" --target ds_bench_load >/dev/null
  runs=${BENCH_SKEW_RUNS:-3}
  # skew_case RUN WORKER TOPIC LABEL WORKER-ARGS...: one timed run on TOPIC
  # (preloaded with $n records); sets $rate
  skew_case() {
    local run=$1 worker=$2 topic=$3 label=$4; shift 4
    local mport wpid watched start first end capped secs cpu rin rss launched
    mport=$(free_port); launched=$(date +%s.%N)
    redis-cli -p "$rport" config resetstat >/dev/null
    local rin0; rin0=$(redis_in)
    local cg=() cgout="${BENCH_CALLGRIND:-}.$topic.$run"
    [ -n "${BENCH_CALLGRIND:-}" ] && cg=(valgrind --tool=callgrind --separate-threads=yes
      "--callgrind-out-file=$cgout")
    "${cg[@]}" "$bin" "$worker" --brokers "$brokers" --redis "redis://127.0.0.1:$rport/0" \
      --group-id "bench-skew-$topic-$run-$$" --metrics-addr "127.0.0.1:$mport" --log-level warn \
      "$@" 2>"$tmp/worker-$topic.err" &
    wpid=$!; pids+=("$wpid")
    if ! watched=$("$watch_bin" "$n" "$mport" "$wpid" "$cap"); then
      echo "worker died:"; tail "$tmp/worker-$topic.err"; exit 1
    fi
    read -r _ start first <<<"$(grep '^first' <<<"$watched")"
    read -r _ end done_n <<<"$(grep '^done' <<<"$watched")"
    capped=$(grep -c '^capped' <<<"$watched" || true)
    if [ "$first" -ge "$n" ]; then first=0; start=$launched; fi # all in the first batch
    secs=$(echo "$end - $start" | bc)
    rate=$(echo "($done_n - $first) / $secs" | bc)
    cpu=$(cpu_of "$wpid"); rss=$(awk '/VmHWM/ {print $2}' "/proc/$wpid/status")
    rin=$(( $(redis_in) - rin0 ))
    kill -TERM "$wpid"; wait "$wpid" || true
    printf '  run %d %-44s %8s events/s (%s events in %.2f s%s); CPU s worker %.2f; Redis in %d B/event; worker peak RSS %d MiB\n' \
      "$run" "$label" "$rate" "$((done_n - first))" "$secs" \
      "$([ "$capped" = 1 ] && echo ", stopped after ${cap} s: $done_n of $n done")" \
      "$cpu" $((rin / (done_n > 0 ? done_n : 1))) $((rss / 1024))
    if [ -n "${BENCH_CALLGRIND:-}" ]; then
      # the busiest thread is the worker's pipeline (start-up included)
      local ir; ir=$(cat "$cgout"-* | awk '/^(summary|totals):/ {print $2}' | sort -n | tail -1)
      printf '        %-44s %8.0f instructions per event (callgrind, the worker thread, start-up included)\n' \
        "" "$(echo "$ir / $done_n" | bc -l)"
    fi
  }
  ratio() { echo "scale=3; $1 / $2" | bc | sed 's/^\./0./'; }
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  check_held() { # every record preloaded is still on the topic
    local h; h=$("$lat_dir/ds_bench_load" "$brokers" held "$1")
    if [ "$h" -lt "$n" ]; then
      echo "skew: $1 holds $h of the $n records (the embedded broker dropped the oldest); use fewer EVENTS" >&2
      exit 1
    fi
  }
  # the cases alternate (run 1 of each, then run 2 of each, …): a shared
  # machine's slow minute then falls on every case alike
  if [ "$what" = scorer ] || [ "$what" = both ]; then
    "$bin" gen --profile skew --print-rules > "$tmp/skew-rules.yaml"
    echo "skew, scorer: $n events of \`gen --profile skew\` per case, one partition each, $runs runs"
    labels=(); shapes=("${BENCH_SKEW_SMALL:-3000x8}" ${BENCH_SKEW_LEADS:-5000 50000})
    for k in $(seq 1 ${#shapes[@]}); do
      shape=${shapes[$((k - 1))]}
      if [[ $shape == *x* ]]; then acc=${shape%x*}; leads=${shape#*x}; else acc=1; leads=$shape; fi
      "$bin" gen --brokers "$brokers" --profile skew --accounts "$acc" --leads "$leads" \
        --count "$n" --rate 0 --seed 7 --topic-marketing "sk.ma.$k" 2>"$tmp/gen.err"
      check_held "sk.ma.$k"
      labels+=("$acc account(s) x $leads leads")
    done
    declare -A all=()
    for run in $(seq "$runs"); do
      for k in $(seq 1 ${#shapes[@]}); do
        redis-cli -p "$rport" flushall >/dev/null
        skew_case "$run" scorer "sk.ma.$k" "${labels[$((k - 1))]}" --rules "$tmp/skew-rules.yaml" \
          --topic-marketing "sk.ma.$k"
        all[$k]="${all[$k]:-} $rate"
      done
    done
    rates=()
    for k in $(seq 1 ${#shapes[@]}); do
      # shellcheck disable=SC2086
      rates+=("$(median ${all[$k]})")
      echo "  median ${labels[$((k - 1))]}: ${rates[$((k - 1))]} events/s"
    done
    for i in $(seq 1 $((${#rates[@]} - 1))); do
      echo "  ratio ${labels[$i]} / ${labels[0]}: $(ratio "${rates[$i]}" "${rates[0]}")"
    done
  fi
  if [ "$what" = watcher ] || [ "$what" = both ]; then
    deals=${BENCH_SKEW_DEALS:-10000}; stake=${BENCH_SKEW_STAKEHOLDERS:-1000}
    small_acc=$(( (deals + 4) / 5 ))
    echo "skew, watcher (event clock): $n events of \`ds_bench_load crm\` per case, one partition each, $runs runs"
    # ACCOUNTS DEALS STAKEHOLDERS LEADS per case
    shapes=("$small_acc 5 8 12" "1 $deals 8 $((deals * 12 / 5))" "1 1 8 12" "1 1 $stake $stake")
    labels=()
    for k in 1 2 3 4; do
      read -r acc dl st leads <<<"${shapes[$((k - 1))]}"
      DS_LOAD_CRM="sk.crm.$k" "$lat_dir/ds_bench_load" "$brokers" crm "$n" "$acc" "$dl" "$st" "$leads" "SK$k" 2>/dev/null
      check_held "sk.crm.$k"
      labels+=("$acc account(s) x $dl deal(s) x $st stakeholders")
    done
    declare -A wall=()
    for run in $(seq "$runs"); do
      for k in 1 2 3 4; do
        read -r acc dl st leads <<<"${shapes[$((k - 1))]}"
        redis-cli -p "$rport" flushall >/dev/null
        # the scorer's lead hashes of every contact, so that the tier reads find them
        awk -v A="$acc" -v L="$leads" -v P="SK$k" 'BEGIN {
          for (a = 0; a < A; a++) for (l = 0; l < L; l++) {
            key = sprintf("ds:{acct:%s-A-%d}:lead:L-%d-%d", P, a, a, l)
            printf "*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$4\r\ntier\r\n$8\r\nLEARNING\r\n", length(key), key }
        }' | redis-cli -p "$rport" --pipe >/dev/null
        skew_case "$run" watcher "sk.crm.$k" "${labels[$((k - 1))]}" --clock event --topic-crm "sk.crm.$k"
        wall[$k]="${wall[$k]:-} $rate"
      done
    done
    rates=()
    for k in 1 2 3 4; do
      # shellcheck disable=SC2086
      rates+=("$(median ${wall[$k]})")
      echo "  median ${labels[$((k - 1))]}: ${rates[$((k - 1))]} events/s"
    done
    echo "  ratio one account of $deals deals / $small_acc accounts of 5: $(ratio "${rates[1]}" "${rates[0]}")"
    echo "  ratio one deal of $stake stakeholders / one deal of 8: $(ratio "${rates[3]}" "${rates[2]}")"
  fi
  exit 0
fi

gen_profile=(); worker_rules=()
case $which in
  scorer) scenario=marketing; sub=scorer ;;
  watcher) scenario=crm; sub=watcher ;;
  both) scenario=mixed; sub=run ;;
  wide) scenario=marketing; sub=scorer; gen_profile=(--profile wide)
    "$bin" gen --profile wide --print-rules > "$tmp/wide-rules.yaml"
    worker_rules=(--rules "$tmp/wide-rules.yaml") ;;
  *) echo "usage: $0 [scorer|watcher|both|wide|skew|trickle|memory|stallcheck|mallocs|backtest] …" >&2; exit 2 ;;
esac
t0=$(date +%s.%N)
# a fixed start: the same stream (event times included) in every invocation,
# so that the state digests of two invocations compare
"$bin" gen --brokers "$brokers" --count "$events" --rate 0 --seed 7 --scenario "$scenario" \
  "${gen_profile[@]}" --accounts "${BENCH_ACCOUNTS:-20000}" --start "${BENCH_START:-2026-01-01T00:00:00Z}" \
  2>"$tmp/gen.err"
t1=$(date +%s.%N)
echo "preloaded $events events in $(echo "$t1 - $t0" | bc) s ($(tail -n1 "$tmp/gen.err"))"
# how many landed on the input topic(s) (gen's duplicates included), all of
# them still there: the embedded broker drops the oldest records beyond ~5 MiB
# per partition, and a run would then wait for them for ever
expected=$events
[ -x "$lat_dir/ds_bench_load" ] || cmake --build "$lat_dir" --target ds_bench_load >/dev/null
held=0
for t in $(case $scenario in marketing) echo ma.events ;; crm) echo crm.events ;; *) echo ma.events crm.events ;; esac); do
  held=$((held + $("$lat_dir/ds_bench_load" "$brokers" held "$t")))
done
if [ "$held" -lt "$expected" ]; then
  echo "the broker holds $held of the $expected records (its retention, ~5 MiB per partition): raise BENCH_PARTITIONS" >&2
  exit 1
fi

nworkers=${BENCH_WORKERS:-1}
results=()
first_digest=""
for run in $(seq "$runs"); do
  cpu_r0=$(redis_cpu); cpu_b0=$(cpu_of "$broker_pid")
  for p in "${rports[@]}"; do redis-cli -p "$p" config resetstat >/dev/null; done
  rin0=$(redis_in); rcmd0=$(redis_cmds)
  rmem0=$(redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/ {print $2+0}')
  mon_pid=""
  if [ -n "${BENCH_MONITOR:-}" ]; then # every command Redis receives in this run
    redis-cli -p "$rport" monitor > "$BENCH_MONITOR.$run" & mon_pid=$!
  fi
  start=$(date +%s.%N); launched=$start
  wpids=(); mports=()
  for k in $(seq "$nworkers"); do
    mport=$(free_port); mports+=("$mport")
    ht=()
    if [ -n "${BENCH_HEAPTRACK:-}" ]; then
      hdir=$(dirname "$(readlink -f "$(command -v heaptrack)")")/../lib/heaptrack
      [ -x "$hdir/libexec/heaptrack_interpret" ] || { echo "BENCH_HEAPTRACK: heaptrack is not installed" >&2; exit 1; }
      mkfifo "$tmp/heaptrack.$run.$k"
      "$hdir/libexec/heaptrack_interpret" < "$tmp/heaptrack.$run.$k" | gzip -c > "$BENCH_HEAPTRACK.$run.$k.gz" &
      ht=(env LD_PRELOAD="$hdir/libheaptrack_preload.so" DUMP_HEAPTRACK_OUTPUT="$tmp/heaptrack.$run.$k")
    fi
    # shellcheck disable=SC2046 # redis_args is words
    ${BENCH_PERF:+perf record -F 999 ${BENCH_PERF_CG:--g} -o "$BENCH_PERF.$run.$k" --} \
      ${BENCH_CALLGRIND:+valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$BENCH_CALLGRIND.$run.$k"} "${ht[@]}" "$bin" "$sub" --brokers "$brokers" $(redis_args "$run") \
       --group-id "bench-$run-$$" --clock event --metrics-addr "127.0.0.1:$mport" "${worker_rules[@]}" \
       ${BENCH_WORKER_ARGS:-} --log-level warn 2>"$tmp/worker-$run-$k.err" &
    wpids+=($!); pids+=($!)
  done
  wpid=${wpids[0]}; mport=${mports[0]}
  # the clock starts at the first batch polled (group join is not
  # throughput); with several workers, once every one has its partitions.
  # One small process polls the metrics (bench/watch.c): curl and awk per
  # poll took most of a core from the run they measured.
  if ! watched=$("$watch_bin" "$expected" "$(IFS=,; echo "${mports[*]}")" "$(IFS=,; echo "${wpids[*]}")"); then
    echo "worker died:"; tail "$tmp"/worker-"$run"-*.err; exit 1
  fi
  read -r _ start first <<<"$(grep '^first' <<<"$watched")"
  read -r _ end _ <<<"$(grep '^done' <<<"$watched")"
  if [ "$first" -ge "$expected" ]; then
    # all of it in the first batch (tiny runs): time from the worker's start
    first=0; start=$launched
  fi
  expected_run=$((expected - first))
  cpu_w=0; sys_w=0; faults=0; rss=0
  for p in "${wpids[@]}"; do
    cpu_w=$(echo "$cpu_w + $(cpu_of "$p")" | bc); sys_w=$(echo "$sys_w + $(sys_of "$p")" | bc)
    faults=$((faults + $(awk '{print $10}' "/proc/$p/stat")))
    r=$(awk '/VmHWM/ {print $2}' "/proc/$p/status"); [ "$r" -gt "$rss" ] && rss=$r
  done
  rin=$(( $(redis_in) - rin0 )); rcmd=$(( $(redis_cmds) - rcmd0 ))
  cpu_r=$(echo "$(redis_cpu) - $cpu_r0" | bc); cpu_b=$(echo "$(cpu_of "$broker_pid") - $cpu_b0" | bc)
  phases=$({ curl -s "http://127.0.0.1:$mport/metrics" 2>/dev/null || true; } \
    | awk -F'[",]' '/^dealsignal_phase_seconds_sum/ {for (i=1;i<NF;i++) if ($i ~ /phase=$/) p=$(i+1); split($0, a, " "); printf "%s=%.2f ", p, a[2]}')
  if [ "$which" = wide ]; then
    # after the last window's writes: what the worker and Redis hold per lead
    tracked=$(metric_sum "$mport" '^dealsignal_tracked_leads')
    rss_end=$(awk '/VmRSS/ {print $2}' "/proc/$wpid/status")
    rmem=$(( $(redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/ {print $2+0}') - rmem0 ))
    wide_line=$(printf '  wide: %.0f leads tracked; worker RSS %d MiB at the end = %.0f B per tracked lead (peak %d MiB = %.0f B); Redis used_memory +%d MiB = %.0f B per tracked lead' \
      "$tracked" $((rss_end / 1024)) "$(echo "$rss_end * 1024 / $tracked" | bc -l)" $((rss / 1024)) \
      "$(echo "$rss * 1024 / $tracked" | bc -l)" $((rmem / 1048576)) "$(echo "$rmem / $tracked" | bc -l)")
  fi
  threads=$(for t in /proc/"$wpid"/task/*; do
      awk '{c=($14+$15)/100; if (c >= 0.05) printf "%s %.2f\n", $2, c}' "$t/stat"; done \
    | awk '{c[$1]+=$2} END {for (k in c) printf "%s=%.2f ", k, c[k]}' | tr -d '()')
  for p in "${wpids[@]}"; do kill -TERM "$p"; done
  for p in "${wpids[@]}"; do wait "$p" || true; done
  secs=$(echo "$end - $start" | bc)
  eps=$(echo "$expected_run / $secs" | bc)
  results+=("$eps")
  printf 'run %d: %s events in %.2f s = %s events/s; CPU s worker %.2f (%.2f system) redis %.2f broker %.2f; worker peak RSS %d MiB, %d page faults; Redis in %d B/event, %s commands/event\n' \
    "$run" "$expected_run" "$secs" "$eps" "$cpu_w" "$sys_w" "$cpu_r" "$cpu_b" $((rss / 1024)) "$faults" $((rin / expected)) \
    "$(echo "scale=2; $rcmd / $expected" | bc | sed 's/^\./0./')"
  echo "  $([ "$nworkers" -gt 1 ] && echo "(worker 1 of $nworkers) ")threads' CPU s: $threads; worker thread's wall s per phase: $phases"
  echo "  Redis commands per event: $(for p in "${rports[@]}"; do redis-cli -p "$p" info commandstats; done \
    | awk -F'[_:=,]' -v n="$expected" '/^cmdstat_/ && $2 != "info" && $2 !~ /^config/ && $2 !~ /^cluster/ {c[$2]+=$4} END {for (k in c) printf "%s %.3f ", k, c[k] / n}')"
  [ "$which" = wide ] && echo "$wide_line"
  if [ -n "$mon_pid" ]; then
    kill "$mon_pid"; wait "$mon_pid" 2>/dev/null || true
    mon_bin=$lat_dir/ds_bench_monitor
    [ -x "$mon_bin" ] || cmake --build "$lat_dir" --target ds_bench_monitor >/dev/null
    echo "  where the bytes to Redis go (under MONITOR, which slows Redis and so changes the windows: read the shares):"
    "$mon_bin" "$([ "$cluster" = 1 ] && echo "b$run:" || echo "ds:")" "$expected" < "$BENCH_MONITOR.$run" | sed 's/^/    /'
  fi
  digest=$(digest_of "$run")
  echo "  state: $digest (keys, digest)"
  if [ -z "$first_digest" ]; then first_digest=$digest
  elif [ "$digest" != "$first_digest" ]; then
    echo "run $run ended in another state than run 1 ($first_digest): not correct" >&2; exit 1
  fi
done
median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median: $median events/s ($which, $events events, $runs runs, $partitions partitions, $nworkers worker process(es), $([ "$cluster" = 1 ] && echo "Redis Cluster of ${#rports[@]} masters" || echo "one Redis"); state $first_digest)"

if [ "$which" = scorer ] && [ "${BENCH_LATENCY:-1}" = 1 ]; then
  rate=${BENCH_LAT_RATE:-$((median / 2))}
  secs=${BENCH_LAT_SECONDS:-15}
  lat_fw=${BENCH_LAT_FETCH_WAIT_MS:-1}
  lat_bin=$lat_dir/ds_bench_latency
  [ -x "$lat_bin" ] || cmake --build "$(dirname "$bin")" --target ds_bench_latency >/dev/null
  mport=$(free_port)
  # shellcheck disable=SC2046 # redis_args is words
  ${BENCH_PERF:+perf record -F 999 ${BENCH_PERF_CG:--g} -o "$BENCH_PERF.lat" --} "$bin" scorer --brokers "$brokers" $(redis_args 15) \
     --group-id "bench-lat-$$" --metrics-addr "127.0.0.1:$mport" --log-level warn \
     --topic-marketing lat.events --topic-lead-scores lat.lead.scores \
     --topic-account-scores lat.account.scores -X "fetch.wait.max.ms=$lat_fw" 2>"$tmp/worker-lat.err" &
  wpid=$!; pids+=("$wpid")
  # measure the steady state: the scorer has joined its group and Redis answers
  until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
    kill -0 "$wpid" 2>/dev/null || { echo "worker died"; exit 1; }; sleep 0.2; done
  cpu_l0=$(cpu_of "$wpid"); cpu_r0=$(redis_cpu); cpu_b0=$(cpu_of "$broker_pid")
  DS_LAT_FETCH_WAIT_MS=$lat_fw DS_LAT_ACCOUNTS=${BENCH_ACCOUNTS:-20000} DS_LAT_IN=lat.events DS_LAT_OUT=lat.lead.scores "$lat_bin" "$brokers" "$rate" "$secs"
  phases=$({ curl -s "http://127.0.0.1:$mport/metrics" 2>/dev/null || true; } \
    | awk -F'[",]' '/^dealsignal_phase_seconds_sum/ {for (i=1;i<NF;i++) if ($i ~ /phase=$/) p=$(i+1); split($0, a, " "); printf "%s=%.2f ", p, a[2]}')
  printf '  latency run (fetch.wait.max.ms %s): CPU s worker %.2f redis %.2f broker %.2f; worker thread s per phase: %s\n' \
    "$lat_fw" "$(echo "$(cpu_of "$wpid") - $cpu_l0" | bc)" "$(echo "$(redis_cpu) - $cpu_r0" | bc)" \
    "$(echo "$(cpu_of "$broker_pid") - $cpu_b0" | bc)" "$phases"
  kill -TERM "$wpid"; wait "$wpid" || true
fi
