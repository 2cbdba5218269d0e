#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for SECONDS (default 60).
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_decode fuzz_rules >/dev/null
export DS_SCHEMAS_DIR=$PWD/schemas
mkdir -p build-fuzz/corpus_decode build-fuzz/corpus_rules
cp -n tests/fuzz/corpus_rules/* build-fuzz/corpus_rules/ 2>/dev/null || true
cp -n tests/fuzz/corpus_decode/* build-fuzz/corpus_decode/ 2>/dev/null || true
# avro-c keeps a few bytes of process-lifetime state that LSan reports at exit;
# per-input memory is bounded by -rss_limit_mb and -malloc_limit_mb instead.
export ASAN_OPTIONS=detect_leaks=0
build-fuzz/fuzz_decode -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=64 -max_len=4096 build-fuzz/corpus_decode 2>&1 | tail -n 3
build-fuzz/fuzz_rules -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=64 -max_len=4096 build-fuzz/corpus_rules 2>&1 | tail -n 3
