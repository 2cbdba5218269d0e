#!/usr/bin/env bash
# One command from a fresh Debian bookworm machine to the running demo:
# installs what is missing, builds, runs `dealsignal demo` (embedded broker,
# private redis-server, both workers, a generated scenario).  Extra
# arguments go to `dealsignal demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/dealsignal demo "$@"
