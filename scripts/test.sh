#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# with ctest (labels unit, integration, fault), then the unit and
# integration tests again under ASan+UBSan (leak checking on).
#   scripts/test.sh            # everything
#   scripts/test.sh -L unit    # extra arguments go to ctest (both builds)
# DS_FAULT_EVENTS sets the fault tests' stream size (default here 40000, to
# keep CI short; `DS_FAULT_EVENTS=200000 scripts/test.sh -L fault` is the
# full-size run).
set -euo pipefail
export DS_FAULT_EVENTS=${DS_FAULT_EVENTS:-40000}
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j2 "$@")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# the fault tests run once, in the optimised build (they are long)
(cd build-asan && ctest --output-on-failure -j2 -LE fault "$@")
