#!/usr/bin/env bash
# The interop test: dealsignal's outputs read by kafkajs and
# @kafkajs/confluent-schema-registry through the test Schema Registry
# (tests/interop).  Needs a build in build/ (scripts/test.sh makes it) and
# Node.js >= 20 with npm; the npm packages are pinned by
# tests/interop/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
cmake --build build -j"$(nproc)" --target dealsignal ds_test_registry >/dev/null
cd tests/interop
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
force=""
node --help | grep -q -- --test-force-exit && force=--test-force-exit
DS_BUILD=../../build node --test $force
