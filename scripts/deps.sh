#!/usr/bin/env bash
# Install the Debian (bookworm) packages dealsignal needs to build, test and
# run its demo.  Only what is missing is installed; safe to run again.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      librdkafka-dev libavro-dev libhiredis-dev libyaml-dev libmicrohttpd-dev
      libcurl4-openssl-dev libjansson-dev libcmocka-dev uthash-dev
      redis-server clang libclang-rt-14-dev bc curl python3 prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
